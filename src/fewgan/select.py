"""`fewgan select`: pick one snapshot of a run from its scores (runs/D/M/score/scores.csv).

The snapshot with the lowest FID (KID breaks ties, then the later snapshot) is copied to `generator.pt`,
so later stages load it with `fewgan.models.load_snapshot`; `best.json` records the choice and the rule.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from fewgan.io import atomic_path, atomic_write_json, read_json, safe_join, sha256_file

RULE = "lowest FID, KID breaks ties"


class ScoresError(ValueError):
    """scores.csv (or scores.json) is damaged or the two disagree; the message names the file."""


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
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = {"iteration", "fid", "kid", "snapshot"} - set(reader.fieldnames or [])
            if missing:
                raise ScoresError(f"{path}: columns {sorted(missing)} missing; re-run `fewgan score`")
            for line, r in enumerate(reader, start=2):
                try:  # a damaged row (truncated, corrupted bytes) must never be read as a different score
                    if None in r or None in r.values():
                        raise ValueError(f"{len(reader.fieldnames or [])} fields expected")
                    row: dict[str, Any] = {"iteration": int(r["iteration"]), "snapshot": r["snapshot"]}
                    for k in ("fid", "kid", "kid_std", "fid_test"):
                        v = r.get(k)
                        row[k] = float(v) if v not in (None, "") else None
                except ValueError as exc:
                    raise ScoresError(f"{path}:{line}: damaged row ({exc}); re-run `fewgan score`") from None
                rows.append(row)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ScoresError(f"{path}: unreadable ({exc}); re-run `fewgan score`") from None
    if not rows:
        raise ScoresError(f"{path}: no rows; re-run `fewgan score`")
    return rows


def _same(a: Any, b: Any) -> bool:
    """A CSV value (6 decimals) equals the JSON value it was written from."""
    if a is None or b is None:
        return a is None and (b is None or (isinstance(b, float) and not math.isfinite(b)))
    return abs(float(a) - float(b)) <= 5.0001e-7 + 1e-12 * abs(float(b))  # the rounding of `:.6f`, nothing more


def check_against_json(rows: list[dict], meta: dict, csv_path: Path, json_path: Path) -> None:
    """scores.csv and scores.json are written by one score run: a row lost or changed in either (a
    truncation at a line boundary, a flipped digit) shows as a disagreement."""
    jrows = meta.get("rows") if isinstance(meta, dict) else None
    if not isinstance(jrows, list):
        raise ScoresError(f"{json_path}: no 'rows' list; re-run `fewgan score`")
    key = lambda r: (r.get("iteration"), r.get("snapshot"))  # noqa: E731
    ok = [key(r) for r in rows] == [key(j) for j in jrows if isinstance(j, dict)] and len(rows) == len(jrows)
    ok = ok and all(_same(r[k], j.get(k)) for r, j in zip(rows, jrows) for k in ("fid", "kid"))
    if not ok:
        raise ScoresError(f"{csv_path} and {json_path} disagree (rows or FID/KID values differ): one of them is "
                          "damaged or was edited; re-run `fewgan score`")


def select(params: dict, scores_dir: Path, train_dir: Path, out_dir: Path) -> dict:
    """Pick the snapshot with the lowest FID (KID breaks ties) -> best.json, generator.pt (a copy)."""
    from fewgan.provenance import collect

    scores_dir, train_dir, out_dir = Path(scores_dir), Path(train_dir), Path(out_dir)
    rows = read_scores(scores_dir / "scores.csv")
    extractor = None
    fallbacks: list[str] = []
    sj = scores_dir / "scores.json"
    if sj.is_file():
        try:
            meta = read_json(sj)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ScoresError(f"{sj}: not valid JSON ({exc}); re-run `fewgan score`") from None
        check_against_json(rows, meta, scores_dir / "scores.csv", sj)
        extractor = meta.get("feature_extractor")
        fallbacks = list(meta.get("fallbacks", []))
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
