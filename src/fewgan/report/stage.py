"""`fewgan report`: build reports/benchmark/ (index.html, README.md, summary.csv, stage_costs.csv,
report.json, figures/, and per_class.csv when a dataset has classes) from the runs of the experiment
matrix in params."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from fewgan.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from fewgan.metrics.registry import registered_metrics
from fewgan.report import compute as C
from fewgan.report import figures as figs
from fewgan.report import render as R
from fewgan.report.collect import feature_extractor, read_cell, read_dataset
from fewgan.report.tables import (PER_CLASS_CAPTION, _costs_display, _dataset_table,  # noqa: F401 (tests)
                                  _display_table, _per_class_display, per_class_columns, per_class_rows,
                                  rank_models, rank_start, slug, stage_costs, summary_columns, summary_row,
                                  BIAS_FOOTNOTE)

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
    runs_dir, data_dir, out_dir = Path(runs_dir), Path(data_dir), Path(out_dir)
    decimals = int(cfg["decimals"])
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)

    datasets = [read_dataset(params, d, data_dir) for d in ds_names]
    cells = [read_cell(runs_dir, d, m, s) for d in ds_names for m in evaluated for s in seeds]
    by_ds = {d: [c for c in cells if c.dataset == d] for d in ds_names}

    rows = [summary_row(c, ds) for ds in datasets for c in by_ds[ds.name]]
    ranking = rank_models(rows, params["evaluation"]["select"]["metric"])
    summary = pd.DataFrame(rows, columns=summary_columns())
    atomic_write_text(out_dir / "summary.csv", summary.to_csv(index=False, lineterminator="\n"))
    pc_rows = per_class_rows(cells, datasets)
    if pc_rows:
        atomic_write_text(out_dir / "per_class.csv",
                          pd.DataFrame(pc_rows, columns=per_class_columns()).to_csv(index=False, lineterminator="\n"))
    costs = stage_costs(datasets, cells)
    atomic_write_text(out_dir / "stage_costs.csv", costs.to_csv(index=False, lineterminator="\n"))
    # ---- verdicts: spread over seeds, pairwise comparisons, and the same at equal compute ------------------
    by_seed = [r for d in ds_names for r in ranking["datasets"][d]["seeds"]]
    pairs = [r for d in ds_names for r in ranking["datasets"][d]["pairs"]]
    atomic_write_text(out_dir / "seeds.csv", pd.DataFrame(by_seed).to_csv(index=False, lineterminator="\n"))
    atomic_write_text(out_dir / "verdicts.csv", pd.DataFrame(
        pairs, columns=["dataset", "metric", "model_a", "model_b", "delta", "ci_low", "ci_high", "seeds_a", "seeds_b",
                        "verdict"]).to_csv(index=False, lineterminator="\n"))
    equal = {d: C.equal_compute([c for c in by_ds[d] if c.model not in ranking["unranked"]], ranking["name"],
                                ranking["metric"], ranking["lower_is_better"], cfg["flops_budget"]) for d in ds_names}
    eq_rows = [r for d in ds_names if equal[d] for r in equal[d]["rows"]]
    if eq_rows:
        atomic_write_text(out_dir / "equal_compute.csv", pd.DataFrame(eq_rows).to_csv(index=False, lineterminator="\n"))

    # ---- figures -----------------------------------------------------------------------------------
    notes: list[str] = [n for ds in datasets for n in ds.notes] + [n for c in cells for n in c.notes]
    # how snapshots were sampled where that is not a plain full-resolution generator (ProGAN before its last
    # level): said once per run, beside the numbers it affects
    sampling = [f"{c.dataset}/{c.model}/s{c.seed}: " + "; ".join(((c.scores_meta or {}).get("snapshot_notes") or [])
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

    curves = [m for m in registered_metrics() if m.per_snapshot and m.curve]
    for d in ds_names:
        labels = [feature_extractor(c)["label"] for c in by_ds[d]]
        for name, fn, args, caption in (
            *((m.name, figs.curves_of(m), (d, by_ds[d], labels), f"{d}: {m.name.upper()} {m.curve}") for m in curves),
            ("inversion", figs.inversion_curves, (d, by_ds[d]),
             f"{d}: held-out reconstruction quality vs iteration (FastGAN Table 5 analogue)"),
            ("samples", figs.samples_overview, (d, by_ds[d]), f"{d}: samples of the selected snapshot per model"),
            ("flops", C.flops_figure, (d, by_ds[d], ranking["name"], ranking["metric"], (equal[d] or {}).get("budget")),
             f"{d}: {ranking['metric']} vs training FLOPs (log x), every model and seed"),
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
    # what the EfficientNet-Lite0 numbers are, and the mark on a model's numbers in its own discriminator's features
    eff_labels = sorted({str(r["effnet_features"]) for r in rows if r.get("effnet_features")})
    table_notes = ([f"FD-EffNet, KID-EffNet and precision/recall (EffNet): {'; '.join(eff_labels)}."]
                   if eff_labels else [])
    if any(r.get("biased_metrics") for r in rows):
        table_notes.append(BIAS_FOOTNOTE)
    ds_table = _dataset_table(datasets)
    costs_disp = _costs_display(costs)
    paper = pd.DataFrame([(n, R.fmt(a), R.fmt(b), R.fmt(c)) for n, a, b, c in PAPER_FID_256], columns=PAPER_COLUMNS)
    selected_by = sorted({str(r["selected_by"]).upper() for r in rows if r["selected_by"]})
    verdict = (f"Models are ranked by {ranking['metric']} ({ranking['why']}). Each run's snapshot was selected "
               f"by {', '.join(selected_by) or 'n/a'} (evaluation.select.metric; the reason is in summary.csv, "
               "column selection_why).")
    banner = ("Every FID/KID value in this report was computed with " + "; ".join(non_standard) +
              ". Do not compare these numbers with published FID/KID. Features of an untrained network do not "
              "measure perceptual quality, so these FID/KID values can rank models wrongly: fewgan selected snapshots and ranks models by "
              + (f"{ranking['metric']} instead (pretrained ImageNet features of EfficientNet-Lite0, not comparable "
                 "to published FID); compare it with recall, SWD, MS-SSIM and the samples."
                 if ranking["name"] in ("fd_effnet", "kid_effnet") else
                 "SWD instead (no pretrained network); compare SWD, MS-SSIM and the samples.")
              + " Each run's selection metric is in summary.csv (selected_by).") if non_standard else None
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
    verdict_parts = _verdict_sections(ds_names, ranking, equal, decimals)
    for kind, item in verdict_parts:
        md += {"h2": lambda t: [f"## {R.md_text(t)}", ""], "h3": lambda t: [f"### {R.md_text(t)}", ""],
               "p": lambda t: [R.md_text(t), ""], "list": lambda xs: [R.md_list(xs), ""],
               "table": lambda df: [R.md_table(df), ""]}[kind](item)
    md += ["## Results (selected snapshot per dataset × model)", "",
           R.md_text(verdict), "",
           "Lower is better for FID, KID, SWD and inversion LPIPS; MS-SSIM is diversity (lower = more diverse, "
           "real set in parentheses); inversion MS-SSIM and PSNR: higher = closer reconstruction. KID and SWD "
           "are ×10³.", "", R.md_table(display), "",
           "Full precision: [summary.csv](summary.csv).", ""] + [x for n in table_notes for x in (R.md_text(n), "")]
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
    for kind, item in verdict_parts:
        sec.append({"h2": lambda t: f"<h2>{R.esc(t)}</h2>", "h3": lambda t: f"<h3>{R.esc(t)}</h3>",
                    "p": lambda t: f"<p>{R.esc(t)}</p>", "list": lambda xs: R.html_list(xs, "verdicts"),
                    "table": lambda df: R.html_table(df, "seeds")}[kind](item))
    sec += ["<h2>Results (selected snapshot per dataset × model)</h2>",
            f'<p class="verdict">{R.esc(verdict)}</p>',
            "<p>Lower is better for FID, KID, SWD and inversion LPIPS; MS-SSIM is diversity (lower = more diverse, "
            "real set in parentheses); inversion MS-SSIM and PSNR: higher = closer reconstruction. KID and SWD "
            "are ×10³. Full precision: "
            '<a href="summary.csv">summary.csv</a>.</p>', R.html_table(display, "results")]
    sec += [f'<p class="note">{R.esc(n)}</p>' for n in table_notes]
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

    result = {"stage": "report", "title": title,
              "experiment": {"datasets": ds_names, "models": models, "seeds": seeds},
              "equal_compute": {d: ({k: v for k, v in e.items() if k != "pairs"} if e else None)
                                for d, e in equal.items()},
              "ranking": ranking, "selected_by": selected_by, "sampling_notes": sampling,
              "summary": rows, "per_class": pc_rows, "stage_costs": costs.to_dict("records"),
              "figures": {d: [r for r, _ in v] for d, v in figures.items()}, "grids": [r for r, _ in grids],
              "not_available": notes, "fallbacks": fallbacks, "feature_extractor_labels": non_standard,
              "synthetic_datasets": synthetic, "provenance": prov}
    atomic_write_json(out_dir / "report.json", result)
    return result


def _verdict_sections(ds_names: list[str], ranking: dict, equal: dict, decimals: int) -> list[tuple[str, object]]:
    """The report's opening: per dataset, its verdict sentences, the spread over seeds, and the same at equal
    compute (fewgan.report.verdicts, fewgan.report.compute), as (kind, content) parts for README and HTML."""
    f = lambda v: R.fmt(v, decimals)  # noqa: E731
    level = f"{int(ranking['level'] * 100)}%"

    def table(rows: list[dict]) -> pd.DataFrame:
        return pd.DataFrame([{"rank": r["rank"], "model": r["model"], "seeds": r["seeds"],
                              f"{ranking['metric']} mean ± std": f(r["mean"]) + (f" ± {f(r['std'])}" if r["std"] is not None else ""),
                              f"{level} interval of the mean": (f"[{f(r['ci_low'])}, {f(r['ci_high'])}]"
                                                                if r["ci_low"] is not None else "n/a (one seed)")}
                             for r in sorted(rows, key=lambda r: rank_start(r["rank"]))])

    parts: list[tuple[str, object]] = [("h2", "Verdicts"), ("p", (
        f"Models are compared by {ranking['metric']} ({ranking['why']}) over training seeds: the difference of two "
        f"models' means with its {level} Welch interval; 'better'/'worse' when the interval excludes 0, 'tied' "
        "when it contains 0. Ranks are ranges: models that cannot be separated share them. Full precision: "
        "seeds.csv, verdicts.csv, equal_compute.csv."))]
    for d in ds_names:
        info = ranking["datasets"][d]
        parts += [("h3", d), ("list", info["sentences"] or ["one model: nothing to compare"]),
                  ("table", table(info["seeds"]))]
        eq = equal.get(d)
        if eq:
            parts += [("p", f"At equal compute: each run's best snapshot trained with at most {eq['budget']:.3g} "
                            f"FLOPs ({eq['why']}):"),
                      ("list", eq["sentences"] or ["one model: nothing to compare"]), ("table", table(eq["seeds"]))]
        else:
            parts.append(("p", "At equal compute: not available (the runs have no FLOP records: re-train them)."))
    return parts


def stage(ctx) -> dict:
    """`fewgan report` (fewgan.stages)."""
    return run(ctx.params, ctx.paths["runs"], ctx.paths["data"], ctx.out)
