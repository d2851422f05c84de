"""`fewgan report`: build reports/benchmark/ (index.html, README.md, summary.csv, stage_costs.csv,
report.json, figures/, and per_class.csv when a dataset has classes) from the runs of the experiment
matrix in params."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pandas as pd

from fewgan.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from fewgan.metrics.registry import registered_metrics
from fewgan.report import compute as C
from fewgan.report import figures as figs
from fewgan.report import render as R
from fewgan.report import translation as T
from fewgan.report.collect import feature_extractor, read_cell, read_dataset
from fewgan.report.compact import all_metrics_tables, compact_table, dataset_overview, flatten, si, split_constant
from fewgan.report.tables import (PER_CLASS_CAPTION, _costs_display,  # noqa: F401 (tests)
                                  _display_table, _per_class_display, not_for_decisions, per_class_columns,
                                  per_class_rows, rank_models, rank_start, slug, stage_costs, summary_columns,
                                  summary_row, BIAS_FOOTNOTE)

log = logging.getLogger(__name__)

#: FastGAN paper (Liu et al., ICLR 2021), few-shot FID at 256 px, as listed in REFERENCE.md section 1.
PAPER_FID_256 = [
    ("Obama (100)", 41.05, 46.87, 80.20),
    ("Grumpy cat (100)", 26.65, 27.08, 48.90),
    ("Panda (100)", 10.03, 12.06, 34.27),
    ("AnimalFace dog (389)", 50.66, 58.85, 130.19),
]
PAPER_COLUMNS = ["dataset (images)", "FastGAN (paper)", "StyleGAN2 + DiffAugment (paper)", "StyleGAN2 (paper)"]

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
    seeds = list(exp.get("seeds") or [0])
    evaluated = list((exp.get("stage_models") or {}).get("evaluate", models))  # models with the evaluate stage
    from fewgan.metrics.translation import translates

    translators = [m for m in evaluated if translates(m)]  # their own section (fewgan.report.translation)
    evaluated = [m for m in evaluated if m not in translators]
    runs_dir, data_dir, out_dir = Path(runs_dir), Path(data_dir), Path(out_dir)
    decimals = int(cfg["decimals"])
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)

    datasets = [read_dataset(params, d, data_dir) for d in ds_names]
    cells = [read_cell(runs_dir, d, m, s) for d in ds_names for m in evaluated for s in seeds]
    t_cells = T.read_cells(runs_dir, ds_names, translators, seeds)
    t_blocks, translation = T.section(t_cells, out_dir, decimals) if t_cells else ([], None)
    all_ds, ds_names = ds_names, [d for d in ds_names if evaluated]  # datasets with latent cells: the ranking
    by_ds = {d: [c for c in cells if c.dataset == d] for d in all_ds}

    rows = [summary_row(c, ds) for ds in datasets for c in by_ds[ds.name]]
    from fewgan.report.verdicts import LEVEL

    # an experiment of translators only ranks nothing here (fewgan.report.translation has their section)
    ranking = (rank_models(rows, params["evaluation"]["select"]["metric"]) if rows else
               {"metric": "n/a", "name": None, "column": None, "lower_is_better": True, "level": LEVEL,
                "why": "no latent generator in the experiment", "datasets": {}, "unranked": [], "standard": {}})
    summary = pd.DataFrame(rows, columns=summary_columns())
    atomic_write_text(out_dir / "summary.csv", summary.to_csv(index=False, lineterminator="\n"))
    pc_rows = per_class_rows(cells, datasets)
    if pc_rows:
        atomic_write_text(out_dir / "per_class.csv",
                          pd.DataFrame(pc_rows, columns=per_class_columns()).to_csv(index=False, lineterminator="\n"))
    costs = stage_costs(datasets, cells, t_cells)
    atomic_write_text(out_dir / "stage_costs.csv", costs.to_csv(index=False, lineterminator="\n"))
    # ---- verdicts: spread over seeds, pairwise comparisons, and the same at equal compute ------------------
    by_seed = [r for d in ds_names for r in ranking["datasets"][d]["seeds"]]
    pairs = [r for d in ds_names for r in ranking["datasets"][d]["pairs"]]
    atomic_write_text(out_dir / "seeds.csv", pd.DataFrame(by_seed).to_csv(index=False, lineterminator="\n"))
    atomic_write_text(out_dir / "verdicts.csv", pd.DataFrame(
        pairs, columns=["dataset", "metric", "model_a", "model_b", "delta", "ci_low", "ci_high", "seeds_a", "seeds_b",
                        "verdict"]).to_csv(index=False, lineterminator="\n"))
    equal = {d: C.equal_compute([c for c in by_ds[d] if c.model not in ranking["unranked"]], ranking["name"],
                                ranking["metric"], ranking["lower_is_better"], cfg["flops_budget"],
                                min_spread=float(params["evaluation"]["select"].get("min_spread", 0)))
             for d in ds_names}
    eq_rows = [r for d in ds_names if equal[d] for r in equal[d]["rows"]]
    if eq_rows:
        atomic_write_text(out_dir / "equal_compute.csv", pd.DataFrame(eq_rows).to_csv(index=False, lineterminator="\n"))

    # ---- figures, in the order a reader reads them ---------------------------------------------------
    notes: list[str] = ([n for ds in datasets for n in ds.notes] + [n for c in cells for n in c.notes]
                        + (translation["notes"] if translation else []))
    # how snapshots were sampled where that is not a plain full-resolution generator (ProGAN before its last
    # level): said once per run, beside the numbers it affects
    sampling = [f"{c.dataset}/{c.model}/s{c.seed}: " + "; ".join(((c.scores_meta or {}).get("snapshot_notes") or [])
                                                       + ([c.metrics["snapshot_note"]] if c.metrics.get("snapshot_note") else []))
                for c in cells if (c.scores_meta or {}).get("snapshot_notes") or c.metrics.get("snapshot_note")]
    # dataset -> [(rel path, caption, for decisions)]: the ranking metric against compute, its curve, the samples,
    # the inversion, the other curves that may be read; last the curves labelled not for decisions
    figures: dict[str, list[tuple[str, str, bool]]] = {d: [] for d in ds_names}
    grids: list[tuple[str, str]] = []

    def attempt(fn, *args) -> str | None:
        try:
            return fn(*args)
        except Exception as exc:  # an optional figure must never stop the report; say why it is missing
            log.warning("figure %s failed: %s", fn.__name__, exc)
            return f"figure {fn.__name__} for {args[0]} not available (error: {exc})"

    curves = [m for m in registered_metrics() if m.per_snapshot and m.curve]
    shaky = {m.name for m in curves if not_for_decisions(m, ranking["standard"])}
    curves.sort(key=lambda m: (m.name != ranking["name"], m.name in shaky))  # stable: registry order within
    for d in ds_names:
        labels = [feature_extractor(c)["label"] for c in by_ds[d]]
        curve = lambda m: (m.name, figs.curves_of(m), (d, by_ds[d], labels),  # noqa: E731
                           (f"Not for decisions ({m.title} here is computed without its extractor's standard "
                            f"weights): " if m.name in shaky else "") + f"{d}: {m.name.upper()} {m.curve}",
                           m.name not in shaky)
        plan = [("flops", C.flops_figure, (d, by_ds[d], ranking["name"], ranking["metric"],
                                           (equal[d] or {}).get("budget")),
                 f"{d}: {ranking['metric']} vs training FLOPs (log x), every model and seed", True),
                *(curve(m) for m in curves if m.name == ranking["name"]),
                ("samples", figs.samples_overview, (d, by_ds[d]), f"{d}: samples of the selected snapshot per model",
                 True),
                ("inversion", figs.inversion_curves, (d, by_ds[d]),
                 f"{d}: held-out reconstruction quality vs iteration (FastGAN Table 5 analogue)", True),
                *(curve(m) for m in curves if m.name != ranking["name"])]
        for name, fn, args, caption, decide in plan:
            rel = f"figures/{name}_{slug(d)}.png" if name != "samples" else f"figures/overview_{slug(d)}.png"
            note = attempt(fn, *args, out_dir / rel)
            if note:
                notes.append(note)
            else:
                figures[d].append((rel, caption, decide))
        for kind in ("samples", "reconstructions"):  # every run's samples first, then the inversions
            for c in by_ds[d]:
                src = c.samples_png if kind == "samples" else c.reconstructions_png
                if src is None:
                    continue
                rel = f"figures/{kind}_{slug(c.dataset, c.model, f's{c.seed}')}.png"
                atomic_write_bytes(out_dir / rel, src.read_bytes())
                grids.append((rel, f"{c.dataset} / {c.model} / seed {c.seed}: {kind}" +
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
    # metrics evaluate skipped (evaluation.evaluate.untrained: false): {metric: why}
    not_computed = {k: v for c in cells for k, v in (c.metrics.get("not_computed") or {}).items()}
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

    # ---- documents: one list of blocks, written as README.md and index.html ------------------------------
    title = str(cfg["title"])
    selected_by = sorted({str(r["selected_by"]).upper() for r in rows if r["selected_by"]})
    verdict = (f"Models are ranked by {ranking['metric']} (why: see \"How to read the verdicts\" at the top). "
               f"Each run's snapshot was selected by {', '.join(selected_by) or 'n/a'} (evaluation.select.metric; "
               "the reason is in summary.csv, column selection_why).")
    banner = ("Every FID/KID value in this report was computed with " + "; ".join(non_standard) +
              ". Do not compare these numbers with published FID/KID. Features of an untrained network do not "
              "measure perceptual quality, so these FID/KID values can rank models wrongly: fewgan selected snapshots and ranks models by "
              + (f"{ranking['metric']} instead (pretrained ImageNet features of EfficientNet-Lite0, not comparable "
                 "to published FID); compare it with recall, SWD, MS-SSIM and the samples."
                 if ranking["name"] in ("fd_effnet", "kid_effnet") else
                 "SWD instead (no pretrained network); compare SWD, MS-SSIM and the samples.")
              + " Each run's selection metric is in summary.csv (selected_by)."
              + (" Not computed in " + ("every run" if all(c.metrics.get("not_computed") for c in cells) else "some runs")
                 + ": " + "; ".join(f"{k.upper()} ({v})" for k, v in sorted(not_computed.items())) + "."
                 if not_computed else "")) if non_standard else None
    synth_note = (f"Synthetic data: {', '.join(synthetic)} (procedurally generated images, not a real "
                  "few-shot dataset).") if synthetic else None
    level = f"{int(ranking['level'] * 100)}%"
    how = (f"How to read the verdicts: models are compared by {ranking['metric']} ({ranking['why']}) over training "
           f"seeds: the difference of two models' means with its {level} Welch interval; 'better'/'worse' when the "
           "interval excludes 0, 'tied' when it contains 0. Ranks are ranges: models that cannot be separated share "
           "them.")
    files = [(f, f) for f in ("summary.csv", "seeds.csv", "verdicts.csv", "equal_compute.csv", "per_class.csv",
                              "translation.csv",
                              "stage_costs.csv", "report.json") if (out_dir / f).is_file() or f == "report.json"]

    blocks: list[tuple] = []
    if banner:
        blocks.append(("raw", f'<div class="banner">⚠ {R.esc(banner)}</div>', f"> **⚠ {R.md_text(banner)}**"))
    if synth_note:
        blocks.append(("raw", f'<div class="synthetic">{R.esc(synth_note)}</div>', f"> **{R.md_text(synth_note)}**"))
    toc = [(f"#ds-{slug(d)}", d) for d in ds_names] + ([("#translation", "translation")] if t_cells else []) + [
        *([("#results", "every metric, every run")] if rows else []),
                                                         ("#datasets", "datasets"), ("#costs", "stage costs"),
                                                         ("#provenance", "provenance")]
    blocks.append(("raw", '<nav class="toc">Contents: ' + " · ".join(f'<a href="{R.esc(h)}">{R.esc(t)}</a>'
                                                                     for h, t in toc) + "</nav>", None))
    if rows:
        blocks.append(R.p(how, "how"))
    ds_by_name = {ds.name: ds for ds in datasets}
    for d in ds_names:
        blocks.append(_dataset_section(ds_by_name[d], rows, ranking, equal.get(d), figures[d], decimals))
    if t_cells:
        blocks.append(R.div("translation", t_blocks, anchor="translation-section", tag="section"))
    blocks += [R.links("Full precision:", files)] if not rows else [
               R.h(2, "Results: every metric, every run", "results"), R.p(verdict, "verdict-rule"),
               R.p("Lower is better for FID, KID, SWD and inversion LPIPS; MS-SSIM is diversity (lower = more "
                   "diverse, real set in parentheses); inversion MS-SSIM and PSNR: higher = closer reconstruction. "
                   "KID and SWD are ×10³."),
               R.links("Full precision:", files)]
    for d in ds_names:
        blocks.append(R.h(3, d + (" (synthetic)" if ds_by_name[d].synthetic else ""), f"results-{slug(d)}"))
        tables, empty = all_metrics_tables(d, rows, decimals, ranking)
        for what, df in tables:
            df, constant = split_constant(df)
            blocks += [R.h(4, what), R.same(constant), R.table(df, "results")]
        if empty:
            blocks.append(R.p(f"Not computed for any run of {d}: {', '.join(empty)}.", "note"))
    if any(r.get("biased_metrics") for r in rows):
        blocks.append(R.p(BIAS_FOOTNOTE, "note"))
    if pc_rows:
        # unconditional generators on a dataset with classes: a sentence each, not a row of empty cells
        conditional = [bool(r["conditional"]) for r in pc_rows]
        pc_table, pc_constant = split_constant(_per_class_display(pc_rows, decimals)[conditional].reset_index(drop=True),
                                               keep=("model", "class"))
        blocks += [R.h(3, "Per class"), R.p(PER_CLASS_CAPTION)]
        if len(pc_table):
            blocks += [R.same(pc_constant), R.table(pc_table, "per-class")]
        blocks.append(R.ul([f"{r['dataset']}/{r['model']}/s{r['seed']}: {r['note']}" for r in pc_rows
                            if not r["conditional"]]))
    blocks += [R.h(2, "Datasets", "datasets"), R.table(dataset_overview(datasets), "datasets")]
    for ds in datasets:
        for what, summary, where in (("curated", ds.curated_summary, f"data/curated/{ds.name}/summary.json"),
                                     ("split", ds.split_summary, f"data/splits/{ds.name}/summary.json")):
            blocks.append(R.details(f"{ds.name}: {what} summary (provenance, hashes, settings; {where})",
                                    [R.kv(flatten(summary))] if summary else [R.p("not available", "na")]))
    if cfg["include_paper_table"]:
        paper = pd.DataFrame([(n, R.fmt(a), R.fmt(b), R.fmt(c)) for n, a, b, c in PAPER_FID_256], columns=PAPER_COLUMNS)
        paper_caption = ("Published numbers, for reference only: FastGAN paper (Liu et al., ICLR 2021), few-shot FID "
                         "at 256 px, lower is better. These were NOT computed by fewgan and are kept in a separate "
                         "table; " + ("fewgan's numbers above use a non-standard feature extractor and are not "
                                      "comparable to them." if non_standard else
                                      "fewgan's numbers are comparable only for the same dataset and protocol."))
        blocks.append(R.div("paper", [R.h(2, "Published numbers (for reference only)"), R.p(paper_caption),
                                      R.table(paper, "paper")]))
    shown_grids, linked_grids = grids[: int(cfg["image_grid_max"])], grids[int(cfg["image_grid_max"]):]
    blocks += [R.h(2, "Image grids", "grids"), R.gallery(shown_grids), R.linklist(linked_grids)]
    if sampling:
        blocks += [R.h(2, "How snapshots were sampled"), R.ul(sampling)]
    blocks += [R.h(2, "Stage costs (wall seconds)", "costs"), R.table(_costs_display(costs), "costs")]
    if (fig_dir / "stage_costs.png").is_file() and not cost_note:
        blocks.append(R.img("figures/stage_costs.png", "stage wall time per dataset × model"))
    blocks += [R.h(2, "Not available", "not-available"),
               R.details(f"{len(notes)} optional input(s) or figure(s) not available", [R.ul(notes, "na")]),
               R.h(2, "Fallbacks in force", "fallbacks"),
               R.details(f"{len(fallbacks)} fallback(s): what ran instead of the standard component, and where",
                         [R.ul(fallbacks, "fallbacks")]),
               R.h(2, "Provenance", "provenance"),
               R.details("report provenance: commits, versions, params hash, devices", [R.kv(prov_rows)])]
    atomic_write_text(out_dir / "README.md", "\n".join([f"# {R.md_text(title)}", ""] + R.to_md(blocks)))
    atomic_write_text(out_dir / "index.html", R.html_document(title, R.to_html(blocks)))

    result = {"stage": "report", "title": title,
              "experiment": {"datasets": all_ds, "models": models, "seeds": seeds},
              "translation": translation,
              "equal_compute": {d: ({k: v for k, v in e.items() if k != "pairs"} if e else None)
                                for d, e in equal.items()},
              "ranking": ranking, "selected_by": selected_by, "sampling_notes": sampling,
              "summary": rows, "per_class": pc_rows, "stage_costs": costs.to_dict("records"),
              "figures": {d: [r for r, _, _ in v] for d, v in figures.items()},
              "figures_not_for_decisions": {d: [r for r, _, ok in v if not ok] for d, v in figures.items()},
              "grids": [r for r, _ in grids],
              "not_available": notes, "fallbacks": fallbacks, "feature_extractor_labels": non_standard,
              "synthetic_datasets": synthetic, "provenance": prov}
    atomic_write_json(out_dir / "report.json", result)
    return result


def _seed_table(rows: list[dict], metric: str, level: str, decimals: int, lower: bool = True) -> pd.DataFrame:
    """Rank, mean ± std and interval over the seeds, per model: best rank first, then best mean."""
    f = lambda v: R.fmt(v, decimals)  # noqa: E731
    sign = 1 if lower else -1
    key = lambda r: (rank_start(r["rank"]), math.inf if r["mean"] is None else sign * r["mean"])  # noqa: E731
    return pd.DataFrame([{"rank": r["rank"], "model": r["model"], "seeds": r["seeds"],
                          f"{metric} mean ± std": (f(r["mean"]) + (f" ± {f(r['std'])}" if r["std"] is not None else "")
                                                   if r["mean"] is not None else "no snapshot within the budget"),
                          f"{level} interval of the mean": (f"[{f(r['ci_low'])}, {f(r['ci_high'])}]"
                                                            if r["ci_low"] is not None else
                                                            "n/a (one seed)" if r["seeds"] == 1 else "n/a")}
                         for r in sorted(rows, key=key)])


def _dataset_section(ds, rows: list[dict], ranking: dict, eq: dict | None, figures: list[tuple[str, str, bool]],
                     decimals: int) -> tuple:
    """One dataset, as a reader wants it: the verdict first (the winner or why there is none, then every pair:
    better, worse or tied, with the interval and the seeds), one compact table with what is the same for every
    row said once above it, the same at equal compute, then the figures (not-for-decisions ones last)."""
    d = ds.name
    info = ranking["datasets"].get(d) or {}
    level = f"{int(ranking['level'] * 100)}%"
    table, notes = compact_table(d, rows, ranking, decimals)
    table, constant = split_constant(table)
    blocks = [R.h(2, d + (" (synthetic)" if ds.synthetic else "")),
              R.div("verdict", [R.p(info.get("headline") or "No verdict.", "headline"),
                                R.ul(info.get("sentences") or ["one model: nothing to compare"], "verdicts")]),
              *(R.p(n, "note") for n in notes), R.same(constant), R.table(table, "compact")]
    blocks.append(R.h(3, "At equal compute"))
    if eq:
        seed_table, seed_constant = split_constant(_seed_table(eq["seeds"], ranking["metric"], level, decimals,
                                                                       ranking["lower_is_better"]))
        blocks += [R.p(f"Each run's best snapshot among those trained with at most {si(eq['budget'], 'FLOPs')} "
                       f"({eq['why']}): {eq['headline']}"),
                   R.ul(eq["sentences"] or ["one model: nothing to compare"], "verdicts"),
                   R.same(seed_constant), R.table(seed_table, "seeds")]
    else:
        blocks.append(R.p("Not available (the runs have no FLOP records: re-train them).", "na"))
    decide = [(rel, cap) for rel, cap, ok in figures if ok]
    shaky = [(rel, cap) for rel, cap, ok in figures if not ok]
    blocks += [R.h(3, "Figures"), R.gallery(decide, wide=[rel for rel, _ in decide if "/overview_" in rel])]
    if shaky:
        blocks += [R.h(4, "Not for decisions"),
                   R.p("These metrics are computed without their feature extractor's standard weights here "
                       "(see the warning at the top): shown for completeness, never read for a decision.", "note"),
                   R.gallery(shaky)]
    return R.div("dataset", blocks, anchor=f"ds-{slug(d)}", tag="section")


def stage(ctx) -> dict:
    """`fewgan report` (fewgan.stages)."""
    return run(ctx.params, ctx.paths["runs"], ctx.paths["data"], ctx.out)
