"""`fewgan report`: build reports/benchmark/ (index.html, README.md, summary.csv, stage_costs.csv,
report.json, figures/, and per_class.csv when a dataset has classes) from the runs of the experiment
matrix in params."""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path
from typing import Any

import pandas as pd

from fewgan.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from fewgan.report import figures as figs
from fewgan.report import render as R
from fewgan.select import choose_metric
from fewgan.report.collect import (STAGES_PER_CELL, STAGES_PER_DATASET, Cell, DatasetInfo, feature_extractor,
                                   inversion_headline, read_cell, read_dataset, selected_by)

log = logging.getLogger(__name__)

#: FastGAN paper (Liu et al., ICLR 2021), few-shot FID at 256 px, as listed in REFERENCE.md section 1.
PAPER_FID_256 = [
    ("Obama (100)", 41.05, 46.87, 80.20),
    ("Grumpy cat (100)", 26.65, 27.08, 48.90),
    ("Panda (100)", 10.03, 12.06, 34.27),
    ("AnimalFace dog (389)", 50.66, 58.85, 130.19),
]
PAPER_COLUMNS = ["dataset (images)", "FastGAN (paper)", "StyleGAN2 + DiffAugment (paper)", "StyleGAN2 (paper)"]

SUMMARY_COLUMNS = [
    "dataset", "model", "synthetic", "rank", "ranked_by", "best_iteration", "selected_by", "selection_why",
    "fid_train", "fid_test", "feature_extractor",
    "feature_extractor_standard", "kid_train_x1e3", "kid_train_std_x1e3", "kid_test_x1e3", "kid_test_std_x1e3",
    "swd_mean_x1e3", "swd_real_floor_x1e3", "msssim_fake", "msssim_real", "inversion_first_iteration",
    "inversion_headline", "inversion_headline_first", "inversion_headline_last",
    "inversion_msssim_first", "inversion_msssim_last", "inversion_psnr_first", "inversion_psnr_last",
    "inversion_lpips_first", "inversion_last_iteration", "inversion_lpips_last", "inversion_lpips_note",
    "train_s_per_iter", "train_iterations", "resolution", "params_G", "params_D", "n_fake", "n_real_train",
    "n_real_test", "device",
]


def slug(*parts: str) -> str:
    """A file-name-safe, collision-free name for figures of (dataset, model)."""
    raw = "__".join(parts)
    clean = re.sub(r"[^A-Za-z0-9_.-]+", "_", raw).strip("._")[:60] or "x"
    return f"{clean}-{hashlib.sha256(raw.encode()).hexdigest()[:8]}"


def _num(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _swd_mean(swd: Any) -> float | None:
    if isinstance(swd, dict):
        return _num(swd.get("mean"))
    return _num(swd)


def summary_row(cell: Cell, ds: DatasetInfo) -> dict:
    m = cell.metrics
    fe = feature_extractor(cell)
    run = cell.run or {}
    row: dict[str, Any] = {
        "dataset": cell.dataset, "model": cell.model, "synthetic": ds.synthetic, "rank": None, "ranked_by": None,
        "best_iteration": (cell.best or {}).get("iteration"),
        "selected_by": selected_by(cell),
        "selection_why": (cell.best or {}).get("why"),
        "fid_train": _num(m.get("fid_train")), "fid_test": _num(m.get("fid_test")),
        "feature_extractor": fe["label"], "feature_extractor_standard": fe["standard"],
        "kid_train_x1e3": _num(m.get("kid_train")), "kid_train_std_x1e3": _num(m.get("kid_train_std")),
        "kid_test_x1e3": _num(m.get("kid_test")), "kid_test_std_x1e3": _num(m.get("kid_test_std")),
        "swd_mean_x1e3": _swd_mean(m.get("swd")), "swd_real_floor_x1e3": _swd_mean(m.get("swd_real_floor")),
        "msssim_fake": _num(m.get("msssim_fake")), "msssim_real": _num(m.get("msssim_real")),
        "inversion_first_iteration": None, "inversion_lpips_first": None,
        "inversion_last_iteration": None, "inversion_lpips_last": None, "inversion_lpips_note": None,
        "inversion_headline": None, "inversion_headline_first": None, "inversion_headline_last": None,
        "inversion_msssim_first": None, "inversion_msssim_last": None,
        "inversion_psnr_first": None, "inversion_psnr_last": None,
        "train_s_per_iter": _num(run.get("seconds_per_iteration")), "train_iterations": run.get("iterations"),
        "resolution": run.get("resolution"), "params_G": run.get("params_G"), "params_D": run.get("params_D"),
        "n_fake": m.get("n_fake"), "n_real_train": m.get("n_real_train"), "n_real_test": m.get("n_real_test"),
        "device": run.get("device") or m.get("device"),
    }
    if cell.inversion is not None:
        test = cell.inversion[cell.inversion["split"] == "test"].sort_values("iteration")
        if len(test):
            row["inversion_first_iteration"] = int(test["iteration"].iloc[0])
            row["inversion_lpips_first"] = float(test["lpips_mean"].iloc[0])
            row["inversion_last_iteration"] = int(test["iteration"].iloc[-1])
            row["inversion_lpips_last"] = float(test["lpips_mean"].iloc[-1])
            for key in ("msssim", "psnr"):
                if f"{key}_mean" in test.columns:
                    row[f"inversion_{key}_first"] = float(test[f"{key}_mean"].iloc[0])
                    row[f"inversion_{key}_last"] = float(test[f"{key}_mean"].iloc[-1])
            head = inversion_headline(cell)
            row["inversion_headline"] = head
            row["inversion_headline_first"] = row[f"inversion_{head}_first"]
            row["inversion_headline_last"] = row[f"inversion_{head}_last"]
        lp = ((cell.inversion_meta or {}).get("settings") or {}).get("lpips") or {}
        row["inversion_lpips_note"] = lp.get("note", lp.get("fallback"))
    return row


#: evaluate's column for each metric select can use (values of the selected snapshot, vs the train split)
RANK_COLUMNS = {"fid": ("fid_train", "FID (train)"), "kid": ("kid_train_x1e3", "KID×10³ (train)"),
                "swd": ("swd_mean_x1e3", "SWD×10³ (mean over levels, vs train)")}


def rank_models(rows: list[dict], setting: str) -> dict:
    """Rank the models within each dataset by the metric that selected the snapshots
    (`evaluation.select.metric`, `auto` = FID when every extractor is the standard one, else SWD), lower first.
    Fills rows' rank/ranked_by."""
    standard = bool(rows) and all(bool(r["feature_extractor_standard"]) for r in rows)
    chosen, _ = choose_metric(setting, standard)
    key, metric = RANK_COLUMNS[chosen]
    if chosen != "swd":
        why = f"every FID here uses the standard Inception weights (evaluation.select.metric: {setting})"
    elif setting == "swd":
        why = "evaluation.select.metric: swd (no pretrained network)"
    else:
        why = ("FID/KID here come from a fallback (untrained) Inception and can rank models wrongly; SWD uses no "
               "pretrained network")
    for d in dict.fromkeys(r["dataset"] for r in rows):
        mine = [r for r in rows if r["dataset"] == d and _num(r[key]) is not None]
        for i, r in enumerate(sorted(mine, key=lambda r: _num(r[key])), start=1):
            r["rank"], r["ranked_by"] = i, metric
    return {"metric": metric, "column": key, "why": why}


def stage_costs(datasets: list[DatasetInfo], cells: list[Cell]) -> pd.DataFrame:
    """Wall seconds per stage: one row per dataset (curate, split) and per dataset x model, plus a total row."""
    cols = ["dataset", "model"] + [s for s, _ in STAGES_PER_DATASET] + list(STAGES_PER_CELL)
    rows = []
    for ds in datasets:
        rows.append({"dataset": ds.name, "model": "(dataset)",
                     **{s: _num(ds.stages.get(s, {}).get("wall_s")) for s, _ in STAGES_PER_DATASET}})
    for c in cells:
        rows.append({"dataset": c.dataset, "model": c.model,
                     **{s: _num(c.stages.get(s, {}).get("wall_s")) for s in STAGES_PER_CELL}})
    df = pd.DataFrame(rows, columns=cols)
    stage_cols = cols[2:]
    df["total"] = df[stage_cols].sum(axis=1, min_count=1)
    total = {"dataset": "TOTAL", "model": "", **{s: df[s].sum(min_count=1) for s in stage_cols + ["total"]}}
    return pd.concat([df, pd.DataFrame([total])], ignore_index=True)


PER_CLASS_COLUMNS = ["dataset", "model", "class", "class_index", "conditional", "n_real_train", "n_real_test",
                     "n_fake", "fid_train", "fid_test", "kid_train_x1e3", "kid_train_std_x1e3", "kid_test_x1e3",
                     "kid_test_std_x1e3", "swd_mean_x1e3", "swd_real_floor_x1e3", "msssim_fake", "msssim_real",
                     "note"]


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
                    "dataset": c.dataset, "model": c.model, "class": name, "class_index": m.get("index"),
                    "conditional": True, "n_real_train": m.get("n_real_train"), "n_real_test": m.get("n_real_test"),
                    "n_fake": m.get("n_fake"), "fid_train": _num(m.get("fid_train")), "fid_test": _num(m.get("fid_test")),
                    "kid_train_x1e3": _num(m.get("kid_train")), "kid_train_std_x1e3": _num(m.get("kid_train_std")),
                    "kid_test_x1e3": _num(m.get("kid_test")), "kid_test_std_x1e3": _num(m.get("kid_test_std")),
                    "swd_mean_x1e3": _swd_mean(m.get("swd")), "swd_real_floor_x1e3": _swd_mean(m.get("swd_real_floor")),
                    "msssim_fake": _num(m.get("msssim_fake")), "msssim_real": _num(m.get("msssim_real")),
                    "note": "; ".join(m.get("notes") or []) or None})
        elif classed.get(c.dataset):
            rows.append({k: None for k in PER_CLASS_COLUMNS} | {
                "dataset": c.dataset, "model": c.model, "class": "(all)", "conditional": False,
                "note": (f"unconditional generator: trained on all {len(classed[c.dataset])} classes "
                         f"({', '.join(classed[c.dataset])}) as one set; overall metrics only")})
    return rows


def _plus_minus(value: Any, std: Any, decimals: int) -> str:
    """"value ± std" (KID and its spread over subsets); "n/a" without a value."""
    if value is None or pd.isna(value):
        return "n/a"
    return R.fmt(value, decimals) + ("" if std is None or pd.isna(std) else f" ± {R.fmt(std, decimals)}")


def _per_class_display(rows: list[dict], decimals: int) -> pd.DataFrame:
    f = lambda v: R.fmt(v, decimals)  # noqa: E731
    pm = lambda a, b: _plus_minus(a, b, decimals)  # noqa: E731

    out = []
    for r in rows:
        if not r["conditional"]:
            out.append({"dataset": r["dataset"], "model": r["model"], "class": r["class"], "real train / test": "",
                        "FID train": "", "FID test": "", "KID×10³ train": "", "KID×10³ test": "",
                        "SWD×10³ mean (real floor)": "", "MS-SSIM fake (real)": "", "note": r["note"]})
            continue
        out.append({
            "dataset": r["dataset"], "model": r["model"], "class": r["class"],
            "real train / test": f"{R.fmt(r['n_real_train'])} / {R.fmt(r['n_real_test'])}",
            "FID train": f(r["fid_train"]), "FID test": f(r["fid_test"]),
            "KID×10³ train": pm(r["kid_train_x1e3"], r["kid_train_std_x1e3"]),
            "KID×10³ test": pm(r["kid_test_x1e3"], r["kid_test_std_x1e3"]),
            "SWD×10³ mean (real floor)": f"{f(r['swd_mean_x1e3'])} ({f(r['swd_real_floor_x1e3'])})",
            "MS-SSIM fake (real)": f"{R.fmt(r['msssim_fake'], 4)} ({R.fmt(r['msssim_real'], 4)})",
            "note": r["note"] or ""})
    return pd.DataFrame(out)


PER_CLASS_CAPTION = ("Class-conditional generators are also evaluated per class: fakes of one class against the "
                     "real images of that class (few real images per class: these numbers are noisier than the "
                     "overall ones, which rank and select). Full precision: per_class.csv.")


def _display_table(rows: list[dict], decimals: int) -> pd.DataFrame:
    """The human-facing results table: the feature-extractor label sits right next to the FID values."""
    f = lambda v: R.fmt(v, decimals)  # noqa: E731
    pm = lambda a, b: _plus_minus(a, b, decimals)  # noqa: E731

    # within each dataset, best rank first (rows without a rank last), datasets in params order
    order = {d: i for i, d in enumerate(dict.fromkeys(r["dataset"] for r in rows))}
    out = []
    for r in sorted(rows, key=lambda r: (order[r["dataset"]], r["rank"] is None, r["rank"] or 0)):
        inv = "n/a"
        if r["inversion_headline_first"] is not None and not pd.isna(r["inversion_headline_first"]):
            name = {"msssim": "MS-SSIM", "lpips": "LPIPS", "psnr": "PSNR"}[r["inversion_headline"]]
            inv = (f"{name} {R.fmt(r['inversion_headline_first'], 4)} (it {r['inversion_first_iteration']}) → "
                   f"{R.fmt(r['inversion_headline_last'], 4)} (it {r['inversion_last_iteration']})")
            if r["inversion_headline"] != "psnr" and r["inversion_psnr_first"] is not None:
                inv += (f"; PSNR {R.fmt(r['inversion_psnr_first'], 2)} → {R.fmt(r['inversion_psnr_last'], 2)} dB")
        out.append({
            "rank": R.fmt(r["rank"]) if r["rank"] is not None else "n/a",
            "dataset": r["dataset"] + (" (synthetic)" if r["synthetic"] else ""),
            "model": r["model"],
            "best it. (selected by)": ((R.fmt(r["best_iteration"]) if r["best_iteration"] is not None else "n/a")
                                       + (f" ({str(r['selected_by']).upper()})" if r["selected_by"] else "")),
            "FID train": f(r["fid_train"]), "FID test": f(r["fid_test"]),
            "feature extractor": r["feature_extractor"],
            "KID×10³ train": pm(r["kid_train_x1e3"], r["kid_train_std_x1e3"]),
            "KID×10³ test": pm(r["kid_test_x1e3"], r["kid_test_std_x1e3"]),
            "SWD×10³ mean": f(r["swd_mean_x1e3"]),
            "MS-SSIM fake (real)": f"{R.fmt(r['msssim_fake'], 4)} ({R.fmt(r['msssim_real'], 4)})",
            "inversion (held-out) first → last": inv,
            "train s/iter": f(r["train_s_per_iter"]),
            "params G / D": f"{R.fmt(r['params_G'])} / {R.fmt(r['params_D'])}",
        })
    return pd.DataFrame(out)


def _dataset_table(datasets: list[DatasetInfo]) -> pd.DataFrame:
    rows = []
    for ds in datasets:
        cs, ss = ds.curated_summary or {}, ds.split_summary or {}
        scal = lambda d: "; ".join(f"{k}={v}" for k, v in d.items()  # noqa: E731
                                   if isinstance(v, (int, float, str, bool)) and k != "provenance") or "n/a"
        rows.append({"dataset": ds.name, "synthetic": "yes (synthetic data)" if ds.synthetic else "no",
                     "description": ds.params.get("description", ""), "domain": ds.params.get("domain", ""),
                     "curated": scal(cs) if ds.curated_summary else "not available",
                     "split": scal(ss) if ds.split_summary else "not available"})
    return pd.DataFrame(rows)


def _costs_display(costs: pd.DataFrame) -> pd.DataFrame:
    out = costs.copy()
    for c in out.columns[2:]:
        out[c] = [R.fmt(v, 1) if v is not None and not pd.isna(v) else "n/a" for v in out[c]]
    return out


def _provenance(params: dict) -> dict:
    from fewgan.provenance import collect

    return collect(params, device="cpu")


def run(params: dict, runs_dir: Path, data_dir: Path, out_dir: Path) -> dict:
    """Build the benchmark report for params['experiment'] (datasets x models) into out_dir, replacing it
    whole (built beside it and swapped in: no file of an earlier report, e.g. of another experiment list,
    survives, and a killed build leaves the previous report intact).

    Raises ReportInputError (a FileNotFoundError) naming the file when a required
    runs/<dataset>/<model>/evaluate/metrics.json is missing. Returns the report.json content."""
    from fewgan.io import atomic_dir

    with atomic_dir(Path(out_dir)) as tmp:
        return _build(params, runs_dir, data_dir, tmp)


def _build(params: dict, runs_dir: Path, data_dir: Path, out_dir: Path) -> dict:
    cfg = params["report"]
    exp = params["experiment"]
    ds_names, models = list(exp.get("datasets") or []), list(exp.get("models") or [])
    if not ds_names or not models:
        raise KeyError("params experiment.datasets and experiment.models must be non-empty lists (params/base.yaml)")
    runs_dir, data_dir, out_dir = Path(runs_dir), Path(data_dir), Path(out_dir)
    decimals = int(cfg["decimals"])
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)

    datasets = [read_dataset(params, d, data_dir) for d in ds_names]
    cells = [read_cell(runs_dir, d, m) for d in ds_names for m in models]
    by_ds = {d: [c for c in cells if c.dataset == d] for d in ds_names}

    rows = [summary_row(c, ds) for ds in datasets for c in by_ds[ds.name]]
    ranking = rank_models(rows, params["evaluation"]["select"]["metric"])
    summary = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    atomic_write_text(out_dir / "summary.csv", summary.to_csv(index=False, lineterminator="\n"))
    pc_rows = per_class_rows(cells, datasets)
    if pc_rows:
        atomic_write_text(out_dir / "per_class.csv",
                          pd.DataFrame(pc_rows, columns=PER_CLASS_COLUMNS).to_csv(index=False, lineterminator="\n"))
    costs = stage_costs(datasets, cells)
    atomic_write_text(out_dir / "stage_costs.csv", costs.to_csv(index=False, lineterminator="\n"))

    # ---- figures -----------------------------------------------------------------------------------
    notes: list[str] = [n for ds in datasets for n in ds.notes] + [n for c in cells for n in c.notes]
    # how snapshots were sampled where that is not a plain full-resolution generator (ProGAN before its last
    # level): said once per run, beside the numbers it affects
    sampling = [f"{c.dataset}/{c.model}: " + "; ".join(((c.scores_meta or {}).get("snapshot_notes") or [])
                                                       + ([c.metrics["snapshot_note"]] if c.metrics.get("snapshot_note") else []))
                for c in cells if (c.scores_meta or {}).get("snapshot_notes") or c.metrics.get("snapshot_note")]
    figures: dict[str, list[tuple[str, str]]] = {d: [] for d in ds_names}  # dataset -> [(rel path, caption)]
    grids: list[tuple[str, str]] = []

    def attempt(fn, *args) -> str | None:
        try:
            return fn(*args)
        except Exception as exc:  # an optional figure must never stop the report; say why it is missing
            log.warning("figure %s failed: %s", fn.__name__, exc)
            return f"figure {fn.__name__} for {args[0]} not available (error: {exc})"

    for d in ds_names:
        labels = [feature_extractor(c)["label"] for c in by_ds[d]]
        for name, fn, args, caption in (
            ("fid", figs.fid_curves, (d, by_ds[d], labels), f"{d}: FID vs iteration (all models)"),
            ("swd", figs.swd_curves, (d, by_ds[d], labels),
             f"{d}: SWD vs iteration (all models; no pretrained network)"),
            ("inversion", figs.inversion_curves, (d, by_ds[d]),
             f"{d}: held-out reconstruction quality vs iteration (FastGAN Table 5 analogue)"),
            ("samples", figs.samples_overview, (d, by_ds[d]), f"{d}: samples of the selected snapshot per model"),
        ):
            rel = f"figures/{name}_{slug(d)}.png" if name != "samples" else f"figures/overview_{slug(d)}.png"
            note = attempt(fn, *args, out_dir / rel)
            if note:
                notes.append(note)
            else:
                figures[d].append((rel, caption))
        for c in by_ds[d]:
            for src, kind in ((c.samples_png, "samples"), (c.reconstructions_png, "reconstructions")):
                if src is None:
                    continue
                rel = f"figures/{kind}_{slug(c.dataset, c.model)}.png"
                atomic_write_bytes(out_dir / rel, src.read_bytes())
                grids.append((rel, f"{c.dataset} / {c.model}: {kind}" +
                              (" (targets first row, one row per snapshot)" if kind == "reconstructions" else "")))
    cost_note = attempt(figs.stage_cost_bars, costs[costs["dataset"] != "TOTAL"], fig_dir / "stage_costs.png")
    if cost_note:
        notes.append(cost_note)

    # ---- provenance and fallbacks ---------------------------------------------------------------------
    prov = _provenance(params)
    # one line per distinct fallback text, naming every stage it applied to
    where_by_text: dict[str, list[str]] = {}
    for w, t in [pair for ds in datasets for pair in ds.fallbacks] + [pair for c in cells for pair in c.fallbacks]:
        t = t.removeprefix("snapshot: ")
        where_by_text.setdefault(t, [])
        if w not in where_by_text[t]:
            where_by_text[t].append(w)
    fallbacks = [f"{t} [{', '.join(ws)}]" for t, ws in where_by_text.items()]
    commits = sorted({str((c.metrics.get("provenance") or {}).get("git", {}).get("commit")) for c in cells
                      if (c.metrics.get("provenance") or {}).get("git", {}).get("commit")})
    devices = sorted({str(c.run.get("device")) for c in cells if c.run and c.run.get("device")})
    non_standard = sorted({feature_extractor(c)["label"] for c in cells if not feature_extractor(c)["standard"]})
    synthetic = [ds.name for ds in datasets if ds.synthetic]
    git = prov.get("git") or {}
    versions = prov.get("versions") or {}
    prov_rows = [
        ("report created", prov.get("created")),
        ("git commit (report)", f"{git.get('commit')}" + (" (dirty working tree)" if git.get("dirty") else "")),
        ("git commits of evaluate outputs", ", ".join(commits) or "n/a"),
        ("fewgan version", versions.get("fewgan")),
        ("torch", versions.get("torch")), ("torch-fidelity", versions.get("torch-fidelity")),
        ("lpips", versions.get("lpips")),
        ("params profile", params.get("profile")),
        ("experiment overrides (edits of params/active.yaml)",
         ", ".join(prov.get("experiment_overrides") or []) or ("none" if prov.get("experiment_overrides") == [] else "unknown")),
        ("sha256 of params/active.yaml", (params.get("_meta") or {}).get("sha256") or prov.get("params_sha256")),
        ("training device(s)", ", ".join(devices) or "n/a"),
        ("host", (prov.get("host") or {}).get("platform")),
    ]
    prov_df = pd.DataFrame(prov_rows, columns=["item", "value"])

    # ---- documents ------------------------------------------------------------------------------------
    title = str(cfg["title"])
    display = _display_table(rows, decimals)
    ds_table = _dataset_table(datasets)
    costs_disp = _costs_display(costs)
    paper = pd.DataFrame([(n, R.fmt(a), R.fmt(b), R.fmt(c)) for n, a, b, c in PAPER_FID_256], columns=PAPER_COLUMNS)
    selected_by = sorted({str(r["selected_by"]).upper() for r in rows if r["selected_by"]})
    verdict = (f"Models are ranked by {ranking['metric']} ({ranking['why']}). Each run's snapshot was selected "
               f"by {', '.join(selected_by) or 'n/a'} (evaluation.select.metric; the reason is in summary.csv, "
               "column selection_why).")
    banner = ("Every FID/KID value in this report was computed with " + "; ".join(non_standard) +
              ". Do not compare these numbers with published FID/KID. Features of an untrained network do not "
              "measure perceptual quality, so these FID/KID values can rank models wrongly: fewgan selected "
              "snapshots and ranks models by SWD instead (no pretrained network); compare SWD, MS-SSIM and the "
              "samples.") if non_standard else None
    synth_note = (f"Synthetic data: {', '.join(synthetic)} (procedurally generated images, not a real "
                  "few-shot dataset).") if synthetic else None
    paper_caption = ("Published numbers, for reference only: FastGAN paper (Liu et al., ICLR 2021), few-shot FID "
                     "at 256 px, lower is better. These were NOT computed by fewgan and are kept in a separate "
                     "table; " + ("fewgan's numbers above use a non-standard feature extractor and are not "
                                  "comparable to them." if non_standard else
                                  "fewgan's numbers are comparable only for the same dataset and protocol."))
    shown_grids, linked_grids = grids[: int(cfg["image_grid_max"])], grids[int(cfg["image_grid_max"]):]

    md: list[str] = [f"# {R.md_text(title)}", ""]
    if banner:
        md += [f"> **⚠ {R.md_text(banner)}**", ""]
    if synth_note:
        md += [f"> **{R.md_text(synth_note)}**", ""]
    md += ["## Results (selected snapshot per dataset × model)", "",
           R.md_text(verdict), "",
           "Lower is better for FID, KID, SWD and inversion LPIPS; MS-SSIM is diversity (lower = more diverse, "
           "real set in parentheses); inversion MS-SSIM and PSNR: higher = closer reconstruction. KID and SWD "
           "are ×10³.", "", R.md_table(display), "",
           "Full precision: [summary.csv](summary.csv).", ""]
    if pc_rows:
        md += ["### Per class", "", PER_CLASS_CAPTION, "", R.md_table(_per_class_display(pc_rows, decimals)), ""]
    md += ["## Datasets", "", R.md_table(ds_table), ""]
    if cfg["include_paper_table"]:
        md += ["## Published numbers (for reference only)", "", paper_caption, "", R.md_table(paper), ""]
    md += ["## Figures", ""]
    for d in ds_names:
        md += [f"### {R.md_text(d)}", ""]
        for rel, cap in figures[d]:
            md += [R.md_img(rel, cap), ""]
    md += ["## Image grids", ""]
    for rel, cap in shown_grids:
        md += [f"**{R.md_text(cap)}**", "", R.md_img(rel, cap), ""]
    for rel, cap in linked_grids:
        md += [f"- [{R.md_text(cap)}]({rel})"]
    if sampling:
        md += ["", "## How snapshots were sampled", "", R.md_list(sampling)]
    md += ["", "## Stage costs (wall seconds)", "", R.md_table(costs_disp), "",
           "## Not available", "", R.md_list(notes), "",
           "## Fallbacks in force", "", R.md_list(fallbacks), "",
           "## Provenance", "", R.md_table(prov_df), ""]
    atomic_write_text(out_dir / "README.md", "\n".join(md))

    sec: list[str] = []
    if banner:
        sec.append(f'<div class="banner">⚠ {R.esc(banner)}</div>')
    if synth_note:
        sec.append(f'<div class="synthetic">{R.esc(synth_note)}</div>')
    sec += ["<h2>Results (selected snapshot per dataset × model)</h2>",
            f'<p class="verdict">{R.esc(verdict)}</p>',
            "<p>Lower is better for FID, KID, SWD and inversion LPIPS; MS-SSIM is diversity (lower = more diverse, "
            "real set in parentheses); inversion MS-SSIM and PSNR: higher = closer reconstruction. KID and SWD "
            "are ×10³. Full precision: "
            '<a href="summary.csv">summary.csv</a>.</p>', R.html_table(display, "results")]
    if pc_rows:
        sec += ["<h3>Per class</h3>", f"<p>{R.esc(PER_CLASS_CAPTION)}</p>",
                R.html_table(_per_class_display(pc_rows, decimals), "per-class")]
    sec += ["<h2>Datasets</h2>", R.html_table(ds_table)]
    if cfg["include_paper_table"]:
        sec += ['<div class="paper"><h2>Published numbers (for reference only)</h2>',
                f"<p>{R.esc(paper_caption)}</p>", R.html_table(paper, "paper"), "</div>"]
    sec.append("<h2>Figures</h2>")
    for d in ds_names:
        sec.append(f"<h3>{R.esc(d)}</h3>")
        sec += [R.html_img(rel, cap) for rel, cap in figures[d]]
    sec.append("<h2>Image grids</h2>")
    sec += [R.html_img(rel, cap) for rel, cap in shown_grids]
    if linked_grids:
        sec.append("<ul>" + "".join(f'<li><a href="{R.esc(rel)}">{R.esc(cap)}</a></li>'
                                    for rel, cap in linked_grids) + "</ul>")
    if sampling:
        sec += ["<h2>How snapshots were sampled</h2>", R.html_list(sampling)]
    sec += ["<h2>Stage costs (wall seconds)</h2>", R.html_table(costs_disp, "costs")]
    if (fig_dir / "stage_costs.png").is_file() and not cost_note:
        sec.append(R.html_img("figures/stage_costs.png", "stage wall time per dataset × model"))
    sec += ["<h2>Not available</h2>", R.html_list(notes, "na"),
            "<h2>Fallbacks in force</h2>", R.html_list(fallbacks),
            "<h2>Provenance</h2>", R.html_table(prov_df)]
    atomic_write_text(out_dir / "index.html", R.html_document(title, sec))

    result = {"stage": "report", "title": title, "experiment": {"datasets": ds_names, "models": models},
              "ranking": ranking, "selected_by": selected_by, "sampling_notes": sampling,
              "summary": rows, "per_class": pc_rows, "stage_costs": costs.to_dict("records"),
              "figures": {d: [r for r, _ in v] for d, v in figures.items()}, "grids": [r for r, _ in grids],
              "not_available": notes, "fallbacks": fallbacks, "feature_extractor_labels": non_standard,
              "synthetic_datasets": synthetic, "provenance": prov}
    atomic_write_json(out_dir / "report.json", result)
    return result


def stage(ctx) -> dict:
    """`fewgan report` (fewgan.stages)."""
    return run(ctx.params, ctx.paths["runs"], ctx.paths["data"], ctx.out)
