"""The split stage: few-shot subset and train/test split of a curated dataset, by content hashes.

Both choices are functions of each image's own content hash (`pixels_sha256` from the manifest:
sha256 of the decoded pixels, independent of PNG encoder settings) and the seed:
- subset: images ranked by sha256(f"{seed}:subset:{pixels_sha256}"); the first `shots` form the
  subset (all images when `shots` is null). Adding images can only push out the subset's
  highest-ranked members, never reshuffle the rest.
- split: u = sha256(f"{seed}:split:{pixels_sha256}") read as a number in [0, 1); an image is `test`
  when u >= ratio, else `train` (FastGAN Table 5: 9:1). The assignment of an image never depends on
  any other image, so adding images never moves existing ones between train and test. The test share
  is therefore ratio only in expectation; the summary reports the realised counts.
  With `split.method: rank` the test set is instead exactly the round((1 - ratio) * n) images with the
  largest u: the exact 9:1 count of FastGAN's protocol, at the price of stability (adding images can
  move images near the boundary from test to train).
  Degenerate draws are corrected and recorded as fallbacks: no test image -> the train image with
  the largest u becomes test; no train image -> the test image with the smallest u becomes train.

`shots` counts train + test images (FastGAN: 100-shot sets split 90/10).

Datasets with classes (manifest column `class`, see fewgan.data.classes) are split stratified: the
subset is chosen as above over all images, then the train/test rule (threshold or rank, same u values)
and its degenerate-draw corrections are applied within each class, so every class with >= 2 images has
train and test images; a class with a single image keeps it for training (recorded as a fallback).
split.csv then carries a last column `class`, and summary.json a `classes` block with the class ->
index mapping (sorted names) and per-class train/test counts. With the threshold method stratifying
changes nothing but the corrections (each image's side depends on its own hash only).
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import time
from pathlib import Path

from fewgan.data.schema import resolve_entry
from fewgan.io import atomic_write_json, atomic_write_text, read_json, safe_join, sha256_file

log = logging.getLogger(__name__)

SPLIT_COLUMNS = ["file", "sha256", "split", "source", "pixels_sha256", "u"]  # + "class" for datasets with classes


class SplitError(RuntimeError):
    """The split cannot be made (message says what to do)."""


def hash_unit(seed: int, purpose: str, key: str) -> float:
    """Deterministic number in [0, 1) from (seed, purpose, key): the first 64 bits of a sha256."""
    h = hashlib.sha256(f"{int(seed)}:{purpose}:{key}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2.0 ** 64


def assign(keys: list[str], *, shots: int | None, ratio: float, seed: int,
           method: str = "threshold", groups: dict[str, str] | None = None) -> tuple[dict[str, str], list[str]]:
    """{key: 'train'|'test'} for the chosen subset of `keys` (content hashes), plus fallbacks.

    `groups` ({key: class}) stratifies: the subset is drawn over all keys, the split within each class."""
    uniq = sorted(set(keys))
    if len(uniq) != len(keys):
        raise SplitError("duplicate content hashes among curated images; re-run curate with dedup.exact: true")
    ranked = sorted(uniq, key=lambda k: (hash_unit(seed, "subset", k), k))
    chosen = ranked if shots is None else ranked[:shots]
    if groups is None:
        return _split(chosen, ratio=ratio, seed=seed, method=method)
    missing = [k for k in chosen if k not in groups]
    if missing:
        raise SplitError(f"{len(missing)} image(s) have no class (e.g. {missing[0]}); re-run curate")
    out: dict[str, str] = {}
    fallbacks: list[str] = []
    for cls in sorted({groups[k] for k in chosen}):
        members = [k for k in chosen if groups[k] == cls]
        if len(members) == 1:
            out[members[0]] = "train"
            fallbacks.append(f"class {cls!r} has a single image in the subset: it is a train image, the class has "
                             "no test image")
            continue
        part, fb = _split(members, ratio=ratio, seed=seed, method=method)
        out.update(part)
        fallbacks += [f"class {cls!r}: {f}" for f in fb]
    return {k: out[k] for k in chosen}, fallbacks


def _split(chosen: list[str], *, ratio: float, seed: int, method: str) -> tuple[dict[str, str], list[str]]:
    """The train/test rule on one set of keys (the whole subset, or one class of it)."""
    u = {k: hash_unit(seed, "split", k) for k in chosen}
    if method == "threshold":
        out = {k: ("test" if u[k] >= ratio else "train") for k in chosen}
    elif method == "rank":
        n_test = int(round((1.0 - ratio) * len(chosen)))
        by_u = sorted(chosen, key=lambda c: (-u[c], c))
        out = {k: ("test" if i < n_test else "train") for i, k in enumerate(by_u)}
    else:
        raise SplitError(f"unknown split method {method!r} (threshold, rank)")
    fallbacks = []
    if chosen and not any(v == "test" for v in out.values()):
        k = max(chosen, key=lambda c: u[c])
        out[k] = "test"
        fallbacks.append(f"no image fell in the test share by hash (ratio {ratio}, {len(chosen)} images); "
                         f"moved the train image with the largest hash value to test")
    if len(chosen) > 1 and not any(v == "train" for v in out.values()):
        k = min(chosen, key=lambda c: u[c])
        out[k] = "train"
        fallbacks.append("no image fell in the train share by hash; moved the test image with the smallest "
                         "hash value to train")
    return out, fallbacks


def read_manifest(curated_dir: Path) -> list[dict]:
    path = Path(curated_dir) / "manifest.csv"
    if not path.is_file():
        raise SplitError(f"{path} not found: run `fewgan curate` for this dataset first")
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def run(params: dict, dataset: str, curated_dir: Path, out_dir: Path) -> dict:
    """Write `out_dir/split.csv` and `out_dir/summary.json`; return the summary."""
    t0 = time.perf_counter()
    entry = resolve_entry(params, dataset)
    curated_dir, out_dir = Path(curated_dir), Path(out_dir)
    rows = [r for r in read_manifest(curated_dir) if r.get("status") == "written"]
    cur_summary_path = curated_dir / "summary.json"
    cur_summary = read_json(cur_summary_path) if cur_summary_path.is_file() else {}
    if cur_summary.get("dataset") not in (None, dataset):
        raise SplitError(f"{curated_dir} holds dataset {cur_summary.get('dataset')!r}, not {dataset!r}")
    for r in rows:
        path = safe_join(curated_dir, r["file"])
        if not path.is_file():
            raise SplitError(f"{path} listed in {curated_dir / 'manifest.csv'} is missing; re-run curate")
        got = sha256_file(path)
        if got != r["output_sha256"]:
            raise SplitError(f"{path}: sha256 {got} differs from the manifest ({r['output_sha256']}); "
                             "the curated images changed: re-run curate")
    shots = entry["shots"]
    need = max(int(entry["min_images"]), int(shots or 0))
    if len(rows) < need:
        raise SplitError(f"dataset {dataset!r}: {len(rows)} curated image(s) in {curated_dir}, need at least "
                         f"{need} (min_images={entry['min_images']}, shots={shots}); add images or lower "
                         "shots/min_images in params/datasets.yaml")
    ratio = float(entry["split"]["ratio"])
    seed = int(entry["split"]["seed"])
    by_key: dict[str, dict] = {}
    for r in rows:  # identical pixels in train and test would leak the test set: refuse, naming both files
        if r["pixels_sha256"] in by_key:
            raise SplitError(f"{curated_dir / 'manifest.csv'}: {by_key[r['pixels_sha256']]['file']} and {r['file']} "
                             f"have identical pixels; set dedup.exact: true for dataset {dataset!r} in "
                             "params/datasets.yaml and re-run curate, or remove one of the source images")
        by_key[r["pixels_sha256"]] = r
    method = entry["split"]["method"]
    classed = _check_classes(entry, dataset, curated_dir, rows)
    groups = {k: r["class"] for k, r in by_key.items()} if classed else None
    assignment, fallbacks = assign(list(by_key), shots=shots, ratio=ratio, seed=seed, method=method, groups=groups)
    for fb in fallbacks:
        log.warning("dataset %s: %s", dataset, fb)
    out_rows = []
    for key, split in assignment.items():
        r = by_key[key]
        out_rows.append({"file": r["file"], "sha256": r["output_sha256"], "split": split,
                         "source": r["source"] + (f"#face{r['face_index']}" if r.get("face_index") not in
                                                  (None, "") else ""),
                         "pixels_sha256": key, "u": f"{hash_unit(seed, 'split', key):.6f}",
                         **({"class": r["class"]} if classed else {})})
    out_rows.sort(key=lambda r: (r["split"] != "train", r["file"]))
    buf = io.StringIO()
    wr = csv.DictWriter(buf, fieldnames=SPLIT_COLUMNS + (["class"] if classed else []), lineterminator="\n")
    wr.writeheader()
    wr.writerows(out_rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "split.csv", buf.getvalue())
    n_train = sum(r["split"] == "train" for r in out_rows)
    n_test = len(out_rows) - n_train
    from fewgan.provenance import collect

    summary = {
        "stage": "split",
        "dataset": dataset,
        "synthetic": bool(cur_summary.get("synthetic", entry["synthetic"])),
        "curated_images": len(rows),
        "shots": shots,
        "subset": len(out_rows),
        "train": n_train,
        "test": n_test,
        "ratio": ratio,
        "realised_ratio": round(n_train / max(len(out_rows), 1), 4),
        "seed": seed,
        "method": method,
        "rule": ("subset = lowest sha256(seed:subset:pixels_sha256); " + (
            "test iff u = sha256(seed:split:pixels_sha256)/2^64 >= ratio (stable when images are added)"
            if method == "threshold" else
            "test = the round((1 - ratio) n) images with the largest u (exact count; not stable under additions)")
            + ("; applied within each class (stratified)" if classed else "")),
        **({"classes": _classes_block(out_rows)} if classed else {}),
        "curated_manifest_sha256": sha256_file(curated_dir / "manifest.csv"),
        "fallbacks": fallbacks,
        "seconds": round(time.perf_counter() - t0, 3),
        "provenance": collect(params),
    }
    atomic_write_json(out_dir / "summary.json", summary)
    return summary


def _check_classes(entry: dict, dataset: str, curated_dir: Path, rows: list[dict]) -> bool:
    """Whether the curated images carry classes; refuses a manifest that disagrees with params."""
    want = entry["classes"]["from"] != "none"
    have = bool(rows) and "class" in rows[0]
    if want != have:
        raise SplitError(f"{curated_dir / 'manifest.csv'} {'has no' if want else 'has a'} class column but "
                         f"datasets.{dataset}.classes.from is {entry['classes']['from']!r}: the curated images are "
                         "stale - re-run `fewgan curate` for this dataset")
    empty = [r["file"] for r in rows if want and not (r.get("class") or "").strip()]
    if empty:
        raise SplitError(f"{curated_dir / 'manifest.csv'}: {len(empty)} written image(s) without a class "
                         f"(e.g. {empty[0]}); re-run `fewgan curate`")
    return want


def _classes_block(out_rows: list[dict]) -> dict:
    from fewgan.data.classes import class_index

    index = class_index(r["class"] for r in out_rows)
    counts = {c: {"train": sum(r["class"] == c and r["split"] == "train" for r in out_rows),
                  "test": sum(r["class"] == c and r["split"] == "test" for r in out_rows)} for c in index}
    return {"names": list(index), "index": index, "counts": counts, "stratified": True,
            "mapping": "class index = position of the class name in sorted order (used by training/evaluation)"}


def stage(ctx) -> dict:
    """`fewgan split` (fewgan.stages)."""
    return run(ctx.params, ctx.dataset, ctx.paths["curated"], ctx.out)
