"""`fewgan score`: every per-snapshot metric of the registry (FID, KID, SWD; fewgan.metrics.registry) for
every training snapshot (`fewgan select` then picks one: fewgan.select).

The real training images' features and each metric's real-side state (SWD's descriptors) are computed once
(the features are cached by content hash and weights hash: fewgan.metrics.inputs.RealSet); each snapshot
then costs only its `evaluation.score.n_fake` fakes, generated once from the same seeded latents for every
snapshot (so that the curve compares generators, not latent draws) and shared by every metric: FID/KID
through the Inception features, SWD through the pixels (no pretrained network), against all training images.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import torch

from fewgan.io import atomic_path, atomic_write_json, atomic_write_text
from fewgan.metrics.common import fid_settings, load_split_images, pick_device
from fewgan.metrics.inputs import Inputs, RealSet, build_extractors, extractor_blocks, untrained_metrics
from fewgan.metrics.registry import Metric, get_metric, per_snapshot_metrics
from fewgan.metrics.translation import (SCORE_PROTOCOL, Domains, TranslationSource, direction_reals, ends,
                                        mean_over_directions, translates)
from fewgan.select import choose_metric, feature_network, rank_key, standard_of

log = logging.getLogger(__name__)

#: scores.csv columns around the metrics' own (Metric.columns, in registry order; late_columns at the end)
HEAD, TAIL = ["iteration"], ["n_fake", "n_real", "seconds", "snapshot"]


def score_columns(metrics: list[Metric] | None = None) -> list[str]:
    """The scores.csv columns every run writes (late columns come after, when rows have them)."""
    metrics = per_snapshot_metrics() if metrics is None else metrics
    return HEAD + [c for m in metrics for c in m.score_columns] + TAIL


def __getattr__(name: str) -> Any:
    if name == "SCORE_COLUMNS":  # the registry decides, so the list is computed when asked for
        return score_columns()
    raise AttributeError(name)


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.6f}"
    return str(v)


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    lines = [",".join(columns)]
    for r in rows:
        lines.append(",".join(_fmt(r.get(c)) for c in columns))
    atomic_write_text(path, "\n".join(lines) + "\n")


def plot_curve(path: Path, rows: list[dict], title: str, extractor: dict, metric: str,
               extractors: dict | None = None) -> None:
    """One panel per per-snapshot metric with a curve label and values (FID, FD-EffNet, SWD); the snapshot
    `metric` selects is marked. `extractor`: the Inception block; `extractors`: every extractor's block."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    its = [r["iteration"] for r in rows]
    panels = [m for m in per_snapshot_metrics() if m.curve_label and any(r.get(m.name) is not None for r in rows)]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.6), dpi=100, squeeze=False)
    scored = [r for r in rows if math.isfinite(rank_key(r, metric)[0])]  # as select: only finite values compete
    best = min(scored, key=lambda r: rank_key(r, metric)) if scored else None
    for ax, m in zip(axes[0], panels):
        key, label = m.name, m.curve_label
        ax.plot(its, [r.get(key) for r in rows], "o-", label=label)
        if any(r.get(f"{key}_test") is not None for r in rows):
            ax.plot(its, [r.get(f"{key}_test") for r in rows], "s--", label=f"{m.label} (test)")
        if best is not None:
            ax.axvline(best["iteration"], color="grey", lw=0.8, ls=":",
                       label=f"selected by {metric.upper()} ({best['iteration']})")
        ax.set_xlabel("iteration")
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
        blk = (extractors or {}).get(m.extractor) or (extractor if m.extractor == "inception" else {})
        if m.pretrained and not blk.get("standard", False):
            ax.set_title(f"untrained {m.extractor}: not comparable to published FID", fontsize=8, color="red")
        elif m.extractor and m.extractor != "inception" and blk.get("label"):
            ax.set_title(blk["label"], fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    plt.close(fig)


def translated_values(params: dict, gan, on: list[Metric], domains: Domains, dir_reals: dict, reals: RealSet,
                      device, seed: int, bs: int) -> tuple[dict[str, dict], dict[str, dict], Inputs]:
    """A translator's snapshot (fewgan.metrics.translation): per direction, every metric of `on` on the
    translations of the source domain's train images against the target domain's train images. Returns
    ({metric: its values, each column the mean over directions}, {direction: every value, n_fake, n_real}, the
    last direction's Inputs)."""
    per: dict[str, dict[str, dict]] = {}
    counts: dict[str, dict] = {}
    x = None
    for d in gan.directions:
        if d not in dir_reals:
            dir_reals[d] = direction_reals(domains, d, reals.extractors, reals.cache_dir)
        src = domains.images("train", ends(d)[0])
        x = Inputs(params, dir_reals[d], on, gan=gan, device=device, seed=seed, kseed=seed, n_features=src.shape[0],
                   batch_size=bs, source=TranslationSource(gan, src, d, device=device, seed=seed))
        per[d] = {m.name: m.score(x) for m in on}
        counts[d] = {"n_fake": int(src.shape[0]), "n_real": dir_reals[d].count("train")}
    values = {m.name: mean_over_directions({d: per[d][m.name] for d in per}, [*m.score_columns, *m.late_columns])
              for m in on}
    by_dir = {d: {k: v for m in on for k, v in per[d][m.name].items()} | counts[d] for d in per}
    return values, by_dir, x


# ------------------------------------------------------------------------------------------------
# score
# ------------------------------------------------------------------------------------------------
def run(params: dict, dataset: str, model: str, train_dir: Path, curated_dir: Path, split_dir: Path,
        out_dir: Path, threads: int) -> dict:
    """Every per-snapshot metric of every snapshot in train_dir/snapshots -> scores.csv, scores.json,
    fid_curve.png."""
    from fewgan.models.registry import list_snapshots, load_snapshot
    from fewgan.provenance import collect

    torch.set_num_threads(int(threads))
    t_start = time.perf_counter()
    ev = params["evaluation"]
    sc = ev["score"]
    fallbacks: list[str] = []
    device = pick_device(params, fallbacks)
    train_dir, out_dir = Path(train_dir), Path(out_dir)

    snapshots = list_snapshots(train_dir)
    keep = sc["snapshots"]
    if isinstance(keep, int):
        snapshots = snapshots[-keep:]
    metrics = per_snapshot_metrics()
    on = [m for m in metrics if m.score_switch is None or sc[m.score_switch]]
    reals = RealSet(lambda split: load_split_images(curated_dir, split_dir, split), {}, Path(ev["feature_cache_dir"]))
    train = reals.images("train")
    reals.extractors = build_extractors(on, params, device, fallbacks)
    extractor = reals.extractors["inception"]
    block = extractor.info.extractor_block()
    blocks = extractor_blocks(reals.extractors)
    skipped = {} if sc["untrained"] else untrained_metrics(on, blocks, "evaluation.score.untrained")
    if skipped:  # they could not select (fewgan.select), so their feature passes are saved; said in scores.json
        log.warning("not scored per snapshot: %s", "; ".join(f"{k.upper()} ({v})" for k, v in skipped.items()))
        on = [m for m in on if m.name not in skipped]
    # decided before any snapshot is scored: a metric select cannot use, or one not computed, stops here
    metric, why = choose_metric(ev["select"]["metric"], standard_of(blocks), feature_network=feature_network(model),
                                model=model, available={m.name for m in on})
    chosen = get_metric(metric)
    if chosen not in on:
        raise ValueError(f"snapshots would be selected by {metric.upper()} ({why}), but evaluation.score."
                         f"{chosen.score_switch} is false: set it true, or choose another evaluation.select.metric "
                         "(params/evaluation.yaml)")
    featured = next((m.extractor for m in on if m.extractor), None)  # the real-feature record of scores.json
    # translators: the target domains' features are computed per direction in the loop (recorded after it)
    real_meta = reals.features_meta("train", featured)[1] if featured and not translates(model) else {}

    n_fake = int(sc["n_fake"])
    bs = int(ev["fid"]["batch_size"])
    seed = int(params["seed"])
    rows: list[dict] = []
    x = None
    translator = translates(model)  # fakes: translations of the train split, per direction
    domains = Domains(params, dataset, curated_dir, split_dir) if translator else None
    dir_reals: dict[str, RealSet] = {}
    for iteration, path in snapshots:
        t0 = time.perf_counter()
        gan, G, meta = load_snapshot(path, device)
        if int(meta.get("resolution", train.shape[-1])) != train.shape[-1]:
            raise ValueError(f"{path}: generator resolution {meta.get('resolution')} differs from the curated "
                             f"images ({train.shape[-1]} px); re-run curate/train with one resolution")
        for fb in meta.get("fallbacks", []) or []:
            if fb not in fallbacks:
                fallbacks.append(fb)
        by_dir = None
        if translator:
            values, by_dir, x = translated_values(params, gan, on, domains, dir_reals, reals, device, seed, bs)
        else:  # one pass over this snapshot's fakes feeds every metric (Inputs)
            x = Inputs(params, reals, on, gan=gan, G=G, device=device, seed=seed, kseed=seed, n_features=n_fake,
                       batch_size=bs)
            values = {m.name: m.score(x) for m in on}
        row = {"iteration": iteration}
        row.update({c: values.get(m.name, {}).get(c) for m in metrics for c in m.score_columns})
        row.update({"n_fake": n_fake if by_dir is None else sum(v["n_fake"] for v in by_dir.values()),
                    "n_real": int(train.shape[0]) if by_dir is None else sum(v["n_real"] for v in by_dir.values()),
                    "seconds": time.perf_counter() - t0, "snapshot": path.relative_to(train_dir).as_posix()})
        for m in on:  # scores.json only (SWD per level)
            row.update({k: v for k, v in values[m.name].items() if k not in (*m.score_columns, *m.late_columns)})
        if by_dir is not None:
            row["directions"] = by_dir
        if gan.snapshot_note():
            row["note"] = gan.snapshot_note()
        for m in on:
            row.update({k: values[m.name][k] for k in m.late_columns if k in values[m.name]})
        rows.append(row)
        log.info("snapshot %d: %s (%.1fs)", iteration, ", ".join(
            f"{m.name.upper()} " + ("-" if row.get(m.name) is None else f"{row[m.name]:.3f}") for m in metrics),
            row["seconds"])
        x.gan = x.G = None
        del gan, G

    if dir_reals and featured:
        real_meta = next(iter(dir_reals.values())).features_meta("train", featured)[1]
    out_dir.mkdir(parents=True, exist_ok=True)
    late = [c for m in metrics for c in m.late_columns if any(c in r for r in rows)]
    write_csv(out_dir / "scores.csv", rows, score_columns(metrics) + late)
    if x is None:  # no snapshot: the per-run keys still come from the metrics' declarations
        x = Inputs(params, reals, on, seed=seed, kseed=seed, n_features=n_fake, batch_size=bs)
    result = {
        "dataset": dataset, "model": model, "rows": rows, "feature_extractor": block, "feature_extractors": blocks,
        "selection": {"metric": metric, "why": why, "label": chosen.label},
    }
    for m in metrics:
        result.update(m.score_meta(x, m in on))
    result.update({
        "snapshot_notes": sorted({r["note"] for r in rows if r.get("note")}),
        "extractor_variant": extractor.variant, "settings": fid_settings(params),
        "real_features": ({k: v for k, v in real_meta.items() if k != "key"} | {"cache_key": real_meta["key"]}
                          if real_meta else None),
        "not_scored": skipped,
        "translation": ({"directions": list(dir_reals), "protocol": SCORE_PROTOCOL,
                         "kind": params["datasets"][dataset]["translation"]["kind"]} if translator else None),
        "seed": seed, "device": str(device), "threads": torch.get_num_threads(),
        "wall_seconds": time.perf_counter() - t_start, "fallbacks": fallbacks,
        "provenance": collect(params, str(device)),
    })
    atomic_write_json(out_dir / "scores.json", result)
    plot_curve(out_dir / "fid_curve.png", rows, f"{dataset} / {model}: every snapshot", block, metric, blocks)
    return result


def stage(ctx) -> dict:
    """`fewgan score` (fewgan.stages)."""
    return run(ctx.params, ctx.dataset, ctx.model, ctx.paths["train_dir"], ctx.paths["curated"],
               ctx.paths["split"], ctx.out, ctx.threads)
