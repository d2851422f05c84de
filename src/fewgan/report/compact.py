"""The report's compact, per-dataset tables (verdict table, the every-metric tables per feature space) and the
key/value views of provenance; split from fewgan.report.tables, whose rows and formatting they build on."""

from __future__ import annotations

import math
import re
from typing import Any

import pandas as pd

from fewgan.metrics.registry import Metric, num, registered_metrics, with_ci
from fewgan.report import render as R
from fewgan.report.collect import DatasetInfo, inversion_headline
from fewgan.report.tables import (BIAS_FOOTNOTE, BIAS_MARK, INVERSION_NAMES, _Fmt, _display_table, _missing, _num, inversion_text, not_for_decisions, rank_start)
from fewgan.select import feature_network


COMPACT_METRICS = ("msssim", "prc_effnet")
#: the columns a reader needs to tell rows apart: never folded into "same for every row"
KEY_COLUMNS = ("model",)


def split_constant(df: pd.DataFrame, keep: tuple[str, ...] = KEY_COLUMNS) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """Columns whose text is the same in every row (2 rows or more) leave the table and come back as
    [(header, value)], said once above it (a label repeated in every row is read by nobody)."""
    if len(df) < 2:
        return df, []
    constant = [c for c in df.columns if c not in keep and df[c].astype(str).nunique() == 1]
    said = [(str(c), str(df[c].iloc[0])) for c in constant if not _NA.match(str(df[c].iloc[0]))]
    missing = [str(c) for c in constant if _NA.match(str(df[c].iloc[0]))]
    if missing:  # columns no row has a value in: one line
        said.append(("not available for any row", ", ".join(missing)))
    return df.drop(columns=constant), said


_NA = re.compile(r"^(n/a|[\s/()]|—)*$")


def si(value: Any, unit: str = "") -> str:
    """3.2e12 -> "3.2 T" (FLOP counts: three significant digits, SI prefix); n/a when missing."""
    v = _num(value)
    if v is None or not math.isfinite(v):
        return "n/a"
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= factor:
            return f"{v / factor:.3g} {prefix}{unit}".rstrip()
    return f"{v:.3g} {unit}".rstrip()


def _aggregate(runs: list[dict]) -> dict:
    """One row for a model's runs (one per seed): numbers averaged over the seeds that have them, text kept
    when every seed agrees. A run's bootstrap interval (`*_ci_low/_ci_high`) is kept with one seed only: over
    several seeds the spread between them is the interval that counts."""
    if len(runs) == 1:
        return dict(runs[0])
    out: dict = {}
    for key in runs[0]:
        vals = [r.get(key) for r in runs]
        if key.endswith(("_ci_low", "_ci_high")):
            out[key] = None
        elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals if not _missing(v)) \
                and any(not _missing(v) for v in vals):
            xs = [float(v) for v in vals if not _missing(v)]
            mean = sum(xs) / len(xs)
            out[key] = int(mean) if all(isinstance(v, int) for v in vals) and len(set(vals)) == 1 else mean
        else:
            distinct = list(dict.fromkeys(str(v) for v in vals if not _missing(v)))
            out[key] = vals[0] if len(distinct) <= 1 else "; ".join(distinct)
    return out


def _has_values(metric: Metric, rows: list[dict]) -> bool:
    keys = [c.key for c in metric.report if not c.key.endswith(("_ci_low", "_ci_high"))]
    return any(_num(r.get(k)) is not None for r in rows for k in keys)


#: the compact table's columns of COMPACT_METRICS: plain values (the intervals are in the every-metric table)
COMPACT_SHOWN = {
    "msssim": lambda r, f: [("MS-SSIM fake (diversity; lower = more diverse)", f.num(r.get("msssim_fake"), 4)),
                            ("MS-SSIM real train images", f.num(r.get("msssim_real"), 4))],
    "prc_effnet": lambda r, f: [("precision / recall (EffNet, train)",
                                 f"{f.num(r.get('precision_effnet_train'), 3)} / {f.num(r.get('recall_effnet_train'), 3)}")],
}
INVERSION_HEADER = "held-out inversion, first → last snapshot"


def _compact_inversion(r: dict) -> dict:
    """{header: text}: the inversion headline's metric and snapshots in the header (the same for most rows,
    so the header says it once), the values in the cell."""
    if _missing(r.get("inversion_headline_first")) or _missing(r.get("inversion_headline")):
        return {INVERSION_HEADER: "n/a"}
    header = (f"{INVERSION_HEADER}: {INVERSION_NAMES[r['inversion_headline']]} "
              f"(it {r['inversion_first_iteration']} → {r['inversion_last_iteration']})")
    return {header: f"{R.fmt(r['inversion_headline_first'], 4)} → {R.fmt(r['inversion_headline_last'], 4)}"}


def compact_table(dataset: str, rows: list[dict], ranking: dict, decimals: int) -> tuple[pd.DataFrame, list[str]]:
    """The table under a dataset's verdict: one row per model (best rank first), with the ranking metric and
    its interval (over the seeds with 2 or more, else the run's bootstrap interval), diversity, precision /
    recall where computed, held-out inversion, cost (training FLOPs, seconds per iteration) and parameters.
    Returns the table and the notes that go above it (what the columns are, said once)."""
    from fewgan.report import verdicts as V

    f = _Fmt(decimals)
    mine = [r for r in rows if r["dataset"] == dataset]
    key, label, lower = ranking["column"], ranking["metric"], ranking["lower_is_better"]
    seeds = {s["model"]: s for s in (ranking["datasets"].get(dataset) or {}).get("seeds", [])}
    level = f"{int(ranking['level'] * 100)}%"
    by_model: dict[str, list[dict]] = {}
    for r in mine:
        by_model.setdefault(r["model"], []).append(r)
    ms = {m.name: m for m in registered_metrics()}
    extra = [ms[n] for n in COMPACT_METRICS if n in ms and _has_values(ms[n], mine)]
    out, biased_shown = [], False
    for model, runs in by_model.items():
        agg = _aggregate(runs)
        s = seeds.get(model)
        if s is None:  # unranked (the bias rule): its own spread, marked
            sp = V.spread([_num(r.get(key)) for r in runs])
            s = {"seeds": sp.n, "mean": sp.mean, "ci_low": sp.ci[0] if sp.ci else None,
                 "ci_high": sp.ci[1] if sp.ci else None, "rank": "not ranked"}
        if s["seeds"] >= 2 and s["ci_low"] is not None:
            value = f"{f.num(s['mean'])} [{f.num(s['ci_low'])}, {f.num(s['ci_high'])}]"
        else:
            value = with_ci(f, runs[0], key) if len(runs) == 1 else f.num(s["mean"])
        own = agg.get("feature_network")
        mark = lambda m: f" {BIAS_MARK}" if own and m.extractor == own else ""  # noqa: E731
        if s["rank"] == "not ranked":
            value += f" {BIAS_MARK}"
            biased_shown = True
        cells = {"rank": s["rank"], "model": model, "seeds": str(s["seeds"] or len(runs)),
                 f"{label} [{level} interval]": value}
        for m in extra:
            for header, text in COMPACT_SHOWN[m.name](agg, f):
                cells[header] = text + mark(m)
                biased_shown |= bool(mark(m))
        cells |= {**_compact_inversion(agg),
                  "training FLOPs": si(agg.get("train_flops")),
                  "train s/iter": f.num(agg.get("train_s_per_iter")),
                  "params G / D": f"{R.fmt(agg.get('params_G'))} / {R.fmt(agg.get('params_D'))}",
                  "_sort": (rank_start(s["rank"]), math.inf if s["mean"] is None else (1 if lower else -1) * s["mean"])}
        out.append(cells)
    out.sort(key=lambda c: c.pop("_sort"))
    heads = {k for c in out for k in c if k.startswith(INVERSION_HEADER)}
    if len(heads) > 1:  # runs inverted with different metrics or snapshots: the full text in each row
        for c in out:
            for k in heads:
                c.pop(k, None)
            c[INVERSION_HEADER] = inversion_text(_aggregate(by_model[c["model"]]))
    several = any(len(runs) > 1 for runs in by_model.values())
    notes = [f"Ranked by {label}: {'lower' if lower else 'higher'} is better. Interval: the {level} t interval "
             "of the mean over training seeds where a model has 2 or more, else the run's own bootstrap interval "
             "over its samples (not a verdict across models)."
             + (" Other columns: the mean over a model's seeds (every run: the tables under \"Results\")."
                if several else "")]
    effnet = sorted({str(r["effnet_features"]) for r in mine if r.get("effnet_features")})
    if any(m.extractor == "effnet-lite0" for m in extra) and effnet:
        notes.append(f"FD-EffNet, KID-EffNet and precision/recall (EffNet): {'; '.join(effnet)}.")
    if biased_shown:
        notes.append(BIAS_FOOTNOTE)
    df = pd.DataFrame(out)
    if INVERSION_HEADER in df.columns and "training FLOPs" in df.columns:  # back in its place
        cols = [c for c in df.columns if c != INVERSION_HEADER]
        cols.insert(cols.index("training FLOPs"), INVERSION_HEADER)
        df = df[cols]
    return df, notes


def all_metrics_table(dataset: str, rows: list[dict], decimals: int) -> pd.DataFrame:
    """Every metric of every run (dataset x model x seed) of one dataset: the results table without the
    dataset column (the section heading names it)."""
    df = _display_table([r for r in rows if r["dataset"] == dataset], decimals)
    return df.drop(columns=["dataset"]) if len(df) else df


ROW_KEYS = ["rank", "model", "seed"]
EXTRACTOR_TITLES = {None: "metrics from pixels (no pretrained network), held-out inversion and cost",
                    "inception": "metrics in Inception features (FID, KID)",
                    "effnet-lite0": "metrics in EfficientNet-Lite0 ImageNet features"}


def all_metrics_tables(dataset: str, rows: list[dict], decimals: int,
                       ranking: dict) -> tuple[list[tuple[str, pd.DataFrame]], list[str]]:
    """The every-metric table of a dataset cut into one table per feature space (each fits the page): the
    ranking metric's space first (with the selected iteration), then the metrics from pixels with inversion
    and cost, then the other spaces; spaces whose metrics are not for decisions here (an untrained
    extractor) last. Every table repeats rank, model and seed. A space without a value in any run gets no
    table. Returns [(title, table)] and the headers of the columns no run has a value in."""
    df = all_metrics_table(dataset, rows, decimals)
    if not len(df):
        return [("every metric", df)], []
    ms = registered_metrics()
    by_space: dict = {}
    for m in ms:
        by_space.setdefault(m.extractor, []).extend(s.header for s in m.shown)
    if "inception" in by_space:
        by_space["inception"].append("feature extractor")  # the label of the Inception's weights
    by_space.setdefault(None, [])
    by_space[None] += ["inversion (held-out) first → last", "train s/iter", "params G / D"]
    ranked = next((m.extractor for m in ms if m.name == ranking.get("name")), None)
    standard = ranking.get("standard") or {}
    shaky = {m.extractor for m in ms if not_for_decisions(m, standard)}
    order = sorted(by_space, key=lambda x: (x != ranked, x is not None, x in shaky, str(x)))
    keys = [c for c in ROW_KEYS if c in df.columns]
    empty = [c for c in df.columns if all(_NA.match(str(v)) for v in df[c])]
    out = []
    for space in order:
        cols = [c for c in by_space[space] if c in df.columns]
        if not [c for c in cols if c not in empty and c != "feature extractor"]:
            continue
        lead = keys + (["best it. (selected by)"] if not out else [])
        title = EXTRACTOR_TITLES.get(space, f"metrics in {space} features")
        if space in shaky:
            title += ": not for decisions here (the extractor does not have its standard weights)"
        out.append((title, df[lead + cols]))
    return out, empty


# ---- provenance, readable: key / value rows --------------------------------------------------------------------

def flatten(obj: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Nested JSON as (dotted key, text) rows: a list of plain values on one row, a list of long texts or of
    objects one row per item ("notes [2]")."""
    rows: list[tuple[str, str]] = []
    if isinstance(obj, dict):
        if not obj and prefix:
            return [(prefix, "(none)")]
        for k, v in obj.items():
            rows += flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, (list, tuple)):
        plain = all(not isinstance(v, (dict, list, tuple)) for v in obj)
        if not obj:
            rows.append((prefix, "(none)"))
        elif plain and sum(len(str(v)) for v in obj) <= 80:
            rows.append((prefix, ", ".join(R.fmt(v) if isinstance(v, bool) else str(v) for v in obj)))
        else:
            for i, v in enumerate(obj, 1):
                rows += flatten(v, f"{prefix} [{i}]")
    else:
        rows.append((prefix, "n/a" if obj is None else (R.fmt(obj) if isinstance(obj, bool) else str(obj))))
    return rows


def dataset_overview(datasets: list[DatasetInfo]) -> pd.DataFrame:
    """One row per dataset: what it is and how it was split; its curated and split summaries (provenance,
    hashes, paths) are key / value tables in collapsible sections (`flatten`)."""
    rows = []
    for ds in datasets:
        ss = ds.split_summary or {}
        counts = ((ss.get("classes") or {}).get("counts") or {}) if isinstance(ss, dict) else {}
        rows.append({"dataset": ds.name, "synthetic": "yes (synthetic data)" if ds.synthetic else "no",
                     "description": ds.params.get("description", ""), "domain": ds.params.get("domain", ""),
                     "train / test": (f"{ss.get('train', ss.get('n_train', 'n/a'))} / {ss.get('test', ss.get('n_test', 'n/a'))}"
                                      + (f" ({ss['method']} split, ratio {ss['ratio']})" if ss.get("method") else "")),
                     "per class train / test": "; ".join(f"{c} {v.get('train')} / {v.get('test')}"
                                                         for c, v in counts.items()) or "—"})
    return pd.DataFrame(rows)
