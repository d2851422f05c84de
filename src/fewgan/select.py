"""`fewgan select`: pick one snapshot of a run from its scores (runs/D/M/score/scores.csv).

The snapshot with the lowest FID (KID breaks ties, then the later snapshot) is copied to `generator.pt`,
so later stages load it with `fewgan.models.load_snapshot`; `best.json` records the choice and the rule.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from fewgan.io import atomic_path, atomic_write_json, read_json, safe_join, sha256_file

RULE = "lowest FID, KID breaks ties"


def rank_key(r: dict) -> tuple[float, float, int]:
    """Sort key of a scores row under RULE (smaller = better; equal FID and KID: the later snapshot)."""
    f = r.get("fid")
    k = r.get("kid")
    f = f if isinstance(f, (int, float)) and math.isfinite(f) else math.inf
    k = k if isinstance(k, (int, float)) and math.isfinite(k) else math.inf
    return (f, k, -int(r["iteration"]))


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
    best = min(valid, key=rank_key)
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


def stage(ctx) -> dict:
    """`fewgan select` (fewgan.stages)."""
    return select(ctx.params, ctx.paths["scores"], ctx.paths["train_dir"], ctx.out)
