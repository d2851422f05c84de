"""The two statistics of feature-space metrics, written once for every extractor: the Fréchet distance
(FID's statistic; FID, FD-EffNet) and torch-fidelity's KID estimator (KID, KID-EffNet). A metric file
subclasses one of them and declares its extractor, labels and columns; its values are keyed by its `name`
(`<name>`, `<name>_std` per snapshot; `<name>_<split>`, `_ci`, `_bootstrap` in metrics.json).

The leading underscore keeps discovery (fewgan.metrics.registry.discover) from registering anything here."""

from __future__ import annotations

from fewgan.metrics.registry import Metric


class FrechetDistance(Metric):
    """FID's statistic (fewgan.metrics.fid.fid_from_features, evaluation.fid.method) in `extractor`'s features."""

    needs = frozenset({"features"})
    too_few_what = "FID/KID"   # the note when a split has fewer than 2 images
    resampled = ""             # what the bootstrap resamples (metrics.json <name>_bootstrap)

    def _fd(self, x, split: str) -> float:
        from fewgan.metrics.fid import fid_from_features

        return fid_from_features(x.features(self.extractor), x.reals.features(split, self.extractor),
                                 x.ev["fid"]["method"])

    def _spread(self, x) -> float:
        """tr(S_fake) / tr(S_real) in these features (N-1 covariances): how much of the real set's feature
        variance the fakes have. A near-constant set scores ~0 and pays no covariance term in the Fréchet
        distance, which is how FD picked collapsed snapshots (fewgan.select's evaluation.select.min_spread)."""
        fake, real = x.features(self.extractor).double(), x.reals.features("train", self.extractor).double()
        var = lambda f: float(f.var(dim=0, unbiased=True).sum())  # noqa: E731  (= tr of the N-1 covariance)
        return var(fake) / max(var(real), 1e-300)

    def score(self, x) -> dict:
        # <name>_spread goes to scores.json only (not a scores.csv column): select reads it from there
        out = {self.name: self._fd(x, "train"), f"{self.name}_spread": self._spread(x)}
        if x.ev["score"]["curve_test"]:
            out[f"{self.name}_test"] = self._fd(x, "test")
        return out

    def evaluate(self, x) -> dict:
        from fewgan.metrics.bootstrap import fid_samples, indices

        boot = x.intervals(self)
        out: dict = {}
        for s in ("train", "test"):
            value = None if x.too_few(s, 2, self.too_few_what) else self._fd(x, s)

            def replicates(n, gen, s=s):
                fake, real = x.features(self.extractor), x.reals.features(s, self.extractor)
                return fid_samples(fake, real, indices(fake.shape[0], n, gen), indices(real.shape[0], n, gen))

            out[f"{self.name}_{s}"] = value
            out[f"{self.name}_{s}_ci"] = boot.run(f"{self.name}_{s}", value, replicates)
        out[f"{self.name}_bootstrap"] = boot.block(self.resampled)
        return out


class KernelDistance(Metric):
    """KID (torch-fidelity's unbiased MMD with the cubic polynomial kernel, seeded subsets of size
    min(n_real, n_fake, evaluation.kid.max_subset_size); fewgan.metrics.fid.kid_from_features) in
    `extractor`'s features."""

    needs = frozenset({"features"})
    too_few_what = "FID/KID"
    resampled = ""

    def _kid(self, x, split: str) -> dict:
        from fewgan.metrics.fid import kid_from_features

        k = x.ev["kid"]
        return kid_from_features(x.features(self.extractor), x.reals.features(split, self.extractor),
                                 subsets=int(k["subsets"]), max_subset_size=int(k["max_subset_size"]), seed=x.kseed)

    def score(self, x) -> dict:
        r = self._kid(x, "train")
        return {self.name: r["kid"], f"{self.name}_std": r["kid_std"]}

    def evaluate(self, x) -> dict:
        from fewgan.metrics.bootstrap import indices, kid_samples

        none = {"kid": None, "kid_std": None, "kid_subset_size": None}
        r = {s: none if x.too_few(s, 2, self.too_few_what) else self._kid(x, s) for s in ("train", "test")}
        boot = x.intervals(self)
        out: dict = {}
        for s in ("train", "test"):
            def replicates(n, gen, s=s):
                fake, real = x.features(self.extractor), x.reals.features(s, self.extractor)
                return kid_samples(fake, real, indices(fake.shape[0], n, gen), indices(real.shape[0], n, gen),
                                   subsets=int(x.ev["kid"]["subsets"]), size=int(r[s]["kid_subset_size"]),
                                   seed=x.kseed)

            out |= {f"{self.name}_{s}": r[s]["kid"], f"{self.name}_{s}_std": r[s]["kid_std"],
                    f"{self.name}_{s}_ci": boot.run(f"{self.name}_{s}", r[s]["kid"], replicates)}
        out |= {f"{self.name}_subset_size_{s}": r[s]["kid_subset_size"] for s in ("train", "test")}
        out[f"{self.name}_bootstrap"] = boot.block(self.resampled)
        return out
