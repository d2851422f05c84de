"""Report figures (matplotlib, Agg backend). Each function returns None on success or a note saying why
the figure is not available; a missing optional input never raises."""

from __future__ import annotations

import io
import logging
import textwrap
from pathlib import Path
from typing import Callable, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from fewgan.io import atomic_write_bytes  # noqa: E402
from fewgan.report.collect import Cell, inversion_headline, selected_by  # noqa: E402
from fewgan.report.verdicts import LEVEL  # noqa: E402

log = logging.getLogger(__name__)


def _t(text: object) -> str:
    """Plain text for matplotlib: a '$' in a dataset or model name must not start mathtext."""
    return str(text).replace("$", r"\$")


def wrap(text: object, width: int) -> str:
    """Axis labels and titles wrapped to fit the figure (long metric labels were cut off at its edge)."""
    return "\n".join(textwrap.wrap(_t(text), width)) or ""


def _save(fig, path: Path) -> None:
    # fixed margins instead of bbox_inches="tight": one draw instead of two (report builds stay fast)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def _footnote(fig, text: str, width_chars: int = 110) -> None:
    """A red footnote under the axes, wrapped to the figure width; the bottom margin grows with its lines
    so no text is cut off."""
    if not text:
        return
    lines = textwrap.wrap(_t(text), width_chars) or [""]
    height_in = fig.get_size_inches()[1]
    line_frac = 7.5 / 72 * 1.25 / height_in  # 7-pt text, 1.25 line spacing, as a fraction of the figure
    fig.subplots_adjust(bottom=0.13 + line_frac * (len(lines) + 0.5))
    fig.text(0.01, 0.01, "\n".join(lines), fontsize=7, color="darkred", ha="left", va="bottom")


def score_curves(dataset: str, cells: Sequence[Cell], labels: Sequence[str], path: Path,
                 metric: str = "fid") -> str | None:
    """`metric` (a per-snapshot metric of the registry: its scores.csv column) vs training iteration, one line
    per model; each run's selected snapshot starred. The footnote names the extractor's weights when the
    metric is computed from pretrained features, else says what the metric is (its `curve_note`)."""
    from fewgan.metrics.registry import get_metric

    m = get_metric(metric)
    have = [c for c in cells if c.scores is not None and len(c.scores) and metric in c.scores.columns
            and c.scores[metric].notna().any()]
    if not have:
        return f"{dataset}: {metric.upper()} curve not available (no score/scores.csv with a {metric} column)"
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    fig.subplots_adjust(left=0.15, right=0.97, top=0.88, bottom=0.2)
    from fewgan.select import feature_network

    own = {c.model for c in have if m.extractor and feature_network(c.model) == m.extractor}
    banded = False
    for model, runs in _by_model(have).items():
        # † a model whose discriminator trains on this metric's network: shown, never selected or ranked by it
        name = model + (" †" if model in own else "")
        if len(runs) == 1:
            c = runs[0]
            (line,) = ax.plot(c.scores["iteration"], c.scores[metric], marker="o", ms=3, label=_t(name))
        else:
            it, mean, lo, hi = _seed_band(runs, metric)
            (line,) = ax.plot(it, mean, marker="o", ms=3, label=_t(f"{name} (mean of {len(runs)} seeds)"))
            ax.fill_between(it, lo, hi, alpha=0.18, color=line.get_color(), linewidth=0)
            for c in runs:  # each seed, faint
                ax.plot(c.scores["iteration"], c.scores[metric], lw=0.6, alpha=0.35, color=line.get_color())
            banded = True
        for c in runs:
            best = c.best or {}
            if best.get("iteration") is not None and best.get(metric) is not None:
                ax.plot([best["iteration"]], [best[metric]], marker="*", ms=12, color=line.get_color())
    ax.set_xlabel("training iteration")
    ax.set_ylabel(wrap(f"{m.label} ({m.direction} is better)", 45), fontsize=9)
    chosen = sorted({str(selected_by(c) or "unknown (best.json does not say)").upper() for c in have})
    ax.set_title(wrap(f"{dataset}: {m.title} of every snapshot (star = selected by {'/'.join(chosen)})", 70),
                 fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    if m.pretrained and m.extractor != "inception":  # another extractor: its own label (metrics.json blocks)
        labels = [((c.metrics.get("feature_extractors") or {}).get(m.extractor) or {}).get("label") or m.curve_note
                  for c in have]
    note = "; ".join(sorted(set(labels))) if m.pretrained else m.curve_note
    if own:
        note += (f"; † {', '.join(sorted(own))}: discriminator trains on {m.extractor} features (Kynkäänniemi et al. "
                 "2023): never selected or ranked by this metric")
    if banded:
        note += (f"; band: {int(LEVEL * 100)}% t interval of the mean over training seeds at each iteration "
                 "(faint lines: the seeds)")
    _footnote(fig, note)
    _save(fig, path)
    return None


class _SplitView:
    """One split of a cell's inversion rows, shaped like a cell with `scores` (for _seed_band)."""

    def __init__(self, cell: Cell, split: str):
        df = cell.inversion
        self.scores = df[df["split"] == split]


def _by_model(cells: Sequence[Cell]) -> dict[str, list[Cell]]:
    out: dict[str, list[Cell]] = {}
    for c in cells:
        out.setdefault(c.model, []).append(c)
    return out


def _seed_band(runs: Sequence[Cell], metric: str) -> tuple[list[float], list[float], list[float], list[float]]:
    """Per iteration present in every seed's scores: the mean over seeds and its t interval
    (fewgan.report.verdicts.spread; the interval collapses to the mean where it is undefined)."""
    from fewgan.report.verdicts import spread

    per_seed = [dict(zip(c.scores["iteration"].astype(int), c.scores[metric].astype(float))) for c in runs]
    common = sorted(set.intersection(*(set(d) for d in per_seed)))
    it, mean, lo, hi = [], [], [], []
    for i in common:
        sp = spread([d[i] for d in per_seed])
        if sp.mean is None:
            continue
        it.append(i)
        mean.append(sp.mean)
        lo.append(sp.ci[0] if sp.ci else sp.mean)
        hi.append(sp.ci[1] if sp.ci else sp.mean)
    return it, mean, lo, hi


def curves_of(metric) -> Callable[..., str | None]:
    """score_curves of one registered metric, named `<name>_curves` (the report's notes name the figure)."""
    def curves(dataset: str, cells: Sequence[Cell], labels: Sequence[str], path: Path) -> str | None:
        return score_curves(dataset, cells, labels, path, metric.name)

    curves.__name__ = curves.__qualname__ = f"{metric.name}_curves"
    return curves


def fid_curves(dataset: str, cells: Sequence[Cell], labels: Sequence[str], path: Path) -> str | None:
    return score_curves(dataset, cells, labels, path, "fid")


def swd_curves(dataset: str, cells: Sequence[Cell], labels: Sequence[str], path: Path) -> str | None:
    return score_curves(dataset, cells, labels, path, "swd")


def inversion_curves(dataset: str, cells: Sequence[Cell], path: Path) -> str | None:
    """Reconstruction quality of held-out test images vs iteration (FastGAN Table 5 analogue); train images
    dashed. The y-axis is the runs' headline metric (inversion.json): LPIPS with the pretrained backbone, the
    EfficientNet-Lite0 deep-feature distance when the LPIPS backbone is a fallback, MS-SSIM when neither is
    there; one metric for all models."""
    have = [c for c in cells if c.inversion is not None and len(c.inversion)]
    if not have:
        return f"{dataset}: inversion curve not available (no invert/inversion.csv for any model)"
    heads = {inversion_headline(c) for c in have}

    def everywhere(column: str) -> bool:
        return all(column in c.inversion.columns and c.inversion[column].notna().all() for c in have)

    # one metric for all models: LPIPS only if every run's headline is LPIPS, else the deep-feature distance
    # when every run has it, else MS-SSIM
    if heads == {"lpips"}:
        col = "lpips_mean"
    elif heads <= {"lpips", "effnet_deep"} and everywhere("effnet_deep_mean"):
        col = "effnet_deep_mean"
    else:
        col = "msssim_mean" if everywhere("msssim_mean") else "lpips_mean"
    std = col.replace("_mean", "_std")
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    fig.subplots_adjust(left=0.12, right=0.97, top=0.92, bottom=0.2)
    notes = set()
    for model, runs in _by_model(have).items():
        if len(runs) == 1:
            df = runs[0].inversion
            test = df[df["split"] == "test"]
            (line,) = ax.plot(test["iteration"], test[col], marker="o", ms=3, label=_t(f"{model} (test)"))
            if std in test.columns:
                ax.fill_between(test["iteration"], test[col] - test[std], test[col] + test[std], alpha=0.15,
                                color=line.get_color())
                notes.add("band (one seed): ± std over the inverted images")
            train = df[df["split"] == "train"]
            if len(train):
                ax.plot(train["iteration"], train[col], ls="--", marker="x", ms=3, color=line.get_color(),
                        label=_t(f"{model} (train)"))
        else:
            tests = [_SplitView(c, "test") for c in runs]
            it, mean, lo, hi = _seed_band(tests, col)
            (line,) = ax.plot(it, mean, marker="o", ms=3, label=_t(f"{model} (test, mean of {len(runs)} seeds)"))
            ax.fill_between(it, lo, hi, alpha=0.18, color=line.get_color(), linewidth=0)
            notes.add(f"band (several seeds): {int(LEVEL * 100)}% t interval of the mean over training seeds")
            trains = [_SplitView(c, "train") for c in runs]
            if all(len(t.scores) for t in trains):
                it, mean, _, _ = _seed_band(trains, col)
                ax.plot(it, mean, ls="--", marker="x", ms=3, color=line.get_color(),
                        label=_t(f"{model} (train, mean of {len(runs)} seeds)"))
        for c in runs:
            lp = ((c.inversion_meta or {}).get("settings") or {}).get("lpips") or {}
            note = lp.get("note", lp.get("fallback"))
            if note:
                notes.add("LPIPS backbone not the pretrained one (LPIPS kept in inversion.csv, labelled; not shown)"
                          if col != "lpips_mean" else f"LPIPS: {note}")
    if col == "effnet_deep_mean":
        notes.add("EfficientNet-Lite0 deep-feature distance: pretrained ImageNet features, no learned layers "
                  "(Zhang et al. 2018 baseline); not LPIPS")
    ax.set_xlabel("training iteration of the inverted snapshot")
    ax.set_ylabel({"msssim_mean": "reconstruction MS-SSIM (higher is better)",
                   "effnet_deep_mean": "reconstruction EffNet deep-feature distance (lower is better)"}.get(
                       col, "reconstruction LPIPS (lower is better)"))
    ax.set_title(_t(f"{dataset}: inversion of held-out images (FastGAN Table 5)"), fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    _footnote(fig, "; ".join(sorted(notes)))
    _save(fig, path)
    return None


def samples_overview(dataset: str, cells: Sequence[Cell], path: Path) -> str | None:
    """One panel per model with its evaluate/samples.png (best snapshot); 'not available' panels otherwise."""
    if not any(c.samples_png for c in cells):
        return f"{dataset}: sample grids not available (no evaluate/samples.png for any model)"
    fig, axes = plt.subplots(1, len(cells), figsize=(4.0 * len(cells), 4.3), squeeze=False)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.92, bottom=0.01, wspace=0.05)
    for ax, c in zip(axes[0], cells):
        ax.axis("off")
        it = (c.best or {}).get("iteration")
        ax.set_title(_t(f"{c.model}" + (f" (iteration {it})" if it is not None else "")), fontsize=9)
        if c.samples_png is None:
            ax.text(0.5, 0.5, "not available", ha="center", va="center", fontsize=12, color="gray")
            continue
        try:
            ax.imshow(plt.imread(str(c.samples_png)))
        except Exception as exc:  # a corrupt optional image must not stop the report
            log.warning("%s: unreadable (%s)", c.samples_png, exc)
            ax.text(0.5, 0.5, "not available\n(unreadable)", ha="center", va="center", fontsize=12, color="gray")
    _save(fig, path)
    return None


def stage_cost_bars(costs, path: Path) -> str | None:
    """Stacked wall time per stage for each dataset x model."""
    if costs is None or costs.empty:
        return "stage costs not available (no stage.json found)"
    fig, ax = plt.subplots(figsize=(7.5, 1.5 + 0.4 * len(costs)))
    fig.subplots_adjust(left=0.3, right=0.97, top=0.88, bottom=0.12)
    labels = [_t(f"{d}/{m}") for d, m in zip(costs["dataset"], costs["model"])]
    stage_cols = [c for c in costs.columns if c not in ("dataset", "model", "total")]
    import numpy as np

    left = np.zeros(len(costs))
    for stage in stage_cols:
        vals = costs[stage].fillna(0).to_numpy(dtype=float)
        ax.barh(labels, vals, left=left, label=stage)
        left += vals
    ax.set_xlabel("wall time (s)")
    ax.set_title("stage wall time per dataset x model", fontsize=10)
    ax.legend(fontsize=7, ncol=4)
    _save(fig, path)
    return None
