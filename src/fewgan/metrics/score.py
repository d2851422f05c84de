"""`fewgan score` (FID and KID of every training snapshot) and `fewgan select` (lowest FID wins).

score: the real training images' Inception features are computed once (and cached by content hash and
weights hash); each snapshot then costs only its `evaluation.score.n_fake` fakes, generated from the same
seeded latents for every snapshot so that the curve compares generators, not latent draws.
select: the snapshot with the lowest FID (KID breaks ties) is copied to `generator.pt`, so later stages
load it with `fewgan.models.load_snapshot`.
"""

from __future__ import annotations

import csv
import logging
import math
import re
import time
from pathlib import Path
from typing import Any

import torch

from fewgan.io import atomic_path, atomic_write_json, atomic_write_text, read_json, safe_join, sha256_file
from fewgan.metrics import fid as F

log = logging.getLogger(__name__)

SNAPSHOT_RE = re.compile(r"^snapshot_(\d{7})\.pt$")
SCORE_COLUMNS = ["iteration", "fid", "kid", "kid_std", "n_fake", "n_real", "seconds", "snapshot"]
RULE = "lowest FID, KID breaks ties"


# ------------------------------------------------------------------------------------------------
# shared helpers (evaluate uses them too)
# ------------------------------------------------------------------------------------------------
def pick_device(params: dict, fallbacks: list[str]) -> torch.device:
    from fewgan.device import resolve_device

    return resolve_device(params.get("device", "auto"), "metrics", fallbacks)


def set_threads(threads: int) -> None:
    if threads and threads > 0:
        torch.set_num_threads(int(threads))


def load_split_images(curated_dir: Path, split_dir: Path, which: str) -> tuple[torch.Tensor, list[str]]:
    try:
        from fewgan.data.loading import load_images
    except ImportError as exc:  # pragma: no cover - depends on the data package
        raise ImportError(f"fewgan.data.loading.load_images is needed to read {curated_dir} ({exc})") from None
    images, names = load_images(curated_dir, split_dir, which=which)
    F.check_images(images, f"{which} images from {curated_dir} (split {split_dir})")
    return images, list(names)


def list_snapshots(train_dir: Path) -> list[tuple[int, Path]]:
    snap_dir = Path(train_dir) / "snapshots"
    found = []
    for p in sorted(snap_dir.glob("snapshot_*.pt")):
        m = SNAPSHOT_RE.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    if not found:
        raise FileNotFoundError(f"{snap_dir}: no snapshot_XXXXXXX.pt files; run `fewgan train` first")
    return sorted(found)


def fid_settings(params: dict) -> dict[str, Any]:
    ev = params["evaluation"]
    return {"covariance": F.COVARIANCE, "feature_layer": F.FEATURE_LAYER,
            "kid_subsets": int(ev.get("kid", {}).get("subsets", 100)),
            "kid_max_subset_size": int(ev.get("kid", {}).get("max_subset_size", 1000)),
            "quantisation": "uint8 = round((x + 1) * 127.5), clamped",
            "fid_method": ev["fid"].get("method", "fast"),
            "reference": "all training images (DiffAugment fid5k-train protocol)"}


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


def plot_curve(path: Path, rows: list[dict], title: str, extractor: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    its = [r["iteration"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    ax.plot(its, [r["fid"] for r in rows], "o-", label="FID (train)")
    if any(r.get("fid_test") is not None for r in rows):
        ax.plot(its, [r.get("fid_test") for r in rows], "s--", label="FID (test)")
    best = min(rows, key=_rank_key)
    ax.axvline(best["iteration"], color="grey", lw=0.8, ls=":", label=f"selected ({best['iteration']})")
    ax.set_xlabel("iteration")
    ax.set_ylabel("FID")
    ax.set_title(title, fontsize=9)
    if not extractor.get("standard", False):
        ax.text(0.01, 0.01, extractor.get("label", ""), transform=ax.transAxes, fontsize=7, color="red")
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def _rank_key(r: dict) -> tuple[float, float, int]:
    f = r.get("fid")
    k = r.get("kid")
    f = f if isinstance(f, (int, float)) and math.isfinite(f) else math.inf
    k = k if isinstance(k, (int, float)) and math.isfinite(k) else math.inf
    return (f, k, -int(r["iteration"]))  # equal FID and KID: the later snapshot


# ------------------------------------------------------------------------------------------------
# score
# ------------------------------------------------------------------------------------------------
def run(params: dict, dataset: str, model: str, train_dir: Path, curated_dir: Path, split_dir: Path,
        out_dir: Path, threads: int) -> dict:
    """FID (and KID) of every snapshot in train_dir/snapshots -> scores.csv, scores.json, fid_curve.png."""
    from fewgan.models import load_snapshot
    from fewgan.provenance import collect

    set_threads(threads)
    t_start = time.perf_counter()
    ev = params["evaluation"]
    sc = ev.get("score", {})
    fallbacks: list[str] = []
    device = pick_device(params, fallbacks)
    train_dir, out_dir = Path(train_dir), Path(out_dir)

    snapshots = list_snapshots(train_dir)
    keep = sc.get("snapshots", "all")
    if isinstance(keep, int):
        snapshots = snapshots[-keep:]
    reals, _ = load_split_images(curated_dir, split_dir, "train")
    extractor = F.build_extractor(params, device)
    if extractor.info.fallback:
        fallbacks.append(extractor.info.fallback)
    cache = Path(ev.get("feature_cache_dir") or "cache/features")
    real_feats, real_meta = F.real_features(reals, extractor, cache)
    test_feats = None
    if sc.get("curve_test", False):
        test_imgs, _ = load_split_images(curated_dir, split_dir, "test")
        test_feats, _ = F.real_features(test_imgs, extractor, cache)

    n_fake = int(sc.get("n_fake", ev["fid"]["n_fake"]))
    bs = int(ev["fid"].get("batch_size", 50))
    seed = int(params.get("seed", 0))
    with_kid = bool(sc.get("kid", True))
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
        feats = F.features_of_stream(F.fake_batches(gan, G, n_fake, batch_size=bs, seed=seed, device=device),
                                     extractor)
        m = F.fid_kid(feats, real_feats, params, with_kid=with_kid, seed=seed)
        row = {"iteration": iteration, "fid": m["fid"], "kid": m.get("kid"), "kid_std": m.get("kid_std"),
               "n_fake": n_fake, "n_real": int(reals.shape[0]), "seconds": time.perf_counter() - t0,
               "snapshot": path.relative_to(train_dir).as_posix()}
        if test_feats is not None:
            row["fid_test"] = F.fid_from_features(feats, test_feats)
        rows.append(row)
        log.info("snapshot %d: FID %.3f (%.1fs)", iteration, row["fid"], row["seconds"])
        del gan, G

    out_dir.mkdir(parents=True, exist_ok=True)
    columns = SCORE_COLUMNS + (["fid_test"] if test_feats is not None else [])
    write_csv(out_dir / "scores.csv", rows, columns)
    block = extractor.info.extractor_block()
    result = {
        "dataset": dataset, "model": model, "rows": rows, "feature_extractor": block,
        "extractor_variant": extractor.variant, "settings": fid_settings(params),
        "kid_subset_size": F.kid_subset_size(int(reals.shape[0]), n_fake,
                                             int(ev.get("kid", {}).get("max_subset_size", 1000))),
        "real_features": {k: v for k, v in real_meta.items() if k != "key"} | {"cache_key": real_meta["key"]},
        "seed": seed, "device": str(device), "threads": torch.get_num_threads(),
        "wall_seconds": time.perf_counter() - t_start, "fallbacks": fallbacks,
        "provenance": collect(params, str(device)),
    }
    atomic_write_json(out_dir / "scores.json", result)
    plot_curve(out_dir / "fid_curve.png", rows, f"{dataset} / {model}: FID of every snapshot", block)
    return result


# ------------------------------------------------------------------------------------------------
# select
# ------------------------------------------------------------------------------------------------
def read_scores(path: Path) -> list[dict]:
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: missing; run `fewgan score` first")
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"iteration", "fid", "kid", "snapshot"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: columns {sorted(missing)} missing; re-run `fewgan score`")
        for r in reader:
            row: dict[str, Any] = {"iteration": int(r["iteration"]), "snapshot": r["snapshot"]}
            for k in ("fid", "kid", "kid_std", "fid_test"):
                v = r.get(k)
                row[k] = float(v) if v not in (None, "") else None
            rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no rows; re-run `fewgan score`")
    return rows


def select(params: dict, scores_dir: Path, train_dir: Path, out_dir: Path) -> dict:
    """Pick the snapshot with the lowest FID (KID breaks ties) -> best.json, generator.pt (a copy)."""
    from fewgan.provenance import collect

    scores_dir, train_dir, out_dir = Path(scores_dir), Path(train_dir), Path(out_dir)
    rows = read_scores(scores_dir / "scores.csv")
    valid = [r for r in rows if r["fid"] is not None and math.isfinite(r["fid"])]
    if not valid:
        raise ValueError(f"{scores_dir / 'scores.csv'}: no snapshot has a finite FID; inspect the training run")
    best = min(valid, key=_rank_key)
    src = safe_join(train_dir, best["snapshot"])
    if not src.is_file():
        raise FileNotFoundError(f"{src}: the selected snapshot (iteration {best['iteration']}) is missing; "
                                "re-run `fewgan train` or `fewgan score`")
    out_dir.mkdir(parents=True, exist_ok=True)
    dest = out_dir / "generator.pt"
    with atomic_path(dest) as tmp:
        with open(src, "rb") as fi, open(tmp, "wb") as fo:
            while chunk := fi.read(1 << 20):
                fo.write(chunk)
    digest = sha256_file(dest)
    if digest != sha256_file(src):
        raise OSError(f"copy of {src} to {dest} differs; disk problem?")
    extractor = None
    fallbacks: list[str] = []
    sj = scores_dir / "scores.json"
    if sj.is_file():
        meta = read_json(sj)
        extractor = meta.get("feature_extractor")
        fallbacks = list(meta.get("fallbacks", []))
    ties = [r["iteration"] for r in valid if r["fid"] == best["fid"]]
    result = {"iteration": best["iteration"], "fid": best["fid"], "kid": best["kid"],
              "snapshot": best["snapshot"], "rule": RULE, "tied_on_fid": ties if len(ties) > 1 else [],
              "generator": "generator.pt", "sha256": digest, "candidates": len(rows),
              "feature_extractor": extractor, "fallbacks": fallbacks, "provenance": collect(params)}
    atomic_write_json(out_dir / "best.json", result)
    return result
