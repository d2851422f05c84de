"""KID-EffNet x10^3: torch-fidelity's KID estimator (polynomial kernel, unbiased MMD, seeded subsets of size
min(n_real, n_fake, evaluation.kid.max_subset_size)) in the pretrained ImageNet features of EfficientNet-Lite0
(fewgan.metrics.effnet). Not the Inception KID: labelled "pretrained ImageNet features (EfficientNet-Lite0), not
comparable to published FID".

score: per snapshot when evaluation.score.effnet (the same features as FD-EffNet; it breaks FD-EffNet's ties);
evaluate: against the train and test splits with percentile bootstrap intervals (fewgan.metrics.bootstrap)."""

from __future__ import annotations

from fewgan.metrics.defs._feature_stats import KernelDistance
from fewgan.metrics.registry import Column, Shown, ci_columns, ci_text, num, register_metric

RESAMPLED = ("fake and real EfficientNet-Lite0 feature rows (each side with replacement; no network pass); KID "
             "recomputed with the point estimate's subset draws (same seed) from kernel matrices computed once")


@register_metric
class KIDEffNet(KernelDistance):
    name, short = "kid_effnet", "KID-EffNet"
    label = "KID-EffNet×10³ (EfficientNet-Lite0 ImageNet features; not Inception KID)"
    extractor = "effnet-lite0"
    too_few_what, resampled = "FD-EffNet/KID-EffNet", RESAMPLED
    order = 24
    selects, pretrained, then = True, True, ("fd_effnet",)
    per_snapshot, score_switch = True, "effnet"
    columns = ("kid_effnet", "kid_effnet_std")
    summary = (Column("kid_effnet_train", lambda m: m.get("kid_effnet_train")),
               *ci_columns("kid_effnet_train", lambda m: m.get("kid_effnet_train_ci")))
    report = tuple(Column(f"kid_effnet_{k}_x1e3", lambda m, k=k: num(m.get(f"kid_effnet_{k}")))
                   for k in ("train", "train_std", "test", "test_std")) + (
        *ci_columns("kid_effnet_train_x1e3", lambda m: m.get("kid_effnet_train_ci")),
        *ci_columns("kid_effnet_test_x1e3", lambda m: m.get("kid_effnet_test_ci")))
    shown = (Shown("KID-EffNet×10³ train", lambda r, f: f.pm(r["kid_effnet_train_x1e3"], r["kid_effnet_train_std_x1e3"])
                   + ci_text(f, r, "kid_effnet_train_x1e3")),)
    rank = ("kid_effnet_train_x1e3", "KID-EffNet×10³ (train; EfficientNet-Lite0 ImageNet features)")
