"""Compute as an axis: the ranking metric against training FLOPs, and the models compared at equal compute.

Every snapshot records its training FLOPs so far (fewgan.train.flops; run.json `snapshots`), and score
records every snapshot's metrics (scores.csv). Equal iterations are not equal compute (BigGAN's two D steps,
StyleGAN2's regularisers), so the report adds:
- a figure of the ranking metric against training FLOPs (log x), every model and seed of a dataset in one plot;
- an "at equal compute" table: each run's best snapshot (by the ranking metric) among those trained with at
  most a common FLOP budget, by default the smallest total among the dataset's runs (`report.flops_budget`
  overrides it), then the spread over seeds and the verdicts (fewgan.report.verdicts) at that budget.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import pandas as pd

from fewgan.report import verdicts as V
from fewgan.report.collect import Cell


def snapshot_compute(cell: Cell, column: str) -> pd.DataFrame | None:
    """Per snapshot of a run: iteration, flops, kimg, train_seconds and the metric `column` of scores.csv;
    None when the run predates the compute records or was not scored."""
    snaps = [s for s in ((cell.run or {}).get("snapshots") or []) if s.get("flops") is not None]
    if not snaps or cell.scores is None or column not in cell.scores.columns:
        return None
    comp = pd.DataFrame([{k: s.get(k) for k in ("iteration", "flops", "kimg", "train_seconds")} for s in snaps])
    df = comp.merge(cell.scores[["iteration", column]], on="iteration", how="inner")
    df = df[df[column].notna()].sort_values("iteration")
    return df if len(df) else None


def _spread_guarded(cell: Cell, df: pd.DataFrame, column: str, min_spread: float) -> tuple[pd.DataFrame, list]:
    """The snapshots that may compete under evaluation.select.min_spread (the rule `fewgan select` applies:
    fewgan.select.spread_guard), and the iterations left out."""
    from fewgan.select import spread_guard

    jrows = (cell.scores_meta or {}).get("rows") or []
    kept, record = spread_guard([{"iteration": int(i)} for i in df["iteration"]], jrows, column, min_spread)
    if not record or "note" in record:
        return df, []
    left_out = [e["iteration"] for e in record["excluded"]]
    return df[~df["iteration"].isin(left_out)], left_out


def equal_compute(cells: Sequence[Cell], column: str, label: str, lower_is_better: bool,
                  budget: float | None = None, min_spread: float = 0.0) -> dict | None:
    """The dataset's runs at one FLOP budget: {"budget", "why", "rows": [per run], "seeds": [per model],
    "pairs": [verdicts], "sentences": [...]}; None when no run has compute records. A snapshot whose fakes
    fall below `min_spread` of the real feature variance in the ranking metric's features does not compete
    (as in `fewgan select`)."""
    runs = [(c, snapshot_compute(c, column)) for c in cells]
    runs = [(c, df) for c, df in runs if df is not None]
    guarded = {id(c): _spread_guarded(c, df, column, min_spread) for c, df in runs}
    if not runs:
        return None
    if budget is None:
        budget = min(float(df["flops"].max()) for _, df in runs)
        why = "the smallest total training FLOPs among this dataset's runs"
    else:
        why = "report.flops_budget"
    sign = 1.0 if lower_is_better else -1.0
    rows, values = [], {}
    for c, _ in runs:
        df, left_out = guarded[id(c)]
        within = df[df["flops"] <= budget * (1 + 1e-12)]
        best = within.loc[(sign * within[column]).idxmin()] if len(within) else None
        rows.append({"dataset": c.dataset, "model": c.model, "seed": c.seed, "budget_flops": budget,
                     "iteration": int(best["iteration"]) if best is not None else None,
                     "flops": float(best["flops"]) if best is not None else None,
                     "kimg": float(best["kimg"]) if best is not None else None,
                     column: float(best[column]) if best is not None else None,
                     "note": None if best is not None else "no snapshot within the budget",
                     "left_out_low_spread": left_out or None})
        values.setdefault(c.model, []).append(rows[-1][column])
    spreads = {m: V.spread(v) for m, v in values.items()}
    ranges = V.rank_ranges(values, lower_is_better)
    pairs, sentences = V.dataset_verdicts(values, label, lower_is_better)
    return {"budget": budget, "why": why, "rows": rows, "headline": V.headline(values, label, lower_is_better),
            "seeds": [{"model": m, "seeds": s.n, "mean": s.mean, "std": s.std,
                       "ci_low": s.ci[0] if s.ci else None, "ci_high": s.ci[1] if s.ci else None,
                       "rank": V.rank_text(ranges[m])} for m, s in spreads.items()],
            "pairs": pairs, "sentences": sentences}


def flops_figure(dataset: str, cells: Sequence[Cell], column: str, label: str, budget: float | None,
                 path: Path) -> str | None:
    """The ranking metric of every snapshot against training FLOPs so far (log x): one colour per model, one
    line per seed; the equal-compute budget dashed."""
    from fewgan.report.figures import _save, _t, plt, wrap

    runs = [(c, snapshot_compute(c, column)) for c in cells]
    runs = [(c, df) for c, df in runs if df is not None and (df["flops"] > 0).any()]
    if not runs:
        return f"{dataset}: {label} vs training FLOPs not available (no run with FLOP records and scores)"
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    fig.subplots_adjust(left=0.15, right=0.97, top=0.88, bottom=0.12)
    colours = {}
    for c, df in runs:
        colour = colours.setdefault(c.model, f"C{len(colours) % 10}")
        df = df[df["flops"] > 0]
        ax.plot(df["flops"], df[column], "o-", color=colour, ms=3, lw=1, alpha=0.85,
                label=_t(c.model) if sum(1 for k, _ in runs if k.model == c.model and k.seed < c.seed) == 0 else None)
    if budget and math.isfinite(budget):
        ax.axvline(budget, color="grey", ls="--", lw=0.8, label="equal-compute budget")
    ax.set_xscale("log")
    ax.set_xlabel("training FLOPs so far (torch.utils.flop_counter; log scale)")
    ax.set_ylabel(wrap(label, 45), fontsize=9)
    ax.set_title(wrap(f"{dataset}: {label} vs training compute (one line per seed)", 75), fontsize=9)
    ax.legend(fontsize=7)
    _save(fig, path)
    return None
