"""FID (torch-fidelity's statistic on InceptionV3 pool features; fewgan.metrics.fid): the papers' metric.

score: FID of every snapshot against all training images (and against the test split when
evaluation.score.curve_test); evaluate: fid_train, fid_test, each with a percentile bootstrap interval
(fid_train_ci, fid_test_ci: fake and real feature rows resampled, fewgan.metrics.bootstrap). With the
standard Inception weights it selects snapshots and ranks models (evaluation.select.metric: auto); from
fallback weights it may do neither."""

from __future__ import annotations

from fewgan.metrics.defs._feature_stats import FrechetDistance
from fewgan.metrics.registry import Column, Shown, ci_columns, num, register_metric, with_ci

RESAMPLED = ("fake and real Inception feature rows (each side with replacement; no network pass); FID "
             "recomputed with the exact fast statistic (N-1 covariances)")


@register_metric
class FID(FrechetDistance):
    name = "fid"
    label = "FID"
    extractor = "inception"
    resampled = RESAMPLED
    order = 10
    selects, pretrained, then = True, True, ("kid",)
    auto, auto_note = 0, " (the papers' metric)"
    per_snapshot = True
    late_columns = ("fid_test",)
    curve = "vs iteration (all models)"
    curve_label = "FID (train)"
    summary = (Column("fid_train", lambda m: m.get("fid_train")),
               *ci_columns("fid_train", lambda m: m.get("fid_train_ci")),
               Column("fid_test", lambda m: m.get("fid_test")),
               *ci_columns("fid_test", lambda m: m.get("fid_test_ci")))
    report = (Column("fid_train", lambda m: num(m.get("fid_train"))),
              *ci_columns("fid_train", lambda m: m.get("fid_train_ci")),
              Column("fid_test", lambda m: num(m.get("fid_test"))),
              *ci_columns("fid_test", lambda m: m.get("fid_test_ci")))
    shown = (Shown("FID train", lambda r, f: with_ci(f, r, "fid_train")),
             Shown("FID test", lambda r, f: with_ci(f, r, "fid_test")))
    rank = ("fid_train", "FID (train)")
