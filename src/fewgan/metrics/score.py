"""`fewgan score`: FID, KID and SWD of every training snapshot (`fewgan select` then picks one: fewgan.select).

The real training images' Inception features and SWD descriptors are computed once (the features are cached
by content hash and weights hash); each snapshot then costs only its `evaluation.score.n_fake` fakes,
generated from the same seeded latents for every snapshot so that the curve compares generators, not latent
draws. The same fakes feed FID/KID (Inception features) and SWD (pixels; no pretrained network), against all
training images.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import torch

from fewgan.io import atomic_path, atomic_write_json, atomic_write_text
from fewgan.metrics import fid as F
from fewgan.metrics.common import fid_settings, load_split_images, pick_device
from fewgan.metrics import swd as S
from fewgan.select import SNAPSHOT_METRICS, choose_metric, rank_key

log = logging.getLogger(__name__)

SCORE_COLUMNS = ["iteration", "fid", "kid", "kid_std", "swd", "n_fake", "n_real", "seconds", "snapshot"]


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


def plot_curve(path: Path, rows: list[dict], title: str, extractor: dict, metric: str) -> None:
    """FID (and SWD when scored) of every snapshot; the snapshot `metric` selects is marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    its = [r["iteration"] for r in rows]
    panels = [("fid", "FID (train)")] + ([("swd", "SWD×10³ (train)")] if any(r.get("swd") is not None for r in rows) else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.6), dpi=100, squeeze=False)
    scored = [r for r in rows if math.isfinite(rank_key(r, metric)[0])]  # as select: only finite values compete
    best = min(scored, key=lambda r: rank_key(r, metric)) if scored else None
    for ax, (key, label) in zip(axes[0], panels):
        ax.plot(its, [r.get(key) for r in rows], "o-", label=label)
        if key == "fid" and any(r.get("fid_test") is not None for r in rows):
            ax.plot(its, [r.get("fid_test") for r in rows], "s--", label="FID (test)")
        if best is not None:
            ax.axvline(best["iteration"], color="grey", lw=0.8, ls=":",
                       label=f"selected by {metric.upper()} ({best['iteration']})")
        ax.set_xlabel("iteration")
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
        if key in ("fid", "kid") and not extractor.get("standard", False):
            ax.set_title("untrained Inception: not comparable to published FID", fontsize=8, color="red")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    plt.close(fig)


# ------------------------------------------------------------------------------------------------
# score
# ------------------------------------------------------------------------------------------------
def run(params: dict, dataset: str, model: str, train_dir: Path, curated_dir: Path, split_dir: Path,
        out_dir: Path, threads: int) -> dict:
    """FID (and KID) of every snapshot in train_dir/snapshots -> scores.csv, scores.json, fid_curve.png."""
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
    reals, _ = load_split_images(curated_dir, split_dir, "train")
    extractor = F.build_extractor(params, device)
    if extractor.info.fallback:
        fallbacks.append(extractor.info.fallback)
    block = extractor.info.extractor_block()
    # decided before any snapshot is scored: a metric select cannot use, or one not computed, stops here
    metric, why = choose_metric(ev["select"]["metric"], bool(block.get("standard", False)))
    if metric in ("swd", "kid") and not sc[metric]:
        raise ValueError(f"snapshots would be selected by {metric.upper()} ({why}), but evaluation.score.{metric} "
                         f"is false: set it true, or choose another evaluation.select.metric (params/evaluation.yaml)")
    cache = Path(ev["feature_cache_dir"])
    real_feats, real_meta = F.real_features(reals, extractor, cache)
    test_feats = None
    if sc["curve_test"]:
        test_imgs, _ = load_split_images(curated_dir, split_dir, "test")
        test_feats, _ = F.real_features(test_imgs, extractor, cache)

    n_fake = int(sc["n_fake"])
    bs = int(ev["fid"]["batch_size"])
    seed = int(params["seed"])
    with_kid = bool(sc["kid"])
    swd_base = S.SWDStream(reals, n_fake, ev["swd"], seed=seed) if sc["swd"] else None  # real descriptors once
    rows = []
    for iteration, path in snapshots:
        t0 = time.perf_counter()
        gan, G, meta = load_snapshot(path, device)
        if int(meta.get("resolution", reals.shape[-1])) != reals.shape[-1]:
            raise ValueError(f"{path}: generator resolution {meta.get('resolution')} differs from the curated "
                             f"images ({reals.shape[-1]} px); re-run curate/train with one resolution")
        for fb in meta.get("fallbacks", []) or []:
            if fb not in fallbacks:
                fallbacks.append(fb)
        swd_stream = swd_base.fresh() if swd_base is not None else None
        feats = F.features_of_stream(F.fake_batches(gan, G, n_fake, batch_size=bs, seed=seed, device=device),
                                     extractor, on_batch=swd_stream.add if swd_stream is not None else None)
        m = F.fid_kid(feats, real_feats, params, with_kid=with_kid, seed=seed)
        swd_res = swd_stream.result() if swd_stream is not None else None
        row = {"iteration": iteration, "fid": m["fid"], "kid": m.get("kid"), "kid_std": m.get("kid_std"),
               "swd": swd_res["mean"] if swd_res else None, "n_fake": n_fake, "n_real": int(reals.shape[0]),
               "seconds": time.perf_counter() - t0, "snapshot": path.relative_to(train_dir).as_posix()}
        if swd_res:
            row["swd_levels"] = swd_res["levels"]
        if gan.snapshot_note():
            row["note"] = gan.snapshot_note()
        if test_feats is not None:
            row["fid_test"] = F.fid_from_features(feats, test_feats, ev["fid"]["method"])
        rows.append(row)
        log.info("snapshot %d: FID %.3f, SWD %s (%.1fs)", iteration, row["fid"],
                 "-" if row["swd"] is None else f"{row['swd']:.2f}", row["seconds"])
        del gan, G

    out_dir.mkdir(parents=True, exist_ok=True)
    columns = SCORE_COLUMNS + (["fid_test"] if test_feats is not None else [])
    write_csv(out_dir / "scores.csv", rows, columns)
    result = {
        "dataset": dataset, "model": model, "rows": rows, "feature_extractor": block,
        "selection": {"metric": metric, "why": why, "label": SNAPSHOT_METRICS[metric]["label"]},
        "swd_protocol": S.PROTOCOL if swd_base is not None else None,
        "snapshot_notes": sorted({r["note"] for r in rows if r.get("note")}),
        "extractor_variant": extractor.variant, "settings": fid_settings(params),
        "kid_subset_size": F.kid_subset_size(int(reals.shape[0]), n_fake,
                                             int(ev["kid"]["max_subset_size"])),
        "real_features": {k: v for k, v in real_meta.items() if k != "key"} | {"cache_key": real_meta["key"]},
        "seed": seed, "device": str(device), "threads": torch.get_num_threads(),
        "wall_seconds": time.perf_counter() - t_start, "fallbacks": fallbacks,
        "provenance": collect(params, str(device)),
    }
    atomic_write_json(out_dir / "scores.json", result)
    plot_curve(out_dir / "fid_curve.png", rows, f"{dataset} / {model}: every snapshot", block, metric)
    return result




def stage(ctx) -> dict:
    """`fewgan score` (fewgan.stages)."""
    return run(ctx.params, ctx.dataset, ctx.model, ctx.paths["train_dir"], ctx.paths["curated"],
               ctx.paths["split"], ctx.out, ctx.threads)
