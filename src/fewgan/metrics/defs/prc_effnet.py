"""Precision and recall in EfficientNet-Lite0 ImageNet features (Kynkäänniemi et al. 2019; torch-fidelity's
`prc` statistic, fewgan.metrics.prc): precision = fraction of fakes inside the real k-NN manifold (fidelity),
recall = fraction of reals inside the fake manifold (coverage: it falls under mode collapse). k =
evaluation.prc.neighborhood (3, the paper's). Fakes: the first n_real of the featured fakes
(evaluation.prc.fakes: equal, the paper's equal-size sets) or all of them. Labelled "pretrained ImageNet features
(EfficientNet-Lite0), not comparable to published FID". evaluate only, against the train split (the test split
is a handful of images); it never selects or ranks (two numbers, not one order). Intervals: the per-sample
indicators resampled with the k-NN radii fixed (fewgan.metrics.prc)."""

from __future__ import annotations

from fewgan.metrics.registry import Column, Metric, Shown, ci_columns, ci_text, num, register_metric

RESAMPLED = ("per-sample indicators (fakes inside the real manifold; reals inside the fake manifold), with "
             "replacement, the k-NN radii held fixed: resampled feature rows would put duplicates inside each "
             "other's balls")


@register_metric
class PRCEffNet(Metric):
    name = "prc_effnet"
    label = "precision / recall (Kynkäänniemi et al. 2019, k-NN manifolds in EfficientNet-Lite0 ImageNet features)"
    direction = "higher"
    needs = frozenset({"features"})
    extractor = "effnet-lite0"
    pretrained = True
    order = 26
    summary = (Column("precision_effnet_train", lambda m: m.get("precision_effnet_train")),
               *ci_columns("precision_effnet_train", lambda m: m.get("precision_effnet_train_ci")),
               Column("recall_effnet_train", lambda m: m.get("recall_effnet_train")),
               *ci_columns("recall_effnet_train", lambda m: m.get("recall_effnet_train_ci")))
    report = (Column("precision_effnet_train", lambda m: num(m.get("precision_effnet_train"))),
              *ci_columns("precision_effnet_train", lambda m: m.get("precision_effnet_train_ci")),
              Column("recall_effnet_train", lambda m: num(m.get("recall_effnet_train"))),
              *ci_columns("recall_effnet_train", lambda m: m.get("recall_effnet_train_ci")))
    shown = (Shown("precision / recall (EffNet, train)",
                   lambda r, f: f"{f.num(r['precision_effnet_train'], 3)}{ci_text(f, r, 'precision_effnet_train', 3)}"
                                f" / {f.num(r['recall_effnet_train'], 3)}{ci_text(f, r, 'recall_effnet_train', 3)}"),)

    def evaluate(self, x) -> dict:
        from fewgan.metrics.prc import indicator_samples, prc_indicators

        cfg = x.ev["prc"]
        k = int(cfg["neighborhood"])
        boot = x.intervals(self)
        out: dict = {"precision_effnet_train": None, "recall_effnet_train": None,
                     "precision_effnet_train_ci": None, "recall_effnet_train_ci": None}
        real = x.reals.features("train", self.extractor) if not x.too_few("train", k + 1, "precision/recall") else None
        fake = x.features(self.extractor)
        n = fake.shape[0] if real is None or cfg["fakes"] == "all" else min(fake.shape[0], real.shape[0])
        if real is not None and real.shape[0] >= k + 1 and n >= k + 1:
            in_real, in_fake = prc_indicators(fake[:n], real, k)
            p, r = float(in_real.float().mean()), float(in_fake.float().mean())
            out |= {"precision_effnet_train": p, "recall_effnet_train": r,
                    "precision_effnet_train_ci": boot.run("precision_effnet_train", p,
                                                          lambda s, g: indicator_samples(in_real, s, g)),
                    "recall_effnet_train_ci": boot.run("recall_effnet_train", r,
                                                       lambda s, g: indicator_samples(in_fake, s, g))}
        elif real is not None:
            x.note(f"precision/recall not computed: {real.shape[0]} real and {n} fake feature vectors "
                   f"(k = {k} needs >= {k + 1} each)")
        out["prc_effnet_settings"] = {"neighborhood": k, "fakes": cfg["fakes"], "n_fake": n,
                                      "n_real": None if real is None else int(real.shape[0]),
                                      "reference": "train split"}
        out["prc_effnet_bootstrap"] = boot.block(RESAMPLED)
        return out
