"""What the metric stages read from a translation model (capability `translates`: CycleGAN, pix2pix, NICE-GAN).

A latent generator's fakes are seeded latent draws (fewgan.metrics.fid.fake_batches). A translator has no
latents: for each of its directions (`model.directions`: A->B and B->A; pix2pix A->B only) its fakes are the
translations of the **source** domain's images of one split, in split order, and the reals it is compared with
are the **target** domain's images (fewgan.data.pairs.domain_images: the dataset's `translation` block). The
registered metrics are unchanged: they receive an `Inputs` whose fakes come from `TranslationSource` and whose
`RealSet` holds the target domain (`direction_reals`), so FID, KID, FD-EffNet, KID-EffNet, SWD, MS-SSIM and
precision/recall all read translated images.

- **score** (every snapshot) translates the source domain's **train** images and compares them with the target
  domain's train images: no test image takes part in choosing the snapshot, so the test numbers evaluate
  reports carry no selection bias (the same reason latent cells score against the train split). Each metric's
  scores.csv value is the **mean over the directions** (a snapshot translates both ways and is selected once);
  scores.json keeps every direction (`rows[i].directions`).
- **evaluate** translates the source domain's held-out **test** images (NICE-GAN's protocol: `python fid_kid.py
  testA fakeA`, alpc91/NICE-GAN-pytorch README "Metric") and every metric reports them against the target
  domain's train split (`<key>_train`) and test split (`<key>_test`: the protocol's number). metrics.json holds
  one block per direction (`directions.AB`, `directions.BA`), each with the bootstrap intervals the metrics
  compute, and `kid_nicegan`: KID x100 as NICE-GAN computes it (`nicegan_kid`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:  # torch stays out of module level: the report imports `translates` (light, as the registry)
    import torch

#: NICE-GAN's metric script (alpc91/NICE-GAN-pytorch metric/fid_kid.py): `--mmd-subsets` 50,
#: `--mmd-subset-size` 1000 clipped to the smaller set ("subset_size is bigger than len(codes_g)"), polynomial
#: kernel degree 3, gamma 1/dim, coef0 1 (torch-fidelity's kernel), unbiased MMD^2, printed x100, pool3 features
NICEGAN_KID_SUBSETS = 50
NICEGAN_KID_SUBSET_SIZE = 1000
NICEGAN_KID_PROTOCOL = ("KID x100 (NICE-GAN metric/fid_kid.py): unbiased MMD^2 with the polynomial kernel (degree 3, "
                        "gamma 1/2048, coef0 1) on Inception pool3 features of the translated test images vs the "
                        "target domain's test images, mean over 50 subsets of size min(1000, n_fake, n_real) drawn "
                        "without replacement (all target images when there are fewer than 1000), x100")
SCORE_PROTOCOL = ("translators: per direction, the translations of the source domain's train images vs the target "
                  "domain's train images; scores.csv holds the mean over the model's directions, scores.json each one")
EVAL_PROTOCOL = ("translators: per direction, the translations of the source domain's held-out test images (each "
                 "translated once, in split order) vs the target domain's train (<key>_train) and test (<key>_test) "
                 "images; <key>_test is NICE-GAN's protocol")


def translates(model: str | None) -> bool:
    """The model declares the `translates` capability (its spec.py)."""
    from fewgan.models.specs import model_specs

    spec = model_specs().get(model or "")
    return spec is not None and "translates" in spec.capabilities


def ends(direction: str) -> tuple[str, str]:
    """(source domain, target domain) of a direction: "AB" -> ("A", "B")."""
    if direction not in ("AB", "BA"):
        raise ValueError(f"direction {direction!r}: AB or BA")
    return direction[0], direction[1]


class Domains:
    """The two domains of a dataset's splits (fewgan.data.pairs.domain_images), loaded once per split."""

    def __init__(self, params: dict, dataset: str, curated_dir: Path, split_dir: Path, resolution: int | None = None):
        self.translation = params["datasets"][dataset]["translation"]
        self.resolution = resolution
        self.dataset, self.curated_dir, self.split_dir = dataset, Path(curated_dir), Path(split_dir)
        self._by_split: dict[str, dict[str, tuple[torch.Tensor, list[str]]]] = {}
        self.paired: bool | None = None

    def get(self, split: str, side: str) -> tuple[torch.Tensor, list[str]]:
        """(uint8 images, names) of domain `side` ("A" | "B") in `split`."""
        if split not in self._by_split:
            from fewgan.data.loading import labels_of, load_images
            from fewgan.data.pairs import domain_images

            images, names = load_images(self.curated_dir, self.split_dir, which=split, resolution=self.resolution)
            labels, index = labels_of(self.split_dir, list(names))
            a, b, paired = domain_images(self.translation, images, labels, index or {}, dataset=self.dataset)
            names = list(names)
            if paired:
                na = nb = names
            else:
                d_a, d_b = self.translation["domains"]
                na = [n for n, y in zip(names, labels.tolist()) if y == index[d_a]]
                nb = [n for n, y in zip(names, labels.tolist()) if y == index[d_b]]
            self.paired = paired
            self._by_split[split] = {"A": (a, na), "B": (b, nb)}
        return self._by_split[split][side]

    def images(self, split: str, side: str) -> torch.Tensor:
        return self.get(split, side)[0]


def direction_reals(domains: Domains, direction: str, extractors: dict, cache_dir: Path | None):
    """The RealSet of a direction: the target domain's images of each split (their features are cached by
    content, as every real set's)."""
    from fewgan.metrics.inputs import RealSet

    target = ends(direction)[1]
    return RealSet(lambda split: domains.get(split, target), extractors, cache_dir)


class TranslationSource:
    """The fakes of one direction: the source images translated once each, in order, as uint8 batches.

    Called as `source(total, batch_size)` by fewgan.metrics.inputs.Inputs; `n` is how many fakes it can give
    (one per source image). Translation runs under `fork_rng` seeded from `seed` (batch-position streams, as
    fake_batches), so models that draw noise at test time give the same images in every process."""

    def __init__(self, gan: Any, images: torch.Tensor, direction: str, *, device: Any = "cpu", seed: int = 0):
        gan.check_direction(direction)
        self.gan, self.images, self.direction, self.device, self.seed = gan, images, direction, device, int(seed)
        self.n = int(images.shape[0])

    def __call__(self, total: int, batch_size: int) -> Iterator[torch.Tensor]:
        import torch

        from fewgan.images import from_uint8, to_uint8

        dev = torch.device(self.device)
        devices = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []
        end = min(int(total), self.n)
        for start in range(0, end, int(batch_size)):
            x = from_uint8(self.images[start:min(start + int(batch_size), end)]).to(dev)
            with torch.random.fork_rng(devices=devices), torch.inference_mode():
                torch.manual_seed((self.seed * 1_000_003 + start) % 2**63)
                y = self.gan.translate(x, self.direction)
            if y.shape != x.shape:
                raise ValueError(f"{type(self.gan).__name__}.translate({self.direction}) returned {tuple(y.shape)} "
                                 f"for inputs {tuple(x.shape)}")
            yield to_uint8(y).cpu()


def mean_over_directions(per_direction: dict[str, dict], keys: list[str]) -> dict[str, float | None]:
    """{key: mean of the finite values of the directions}; None when a direction lacks a finite value (a mean over
    some directions only would compare unlike numbers across snapshots); a key no direction has is left out."""
    out: dict[str, float | None] = {}
    for k in keys:
        if not any(k in v for v in per_direction.values()):
            continue
        vals = [v.get(k) for v in per_direction.values()]
        ok = [float(v) for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)
              and math.isfinite(float(v))]
        out[k] = sum(ok) / len(ok) if ok and len(ok) == len(vals) else None
    return out


def nicegan_kid(fake: torch.Tensor, real: torch.Tensor, *, seed: int, subsets: int = NICEGAN_KID_SUBSETS,
                max_subset_size: int = NICEGAN_KID_SUBSET_SIZE) -> dict[str, Any]:
    """KID x100 as NICE-GAN reports it (see NICEGAN_KID_PROTOCOL): {kid_x100, kid_std_x100, subset_size, subsets,
    n_fake, n_real}; subset_size = min(max_subset_size, n_fake, n_real) (all target images when fewer), seeded
    subsets (the official script's are unseeded)."""
    from fewgan.metrics.fid import kid_from_features

    r = kid_from_features(fake, real, subsets=int(subsets), max_subset_size=int(max_subset_size), seed=int(seed))
    return {"kid_x100": r["kid"] / 10.0, "kid_std_x100": r["kid_std"] / 10.0, "subset_size": r["kid_subset_size"],
            "subsets": int(subsets), "n_fake": int(fake.shape[0]), "n_real": int(real.shape[0])}


def evaluate_directions(params: dict, gan: Any, metrics: list, domains: Domains, extractors: dict,
                        cache_dir: Path | None, device: Any, *, seed: int, kseed: int, batch_size: int,
                        counts: dict[str, int]) -> dict[str, dict]:
    """evaluate for a translator (module docstring): {direction: every metric's metrics.json keys (with their
    bootstrap intervals), kid_nicegan, n_fake, n_real_train, n_real_test, source, target, notes}."""
    from fewgan.metrics.bootstrap import Intervals, indices, kid_samples, settings
    from fewgan.metrics.inputs import Inputs, note_once

    out: dict[str, dict] = {}
    for d in gan.directions:
        src_side, tgt_side = ends(d)
        src = domains.images("test", src_side)
        reals = direction_reals(domains, d, extractors, cache_dir)
        notes: list[str] = []
        n = int(src.shape[0])
        x = Inputs(params, reals, metrics, gan=gan, device=device, seed=seed, kseed=kseed, n_features=n,
                   batch_size=batch_size, counts={k: min(int(v), n) for k, v in counts.items()},
                   note=note_once(notes, warn=True), source=TranslationSource(gan, src, d, device=device, seed=seed))
        x.run()
        values: dict[str, Any] = {}
        for m in metrics:
            values.update(m.evaluate(x))
        kid = None
        if not x.too_few("test", 2, "KID x100 (NICE-GAN protocol)"):
            fake, real = x.features("inception"), reals.features("test", "inception")
            kid = nicegan_kid(fake, real, seed=kseed)
            boot = Intervals(settings(params), "kid_nicegan", d)
            kid["kid_x100_ci"] = boot.run("kid_nicegan_test", kid["kid_x100"], lambda s, gen: kid_samples(
                fake, real, indices(fake.shape[0], s, gen), indices(real.shape[0], s, gen),
                subsets=kid["subsets"], size=kid["subset_size"], seed=kseed) / 10.0)
            kid["bootstrap"] = boot.block("fake and real Inception feature rows (each side with replacement); KID "
                                          "recomputed with the point estimate's subset draws")
            kid["protocol"] = NICEGAN_KID_PROTOCOL
            kid["label"] = extractors["inception"].info.extractor_block()["label"]
        out[d] = {"source": src_side, "target": tgt_side, "n_fake": n, "n_real_train": reals.count("train"),
                  "n_real_test": reals.count("test"), **values, "kid_nicegan": kid, "notes": notes}
    return out


def translation_grid(gan: Any, domains: Domains, device: Any, n: int) -> list[tuple[str, torch.Tensor]]:
    """Rows of the held-out grid: per direction, the source domain's first `n` test images, their translation
    and (when the model translates back) the cycle; uint8."""
    import torch

    from fewgan.images import from_uint8, to_uint8

    rows: list[tuple[str, torch.Tensor]] = []
    for d in gan.directions:
        src_side, tgt_side = ends(d)
        x = domains.images("test", src_side)[:n]
        with torch.inference_mode():
            xf = from_uint8(x).to(device)
            y = gan.translate(xf, d)
            rows += [(f"{src_side} (test)", x), (f"{src_side}->{tgt_side}", to_uint8(y).cpu())]
            if d[::-1] in gan.directions:
                rows.append((f"{src_side}->{tgt_side}->{src_side}", to_uint8(gan.translate(y, d[::-1])).cpu()))
    return rows


def direction_summary(metrics: dict) -> dict:
    """summary.json of a translator (fewgan.metrics.summary): every metric's summary columns per direction
    (`<key>_AB`, `<key>_BA`), NICE-GAN's KID x100 per direction, then the selection columns."""
    from fewgan.metrics.registry import registered_metrics
    from fewgan.metrics.summary import _number

    out: dict[str, Any] = {}
    for d, block in (metrics.get("directions") or {}).items():
        out.update({f"{c.key}_{d}": _number(c.get(block)) for m in registered_metrics() for c in m.summary})
        kid = block.get("kid_nicegan") or {}
        out[f"kid_nicegan_x100_{d}"] = _number(kid.get("kid_x100"))
    extractor = metrics.get("feature_extractor")
    standard = extractor.get("standard") if isinstance(extractor, dict) else None
    out["best_iteration"] = _number(metrics.get("iteration"))
    out["feature_extractor_standard"] = standard if isinstance(standard, bool) else None
    return out
