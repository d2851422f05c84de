"""`evaluate/summary.json`: the headline numbers of one dataset x model, for `dvc metrics show` and
`dvc exp show`: each registered metric's `summary` columns (fewgan.metrics.registry), then the selection.

metrics.json (fewgan.metrics.evaluate) holds everything: per-level SWD, settings, provenance, fallbacks.
DVC tabulates every leaf of a metrics file as a column, so that file would make those tables hundreds of
columns wide. This one is flat and small: one row per cell, the same columns for every cell.

    fid_train, fid_test        FID of the selected snapshot vs the train / held-out test images
    kid_train                  KID (x10^3) vs the train images
    swd_mean                   ProGAN SWD (x10^3), mean over pyramid levels
    msssim_fake, msssim_real   MS-SSIM of fake pairs / of real pairs (diversity; lower = more diverse)
    <key>_ci_low, <key>_ci_high  after each of the above: its percentile bootstrap interval at
                               evaluation.bootstrap.level (fewgan.metrics.bootstrap; null when samples = 0)
    fd_effnet_train, fd_effnet_test  Fréchet distance in EfficientNet-Lite0 ImageNet features (not FID)
    effnet_features            the label of those numbers: "pretrained ImageNet features (EfficientNet-Lite0),
                               not comparable to published FID" (or the untrained fallback's label)
    kid_effnet_train           KID (x10^3) in the same features
    precision_effnet_train, recall_effnet_train  Kynkäänniemi et al. 2019 (k = 3) in the same features
    best_iteration             the training iteration `fewgan select` kept (by evaluation.select.metric:
                               lowest FID with the standard Inception, else lowest FD-EffNet with the pinned
                               EfficientNet-Lite0, else lowest SWD; best.json says which)
    feature_extractor_standard false when FID/KID came from a non-standard (e.g. untrained) Inception:
                               such values are not comparable to published FID
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fewgan.io import atomic_write_json
from fewgan.metrics.registry import registered_metrics

SUMMARY = "summary.json"
#: after the metrics' columns
TAIL = ("best_iteration", "feature_extractor_standard")


def keys() -> tuple[str, ...]:
    """The columns, in order (the README lists the built-in ones)."""
    return tuple(c.key for m in registered_metrics() for c in m.summary) + TAIL


def __getattr__(name: str) -> Any:
    if name == "KEYS":
        return keys()
    raise AttributeError(name)


def _number(value: Any) -> float | int | str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):  # a label (effnet_features) stays text
        try:
            return float(value)
        except ValueError:
            return value
    if isinstance(value, int):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def summarize(metrics: dict) -> dict:
    """The headline numbers of an evaluate metrics.json dict (missing values are null)."""
    extractor = metrics.get("feature_extractor")
    standard = extractor.get("standard") if isinstance(extractor, dict) else None
    out = {c.key: _number(c.get(metrics)) for m in registered_metrics() for c in m.summary}
    out["best_iteration"] = _number(metrics.get("iteration"))
    out["feature_extractor_standard"] = standard if isinstance(standard, bool) else None
    return out


def write_summary(out_dir: Path, metrics: dict) -> dict:
    """Write out_dir/summary.json from the evaluate metrics.json dict; return what was written."""
    summary = summarize(metrics)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / SUMMARY, summary)
    return summary
