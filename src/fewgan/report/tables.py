"""The report's tables: summary.csv rows, the ranking, per_class.csv rows, stage costs, and their
human-facing versions. The metric columns come from the registry (fewgan.metrics.registry: each metric's
`report`, `shown`, `shown_per_class` and `rank`), in registry order; the feature extractor's label sits right
after the first metric computed from its features."""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any

import pandas as pd

from fewgan.metrics.registry import Metric, num, registered_metrics, with_ci
from fewgan.report import render as R
from fewgan.report.collect import (STAGES_PER_CELL, STAGES_PER_DATASET, Cell, DatasetInfo, feature_extractor,
                                   inversion_headline, selected_by)
from fewgan.select import allowed, bias_note, choose_metric, feature_network

HEAD = ["dataset", "model", "seed", "synthetic", "rank", "order", "ranked_by", "best_iteration", "selected_by", "selection_why"]
EXTRACTOR_COLUMNS = ["feature_extractor", "feature_extractor_standard"]
TAIL = [
    "feature_network", "biased_metrics",
    "inversion_first_iteration",
    "inversion_headline", "inversion_headline_first", "inversion_headline_last",
    "inversion_msssim_first", "inversion_msssim_last", "inversion_psnr_first", "inversion_psnr_last",
    "inversion_effnet_deep_first", "inversion_effnet_deep_last", "inversion_lpips_first", "inversion_last_iteration", "inversion_lpips_last", "inversion_lpips_note",
    "train_s_per_iter", "train_iterations", "train_flops", "resolution", "params_G", "params_D", "n_fake", "n_real_train",
    "n_real_test", "device",
]
PER_CLASS_HEAD = ["dataset", "model", "seed", "class", "class_index", "conditional", "n_real_train", "n_real_test", "n_fake"]


def _with_extractor(metrics: list[Metric], items: list[list], extractor_items: list) -> list:
    """Concatenate the metrics' items, the extractor's right after the first metric that uses features."""
    out, placed = [], False
    for m, its in zip(metrics, items):
        out += its
        if m.extractor and not placed:
            out += extractor_items
            placed = True
    return out


def summary_columns() -> list[str]:
    ms = registered_metrics()
    return HEAD + _with_extractor(ms, [[c.key for c in m.report] for m in ms], EXTRACTOR_COLUMNS) + TAIL


def per_class_columns() -> list[str]:
    return PER_CLASS_HEAD + [c.key for m in registered_metrics() for c in m.report] + ["note"]


def __getattr__(name: str) -> Any:
    if name == "SUMMARY_COLUMNS":
        return summary_columns()
    if name == "PER_CLASS_COLUMNS":
        return per_class_columns()
    raise AttributeError(name)


def slug(*parts: str) -> str:
    """A file-name-safe, collision-free name for figures of (dataset, model)."""
    raw = "__".join(parts)
    clean = re.sub(r"[^A-Za-z0-9_.-]+", "_", raw).strip("._")[:60] or "x"
    return f"{clean}-{hashlib.sha256(raw.encode()).hexdigest()[:8]}"


_num = num


def metric_values(m: dict) -> dict:
    """Every registered metric's report columns of an evaluate metrics dict (or of one class of it)."""
    return {c.key: c.get(m) for metric in registered_metrics() for c in metric.report}


def _metric_and_extractor_values(m: dict, fe: dict) -> dict:
    ms = registered_metrics()
    return dict(_with_extractor(ms, [[(c.key, c.get(m)) for c in metric.report] for metric in ms],
                                [("feature_extractor", fe["label"]), ("feature_extractor_standard", fe["standard"])]))


#: the mark after every number of a model computed in its own discriminator's feature network, and its footnote
BIAS_MARK = "†"
BIAS_FOOTNOTE = ("† computed in the features of the network this model's discriminator trains on (its spec.py "
                 "FEATURE_NETWORK): such a distance favours the model (Kynkäänniemi et al. 2023, \"The Role of "
                 "ImageNet Classes in Fréchet Inception Distance\"), so it never selects the model's snapshots or "
                 "ranks it.")


def biased_metrics(model: str) -> list[str]:
    """The registered metrics computed in the feature network `model`'s discriminator trains on."""
    fn = feature_network(model)
    return [m.name for m in registered_metrics() if fn and m.extractor == fn]


def summary_row(cell: Cell, ds: DatasetInfo) -> dict:
    m = cell.metrics
    fe = feature_extractor(cell)
    run = cell.run or {}
    row: dict[str, Any] = {
        "dataset": cell.dataset, "model": cell.model, "seed": cell.seed, "synthetic": ds.synthetic, "rank": None,
        "order": None, "ranked_by": None,
        "best_iteration": (cell.best or {}).get("iteration"),
        "selected_by": selected_by(cell),
        "selection_why": (cell.best or {}).get("why"),
        **_metric_and_extractor_values(m, fe),
        "inversion_first_iteration": None, "inversion_lpips_first": None,
        "inversion_last_iteration": None, "inversion_lpips_last": None, "inversion_lpips_note": None,
        "inversion_headline": None, "inversion_headline_first": None, "inversion_headline_last": None,
        "inversion_msssim_first": None, "inversion_msssim_last": None,
        "inversion_psnr_first": None, "inversion_psnr_last": None,
        "inversion_effnet_deep_first": None, "inversion_effnet_deep_last": None,
        "train_s_per_iter": _num(run.get("seconds_per_iteration")), "train_iterations": run.get("iterations"),
        "train_flops": _num((run.get("compute") or {}).get("flops")),
        "resolution": run.get("resolution"), "params_G": run.get("params_G"), "params_D": run.get("params_D"),
        "n_fake": m.get("n_fake"), "n_real_train": m.get("n_real_train"), "n_real_test": m.get("n_real_test"),
        "device": run.get("device") or m.get("device"),
        "feature_network": feature_network(cell.model), "biased_metrics": ", ".join(biased_metrics(cell.model)) or None,
    }
    if cell.inversion is not None:
        test = cell.inversion[cell.inversion["split"] == "test"].sort_values("iteration")
        if len(test):
            row["inversion_first_iteration"] = int(test["iteration"].iloc[0])
            row["inversion_lpips_first"] = float(test["lpips_mean"].iloc[0])
            row["inversion_last_iteration"] = int(test["iteration"].iloc[-1])
            row["inversion_lpips_last"] = float(test["lpips_mean"].iloc[-1])
            for key in ("msssim", "psnr", "effnet_deep"):
                if f"{key}_mean" in test.columns and test[f"{key}_mean"].notna().all():
                    row[f"inversion_{key}_first"] = float(test[f"{key}_mean"].iloc[0])
                    row[f"inversion_{key}_last"] = float(test[f"{key}_mean"].iloc[-1])
            head = inversion_headline(cell)
            row["inversion_headline"] = head
            row["inversion_headline_first"] = row[f"inversion_{head}_first"]
            row["inversion_headline_last"] = row[f"inversion_{head}_last"]
        lp = ((cell.inversion_meta or {}).get("settings") or {}).get("lpips") or {}
        row["inversion_lpips_note"] = lp.get("note", lp.get("fallback"))
    return row


def extractors_standard(rows: list[dict]) -> dict[str, bool]:
    """{extractor: every row's features came from its standard weights} (summary rows)."""
    return {"inception": bool(rows) and all(bool(r["feature_extractor_standard"]) for r in rows),
            "effnet-lite0": bool(rows) and all(r.get("effnet_features_standard") is True for r in rows)}


def not_for_decisions(metric: Metric, standard: dict[str, bool]) -> bool:
    """A metric that means something only with its extractor's standard weights, computed here without them
    (FID from an untrained Inception): shown, labelled, never read for a decision."""
    return bool(metric.pretrained) and not standard.get(metric.extractor or "", False)


def rank_models(rows: list[dict], setting: str) -> dict:
    """Rank the models within each dataset by the metric that selected the snapshots
    (`evaluation.select.metric`, `auto` = FID when every extractor is the standard one, else SWD), best first
    (the metric's `rank` column and direction), over the training seeds (fewgan.report.verdicts): each model's
    rank is a range that groups the models it cannot be separated from. Fills rows' rank (text: "1", "2–4")
    and ranked_by; returns the ranking with, per dataset, the spread over seeds and the pairwise verdicts."""
    from fewgan.report import verdicts as V

    from fewgan.metrics.registry import get_metric

    from fewgan.metrics.registry import selectable_metrics

    standard = extractors_standard(rows)
    # a metric no row has a value of (runs evaluated before it existed) cannot rank
    available = {s.name for s in selectable_metrics() if any(_num(r.get(s.rank[0])) is not None for r in rows)}
    chosen, _ = choose_metric(setting, standard, available=available if setting == "auto" else None)
    m = get_metric(chosen)
    key, label = m.rank
    if m.pretrained and m.extractor == "inception":
        why = f"every FID here uses the standard Inception weights (evaluation.select.metric: {setting})"
    elif m.pretrained:
        why = (f"evaluation.select.metric: {setting}; " + ("the Inception here is not the standard one, so "
                                                           if not standard["inception"] else "")
               + f"{m.title} in the pinned EfficientNet-Lite0 ImageNet features ranks (not comparable to published "
               "FID; bench/README.md: it orders degraded real images and mode collapse)")
    elif setting == chosen:
        why = f"evaluation.select.metric: {chosen} (no pretrained network)"
    else:
        distrusted = "/".join(n.upper() for n in allowed(True) if n not in allowed(False))
        why = (f"{distrusted} here come from a fallback (untrained) Inception and can rank models wrongly; "
               f"{chosen.upper()} uses no pretrained network")
    lower = m.direction == "lower"
    # a model whose discriminator trains on this metric's feature network is never ranked by it (issue 21)
    unranked = sorted({r["model"] for r in rows if m.extractor and r.get("feature_network") == m.extractor})
    per_dataset = {}
    for d in dict.fromkeys(r["dataset"] for r in rows):
        skipped = [r for r in rows if r["dataset"] == d and r["model"] in unranked]
        for r in skipped:
            r["rank"], r["ranked_by"], r["order"] = None, None, None
        mine = [r for r in rows if r["dataset"] == d and r["model"] not in unranked]
        values = {mod: [_num(r[key]) for r in mine if r["model"] == mod] for mod in dict.fromkeys(r["model"] for r in mine)}
        ranges = V.rank_ranges(values, lower)
        # the order of the means over seeds: what a single-seed table would print as ranks, kept as "order"
        means = {mod: V.spread(v).mean for mod, v in values.items()}
        ordered = sorted((mod for mod in means if means[mod] is not None), key=lambda mod: m.better(means[mod]))
        for r in mine:
            r["rank"], r["ranked_by"] = V.rank_text(ranges[r["model"]]), label
            r["order"] = ordered.index(r["model"]) + 1 if r["model"] in ordered else None
        pairs, sentences = V.dataset_verdicts(values, label, lower)
        sentences = sentences + [f"{mod} is not ranked: {bias_note(chosen, mod, m.extractor)}."
                                 for mod in dict.fromkeys(r["model"] for r in skipped)]
        spreads = {mod: V.spread(v) for mod, v in values.items()}
        per_dataset[d] = {
            "headline": V.headline(values, label, lower),
            "sentences": sentences,
            "pairs": [{"dataset": d, "metric": label, "model_a": c.a, "model_b": c.b, "delta": c.delta,
                       "ci_low": c.ci[0] if c.ci else None, "ci_high": c.ci[1] if c.ci else None,
                       "seeds_a": c.n_a, "seeds_b": c.n_b, "verdict": c.verdict} for c in pairs],
            "seeds": [{"dataset": d, "model": mod, "metric": label, "seeds": s.n, "mean": s.mean, "std": s.std,
                       "ci_low": s.ci[0] if s.ci else None, "ci_high": s.ci[1] if s.ci else None,
                       "rank": V.rank_text(ranges[mod])} for mod, s in spreads.items()],
        }
    return {"metric": label, "name": chosen, "column": key, "lower_is_better": lower, "why": why, "level": V.LEVEL,
            "datasets": per_dataset, "unranked": unranked, "standard": standard}


def rank_start(rank: Any) -> float:
    """Sort key of a rank text ("2", "2–4"; None last)."""
    if rank is None or (isinstance(rank, float) and pd.isna(rank)):
        return math.inf
    try:
        return float(str(rank).split("–")[0])
    except ValueError:  # "n/a", "not ranked"
        return math.inf


def stage_costs(datasets: list[DatasetInfo], cells: list[Cell]) -> pd.DataFrame:
    """Wall seconds per stage: one row per dataset (curate, split) and per dataset x model, plus a total row."""
    cols = ["dataset", "model"] + [s for s, _ in STAGES_PER_DATASET] + list(STAGES_PER_CELL)
    rows = []
    for ds in datasets:
        rows.append({"dataset": ds.name, "model": "(dataset)",
                     **{s: _num(ds.stages.get(s, {}).get("wall_s")) for s, _ in STAGES_PER_DATASET}})
    for c in cells:
        rows.append({"dataset": c.dataset, "model": f"{c.model}/s{c.seed}",
                     **{s: _num(c.stages.get(s, {}).get("wall_s")) for s in STAGES_PER_CELL}})
    df = pd.DataFrame(rows, columns=cols)
    stage_cols = cols[2:]
    df["total"] = df[stage_cols].sum(axis=1, min_count=1)
    total = {"dataset": "TOTAL", "model": "", **{s: df[s].sum(min_count=1) for s in stage_cols + ["total"]}}
    return pd.concat([df, pd.DataFrame([total])], ignore_index=True)


def per_class_rows(cells: list[Cell], datasets: list[DatasetInfo]) -> list[dict]:
    """One row per class for class-conditional generators (evaluate's per_class); for an unconditional
    generator on a dataset with classes, one row saying that it has only overall metrics."""
    classed = {ds.name: ((ds.split_summary or {}).get("classes") or {}).get("names") for ds in datasets}
    rows: list[dict] = []
    for c in cells:
        pc = c.metrics.get("per_class")
        if isinstance(pc, dict) and pc:
            for name, m in pc.items():
                rows.append({
                    "dataset": c.dataset, "model": c.model, "seed": c.seed, "class": name, "class_index": m.get("index"),
                    "conditional": True, "n_real_train": m.get("n_real_train"), "n_real_test": m.get("n_real_test"),
                    "n_fake": m.get("n_fake"), **metric_values(m),
                    "note": "; ".join(m.get("notes") or []) or None})
        elif classed.get(c.dataset):
            rows.append({k: None for k in per_class_columns()} | {
                "dataset": c.dataset, "model": c.model, "seed": c.seed, "class": "(all)", "conditional": False,
                "note": (f"unconditional generator: trained on all {len(classed[c.dataset])} classes "
                         f"({', '.join(classed[c.dataset])}) as one set; overall metrics only")})
    return rows


class _Fmt:
    """What a metric's Shown column formats with: the report's decimals, n/a for missing values."""

    def __init__(self, decimals: int):
        self.decimals = decimals

    def num(self, v: Any, decimals: int | None = None) -> str:
        return R.fmt(v, self.decimals if decimals is None else decimals)

    def pm(self, value: Any, std: Any) -> str:
        return _plus_minus(value, std, self.decimals)


def _plus_minus(value: Any, std: Any, decimals: int) -> str:
    """"value ± std" (KID and its spread over subsets); "n/a" without a value."""
    if value is None or pd.isna(value):
        return "n/a"
    return R.fmt(value, decimals) + ("" if std is None or pd.isna(std) else f" ± {R.fmt(std, decimals)}")


def _per_class_shown() -> list:
    return [s for m in registered_metrics() for s in (m.shown if m.shown_per_class is None else m.shown_per_class)]


def _per_class_display(rows: list[dict], decimals: int) -> pd.DataFrame:
    f = _Fmt(decimals)
    out = []
    for r in rows:
        head = {"dataset": r["dataset"], "model": r["model"], "seed": r["seed"], "class": r["class"]}
        if not r["conditional"]:
            out.append(head | {"real train / test": ""} | {s.header: "" for s in _per_class_shown()}
                       | {"note": r["note"]})
            continue
        out.append(head | {"real train / test": f"{R.fmt(r['n_real_train'])} / {R.fmt(r['n_real_test'])}"}
                   | {s.header: s.show(r, f) for s in _per_class_shown()} | {"note": r["note"] or ""})
    return pd.DataFrame(out)


PER_CLASS_CAPTION = ("Class-conditional generators are also evaluated per class: fakes of one class against the "
                     "real images of that class (few real images per class: these numbers are noisier than the "
                     "overall ones, which rank and select). Full precision: per_class.csv.")


INVERSION_NAMES = {"msssim": "MS-SSIM", "lpips": "LPIPS", "psnr": "PSNR", "effnet_deep": "EffNet deep-feature distance"}


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def inversion_text(r: dict) -> str:
    """The held-out inversion headline of a summary row, first -> last inverted snapshot (PSNR beside it)."""
    if _missing(r.get("inversion_headline_first")) or _missing(r.get("inversion_headline")):
        return "n/a"
    inv = (f"{INVERSION_NAMES[r['inversion_headline']]} {R.fmt(r['inversion_headline_first'], 4)} "
           f"(it {r['inversion_first_iteration']}) → {R.fmt(r['inversion_headline_last'], 4)} "
           f"(it {r['inversion_last_iteration']})")
    if r["inversion_headline"] != "psnr" and not _missing(r.get("inversion_psnr_first")):
        inv += f"; PSNR {R.fmt(r['inversion_psnr_first'], 2)} → {R.fmt(r['inversion_psnr_last'], 2)} dB"
    return inv


def _display_table(rows: list[dict], decimals: int) -> pd.DataFrame:
    """The human-facing results table: the feature-extractor label sits right next to the FID values."""
    f = _Fmt(decimals)
    ms = registered_metrics()
    # within each dataset, best rank first (rows without a rank last), datasets in params order
    order = {d: i for i, d in enumerate(dict.fromkeys(r["dataset"] for r in rows))}
    out = []
    for r in sorted(rows, key=lambda r: (order[r["dataset"]], rank_start(r["rank"]), r["order"] or math.inf,
                                         r["model"], r["seed"])):
        inv = inversion_text(r)
        own = r.get("feature_network")
        labels = {v for v in r.values() if isinstance(v, str)}  # a shown label is not a number: no mark

        def shown(m, s):
            text = s.show(r, f)
            return text + (f" {BIAS_MARK}" if own and m.extractor == own and text not in labels else "")

        metric_cells = _with_extractor(ms, [[(s.header, shown(m, s)) for s in m.shown] for m in ms],
                                       [("feature extractor", r["feature_extractor"])])
        out.append({
            "rank": r["rank"] if r["rank"] is not None else ("not ranked" if r.get("biased_metrics") else "n/a"),
            "dataset": r["dataset"] + (" (synthetic)" if r["synthetic"] else ""),
            "model": r["model"], "seed": r["seed"],
            "best it. (selected by)": ((R.fmt(r["best_iteration"]) if r["best_iteration"] is not None else "n/a")
                                       + (f" ({str(r['selected_by']).upper()})" if r["selected_by"] else "")),
            **dict(metric_cells),
            "inversion (held-out) first → last": inv,
            "train s/iter": f.num(r["train_s_per_iter"]),
            "params G / D": f"{R.fmt(r['params_G'])} / {R.fmt(r['params_D'])}",
        })
    return pd.DataFrame(out)


def _costs_display(costs: pd.DataFrame) -> pd.DataFrame:
    out = costs.copy()
    for c in out.columns[2:]:
        out[c] = [R.fmt(v, 1) if v is not None and not pd.isna(v) else "n/a" for v in out[c]]
    return out


# ---- what a reader sees first: one compact table per dataset ---------------------------------------------------

#: the registered metrics shown beside the ranking metric in a dataset's compact table, where a row has them:
#: diversity (MS-SSIM fake vs real) and precision / recall
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
