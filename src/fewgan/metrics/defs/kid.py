"""KID x10^3 (torch-fidelity's unbiased MMD estimator on InceptionV3 features, seeded subsets of size
min(n_real, n_fake, evaluation.kid.max_subset_size); fewgan.metrics.fid.kid_from_features).

score: KID and its std over subsets for every snapshot when evaluation.score.kid; evaluate: against the
train and the test split, each with a percentile bootstrap interval (kid_train_ci, kid_test_ci: fake and real
feature rows resampled, the same subset draws; fewgan.metrics.bootstrap). Selects (FID breaks its ties) only
with the standard Inception weights."""

from __future__ import annotations

from fewgan.metrics.defs._feature_stats import KernelDistance
from fewgan.metrics.registry import Column, Shown, ci_columns, ci_text, num, register_metric

RESAMPLED = ("fake and real Inception feature rows (each side with replacement; no network pass); KID recomputed "
             "with the point estimate's subset draws (same seed) from kernel matrices computed once")


@register_metric
class KID(KernelDistance):
    name = "kid"
    label = "KID×10³"
    extractor = "inception"
    resampled = RESAMPLED
    order = 20
    selects, pretrained, then = True, True, ("fid",)
    per_snapshot, score_switch = True, "kid"
    columns = ("kid", "kid_std")
    summary = (Column("kid_train", lambda m: m.get("kid_train")),
               *ci_columns("kid_train", lambda m: m.get("kid_train_ci")))
    report = tuple(Column(f"kid_{k}_x1e3", lambda m, k=k: num(m.get(f"kid_{k}")))
                   for k in ("train", "train_std", "test", "test_std")) + (
        *ci_columns("kid_train_x1e3", lambda m: m.get("kid_train_ci")),
        *ci_columns("kid_test_x1e3", lambda m: m.get("kid_test_ci")))
    # "value ± std over subsets [bootstrap interval]"
    shown = (Shown("KID×10³ train", lambda r, f: f.pm(r["kid_train_x1e3"], r["kid_train_std_x1e3"])
                   + ci_text(f, r, "kid_train_x1e3")),
             Shown("KID×10³ test", lambda r, f: f.pm(r["kid_test_x1e3"], r["kid_test_std_x1e3"])
                   + ci_text(f, r, "kid_test_x1e3")))
    rank = ("kid_train_x1e3", "KID×10³ (train)")

    def score_meta(self, x, enabled: bool) -> dict:
        from fewgan.metrics.fid import kid_subset_size

        return {"kid_subset_size": kid_subset_size(x.reals.count("train"), x.n_features,
                                                   int(x.ev["kid"]["max_subset_size"]))}
