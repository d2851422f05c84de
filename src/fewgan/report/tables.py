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


def stage_costs(datasets: list[DatasetInfo], cells: list[Cell], translation_cells: list[dict] = ()) -> pd.DataFrame:
    """Wall seconds per stage: one row per dataset (curate, split) and per dataset x model (latent generators, then
    translators: fewgan.report.translation.read_cells), plus a total row."""
    cols = ["dataset", "model"] + [s for s, _ in STAGES_PER_DATASET] + list(STAGES_PER_CELL)
    rows = []
    for ds in datasets:
        rows.append({"dataset": ds.name, "model": "(dataset)",
                     **{s: _num(ds.stages.get(s, {}).get("wall_s")) for s, _ in STAGES_PER_DATASET}})
    for c in cells:
        rows.append({"dataset": c.dataset, "model": f"{c.model}/s{c.seed}",
                     **{s: _num(c.stages.get(s, {}).get("wall_s")) for s in STAGES_PER_CELL}})
    for c in translation_cells:
        rows.append({"dataset": c["dataset"], "model": f"{c['model']}/s{c['seed']}",
                     **{s: _num(c.get("stages", {}).get(s, {}).get("wall_s")) for s in STAGES_PER_CELL}})
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
