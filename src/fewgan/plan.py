"""What an experiment will cost, said before it runs: `fewgan params` prints this plan after it writes the params.

* per dataset: the resolution the cells run at and the params file it comes from (a dataset entry's own
  resolution wins unless the profile sets one for that dataset), and its train/test sizes;
* the jobs per stage (fewgan.stages: one per dataset, one per cell that has the stage, one report);
* the estimated wall time on this machine, jobs one after another (the pipeline never runs two torch jobs on
  too few cores: fewgan.stages.snakemake_threads), from the figures `fewgan bench` measured here
  (estimate_cell below; fewgan.bench prints the same per profile), or a line saying how to get them.

A cell's training step is taken from the bench figure of the same profile and model; measured at another
resolution it is scaled by the pixel count (and said so); a model the bench did not measure is named and left
out of the total.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: where `fewgan bench` writes its figures by default (the --json option)
BENCH_FIGURES = Path("cache/bench.json")


def n_snapshots(train: dict) -> int:
    """Snapshots a run writes: every snapshot_every iterations and at the end."""
    it, every = train["iterations"], train["snapshot_every"]
    return it // every + (1 if it % every else 0)


def estimate_cell(p: dict, dataset: str, step: dict, inv_fig: dict | None, figures: dict) -> dict[str, float]:
    """Seconds of one cell's stages (train, score, select, invert, evaluate) of `dataset` under params `p`, from a
    measured training step `step` (train_step_seconds) and inversion figure `inv_fig` (inversion_seconds; None:
    not measured, counted as 0)."""
    start = figures["process_start_s"]
    img_s = figures["extractor"]["fewgan_img_s"]
    eff_s = 1.0 / figures["effnet"]["img_s"] if figures.get("effnet") else 0.0  # seconds per EffNet image
    ev, inv, tr = p["evaluation"], p["invert"], p["train"]
    ds = p["datasets"][dataset]
    n_train, n_test = split_sizes(ds)
    snaps = n_snapshots(tr)
    n_score = ev["score"]["n_fake"]
    score_eff = eff_s if ev["score"].get("effnet") else 0.0
    # evaluation.score.untrained false skips the untrained-fallback Inception per snapshot (fewgan.metrics.score)
    score_inc = 1.0 / img_s if ev["score"].get("untrained", True) or figures["extractor"].get("standard_weights") \
        else 0.0
    per_image = score_inc + score_eff + step["generate_s_per_image"]
    n_inv = min(n_test, inv.get("max_images") or n_test) + int(inv.get("include_train") or 0)
    per_step = inv_fig["s_per_image_per_step"] * n_inv if inv_fig else 0.0
    n_fake = ev["fid"]["n_fake"]
    area = (ds["resolution"] / figures["swd"]["resolution"]) ** 2
    swd_s = figures["swd"]["swd_s"] * (n_fake / figures["swd"]["swd_images"]) * area
    ms_s = figures["swd"]["msssim_s_per_pair"] * (ev["msssim"]["pairs"] * 2) * area
    return {"train": start + tr["iterations"] * step["s_per_iter"],
            "score": start + n_train * (score_inc + score_eff) + snaps * n_score * per_image,
            "select": start,
            "invert": start + snaps * inv["steps"] * per_step,
            "evaluate": (start + (n_fake + n_test) * (1.0 / img_s + eff_s) + n_fake * step["generate_s_per_image"]
                         + swd_s + ms_s)}


def images_known(ds: dict) -> bool:
    """Whether a dataset entry fixes its image count before curation (shots, or a synthetic source's count)."""
    return bool(ds.get("shots") or (ds.get("source") or {}).get("count"))


def split_sizes(ds: dict) -> tuple[int, int]:
    """(train, test) images of a dataset entry: its shots (or source count, or 100; the curated count is known
    only after curation) split by split.ratio as the rank split does (fewgan.data.split.exact_test_count)."""
    from fewgan.data.split import exact_test_count

    n_imgs = int(ds.get("shots") or (ds.get("source") or {}).get("count") or 100)
    n_test = exact_test_count(n_imgs, ds["split"]["ratio"])
    return n_imgs - n_test, n_test


def datasets_plan(params: dict, origin: dict[str, str]) -> list[dict[str, Any]]:
    """One row per dataset of the experiment: name, resolution, where the resolution comes from, train/test."""
    rows = []
    for d in params["experiment"]["datasets"]:
        entry = params["datasets"][d]
        n_train, n_test = split_sizes(entry)
        rows.append({"dataset": d, "resolution": int(entry["resolution"]),
                     "resolution_from": origin.get(f"datasets.{d}.resolution", "params/datasets.yaml"),
                     "train": n_train, "test": n_test, "count_known": images_known(entry)})
    return rows


def job_counts(params: dict) -> dict[str, int]:
    """{stage: jobs} over the experiment matrix (datasets x models x seeds), the cells that have each stage."""
    from fewgan.stages import STAGES, cell_models

    exp = params["experiment"]
    n_ds, n_seeds = len(exp["datasets"]), len(exp.get("seeds") or [0])
    counts = {}
    for s in STAGES:
        if s.scope == "dataset":
            counts[s.name] = n_ds
        elif s.scope == "cell":
            counts[s.name] = n_ds * n_seeds * len(cell_models(s, list(exp["models"])))
        else:
            counts[s.name] = 1
    return counts


def load_figures(path: Path = BENCH_FIGURES) -> dict | None:
    """`fewgan bench`'s figures, or None when the file does not exist. A file that cannot be read or parsed raises
    ValueError naming it (the caller prints that instead of an estimate)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        figures = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot be read as `fewgan bench` figures ({exc}); delete it or re-run "
                         "`fewgan bench --quick`") from None
    if not isinstance(figures, dict):
        raise ValueError(f"{path}: not a mapping of `fewgan bench` figures; re-run `fewgan bench --quick`")
    return figures


def _scaled(fig: dict, resolution: int, keys: tuple[str, ...]) -> dict:
    """A per-image/per-step cost measured at fig['resolution'], scaled to `resolution` by the pixel count."""
    ratio = (resolution / int(fig["resolution"])) ** 2
    return {**fig, **{k: float(fig[k]) * ratio for k in keys if k in fig}, "resolution": resolution}


def estimate(params: dict, figures: dict) -> dict[str, Any]:
    """Seconds per stage of the experiment in `params`, from bench figures (as JSON: keys 'profile/model').

    Returns {"stages": {stage: seconds}, "total_s", "scaled": [notes], "unmeasured": [models]}."""
    from fewgan.stages import BY_NAME, cell_models

    exp, profile = params["experiment"], params["profile"]
    seeds = len(exp.get("seeds") or [0])
    start = float(figures["process_start_s"])
    stages = {name: 0.0 for name in ("curate", "split", "train", "score", "select", "invert", "evaluate", "report")}
    stages["report"] = start
    scaled, unmeasured = [], []
    for d in exp["datasets"]:
        ds = params["datasets"][d]
        res = int(ds["resolution"])
        stages["curate"] += start + sum(split_sizes(ds)) * float(figures["curate_s_per_image"])
        stages["split"] += start
        for m in exp["models"]:
            # the demo profile's widths were measured at 64/128/256 px (the bench's first table): an exact row first
            step = next((r for r in figures.get("train") or [] if profile == "demo" and r["model"] == m
                         and int(r["resolution"]) == res), None)
            if step is None:  # else the profile's own row, at the profile's resolution
                step = (figures.get("train_profile") or {}).get(f"{profile}/{m}")
            if step is None:
                if m not in unmeasured:
                    unmeasured.append(m)
                continue
            if int(step["resolution"]) != res:
                scaled.append(f"{d}/{m}: training step measured at {step['resolution']} px, scaled to {res} px "
                              "by the pixel count")
                step = _scaled(step, res, ("s_per_iter", "generate_s_per_image"))
            inv = (figures.get("invert_profile") or {}).get(f"{profile}/{m}")
            if inv is not None and int(inv["resolution"]) != res:
                scaled.append(f"{d}/{m}: inversion step measured at {inv['resolution']} px, scaled to {res} px "
                              "by the pixel count")
                inv = _scaled(inv, res, ("s_per_image_per_step",))
            cell = estimate_cell(params, d, step, inv, figures)
            for stage, seconds in cell.items():
                if m in cell_models(BY_NAME[stage], [m]):
                    stages[stage] += seconds * seeds
    return {"stages": stages, "total_s": sum(stages.values()), "scaled": scaled, "unmeasured": unmeasured}


def describe(params: dict, origin: dict[str, str], figures_path: Path = BENCH_FIGURES) -> str:
    """The plan as printed by `fewgan params`."""
    lines = ["plan:"]
    for r in datasets_plan(params, origin):
        sizes = (f"{r['train']} train / {r['test']} test images" if r["count_known"] else
                 f"{r['train']} train / {r['test']} test images if it has 100 (neither shots nor a source count is "
                 "set: curation counts them; the estimate assumes 100)")
        lines.append(f"  {r['dataset']}: {r['resolution']} px (from {r['resolution_from']}), {sizes}")
    jobs = job_counts(params)
    lines.append("  jobs: " + ", ".join(f"{k} {v}" for k, v in jobs.items()) + f" ({sum(jobs.values())} in all)")
    try:
        figures = load_figures(figures_path)
    except ValueError as exc:
        lines.append(f"  estimated time: none: {exc}")
        return "\n".join(lines)
    if figures is None:
        lines.append(f"  estimated time: none yet: `fewgan bench --quick` (a few minutes) measures this machine and "
                     f"writes {figures_path}, which this command then reads")
        return "\n".join(lines)
    try:
        est = estimate(params, figures)
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
        lines.append(f"  estimated time: {figures_path} lacks a figure ({exc!r}): re-run `fewgan bench --quick`")
        return "\n".join(lines)
    from fewgan.provenance import cpu_name

    here, there = cpu_name(), figures.get("machine", "an unnamed machine")
    lines.append(f"  estimated time: {est['total_s'] / 60:.0f} min, jobs one after another ("
                 + ", ".join(f"{k} {v / 60:.1f}" for k, v in est["stages"].items() if v) + " min), from "
                 f"`fewgan bench` figures of {there}, {figures.get('measured_at', 'undated')} ({figures_path})")
    if figures.get("machine") and there != here and figures.get("device") != "cuda":
        lines.append(f"  note: those figures were measured on {there}, not on this machine ({here})")
    for note in est["scaled"]:
        lines.append(f"  note: {note}")
    if est["unmeasured"]:
        lines.append(f"  not in the estimate (no bench figure for profile {params['profile']}): "
                     f"{', '.join(est['unmeasured'])}; `fewgan bench --models {','.join(est['unmeasured'])}` "
                     "measures them")
    return "\n".join(lines)
