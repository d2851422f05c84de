"""The split stage: few-shot subset and train/test split of a curated dataset, by content hashes.

Both choices are functions of each image's own content hash (`pixels_sha256` from the manifest:
sha256 of the decoded pixels, independent of PNG encoder settings) and the seed, never of file names
or of the order of the manifest:
- subset: images ranked by sha256(f"{seed}:subset:{pixels_sha256}"); the first `shots` form the
  subset (all images when `shots` is null). Adding images can only push out the subset's
  highest-ranked members, never reshuffle the rest.
- split: every image gets the keyed hash u = sha256(f"{seed}:split:{pixels_sha256}") read as a number
  in [0, 1), and `split.method` turns the u values into train/test (FastGAN Table 5: 9:1):
  - `rank` (the default): exact. The n images are ranked by u, largest first (ties, which need equal
    64-bit prefixes, by pixels_sha256), and the first k = exact_test_count(n, ratio) of that ranking are the
    test part: k = max(1, floor((1 - ratio) * n + 1/2)). This is "the lowest k of a keyed ranking"; the
    largest u are taken so that the test images lie on the side where `threshold` puts them, and the
    two methods agree on most images. Refused (SplitError naming datasets.<D>.split.ratio) when k = n,
    i.e. when the train part would be empty.
    Stable as far as exactness allows: adding one image to a set of n moves at most one existing image
    between the parts. k grows by 0 or 1; if it stays, the new image either ranks among the first k
    (the k-th existing image moves to train) or not (nothing moves); if it grows, the new image either
    ranks among the first k + 1 (nothing moves) or not (the (k+1)-th existing image moves to test).
    Removing one image likewise. With `shots`, an added image that enters the subset pushes one member
    out and k stays: of the images that stay in the subset at most one changes side.
  - `threshold`: an image is `test` when u >= ratio, else `train`. An image's side never depends on any
    other image, so adding images never moves existing ones; the test count is binomial (for 100 images
    at 9:1 its standard deviation is 3), ratio holds only in expectation; the summary reports the
    realised counts. Degenerate draws are corrected and recorded as fallbacks: no test image -> the
    train image with the largest u becomes test; no train image -> the test image with the smallest u
    becomes train.

Rounding (`exact_test_count`): round half up, floor(x + 1/2), computed exactly on the ratio as written in
params (its shortest decimal form, 0.9 = 9/10). Not Python's round(), which rounds halves to even
(round(0.5) == 0, round(1.5) == 2, round(2.5) == 2: 25 images at 9:1 would get 2 test images, as 15
do), and not float arithmetic, where (1 - 0.9) * 15 = 1.4999999999999998 rounds to 1
although 15 images at 9:1 hold 1.5 -> 2 test images.

`shots` counts train + test images (FastGAN: 100-shot sets split 90/10).

Datasets with classes (manifest column `class`, see fewgan.data.classes) are split stratified: the
subset is chosen as above over all images, then the train/test rule (rank or threshold, same u values)
is applied within each class. With `rank` every class with n_c >= 2 images gets exactly
k_c = exact_test_count(n_c, ratio) test images (so every such class has train and test images), and the
stability guarantee holds per class: adding an image to one class moves at most one existing image, of
that class. A class with a single image keeps it for training (recorded as a fallback). The overall
test count is the sum of the per-class counts, sum_c k_c, which can differ from the count of the pooled
subset, exact_test_count(n, ratio): each k_c is within 1/2 of (1 - ratio) n_c, except that it is at least 1
(and 0 for a single-image class), so the sum can drift from (1 - ratio) n by up to half the number of
classes plus the classes raised to 1. Example: three classes of 5 images at 9:1 give 1 + 1 + 1 = 3 test
images, where the pooled 15 images would give 2. With `threshold` stratifying changes nothing but the
corrections (each image's side depends on its own hash only).

Records: split.csv holds one row per subset image with its u, its `rank` (1 = largest u) within its
stratum (the whole subset, or its class), the stratum's size and test count (`stratum_images`,
`stratum_test`), the method and the ratio; datasets with classes add a last column `class`.
summary.json records method, ratio, the rule and rounding, train/test counts overall and (`classes`
block) per class.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import math
import time
from fractions import Fraction
from pathlib import Path

from fewgan.data.schema import resolve_entry
from fewgan.io import atomic_write_json, atomic_write_text, read_json, safe_join, sha256_file

log = logging.getLogger(__name__)

SPLIT_COLUMNS = ["file", "sha256", "split", "source", "pixels_sha256", "u", "rank", "stratum_images", "stratum_test",
                 "method", "ratio"]  # + "class" for datasets with classes
METHODS = ("rank", "threshold")
#: what each method guarantees, for summary.json
RULES = {
    "rank": ("test = the k = max(1, floor((1 - ratio) n + 1/2)) images with the largest u = "
             "sha256(seed:split:pixels_sha256)/2^64 (exact count; adding one image moves at most one existing "
             "image between train and test)"),
    "threshold": ("test iff u = sha256(seed:split:pixels_sha256)/2^64 >= ratio (stable when images are added: "
                  "no existing image ever moves; the test count is binomial)"),
}
ROUNDING = ("round half up, floor(x + 1/2), on the ratio's decimal value (not Python's round, which rounds "
            "halves to even), at least 1 test image")


class SplitError(RuntimeError):
    """The split cannot be made (message says what to do)."""


def hash_unit(seed: int, purpose: str, key: str) -> float:
    """Deterministic number in [0, 1) from (seed, purpose, key): the first 64 bits of a sha256."""
    h = hashlib.sha256(f"{int(seed)}:{purpose}:{key}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2.0 ** 64


def exact_test_count(n: int, ratio: float) -> int:
    """Test images of the rank split of n images: max(1, floor((1 - ratio) * n + 1/2)).

    Round half up (floor(x + 1/2)), chosen over Python's round(), which rounds halves to even
    (round(0.5) == 0, round(2.5) == 2), so that every half rounds the same way; computed in exact
    rational arithmetic on the ratio's shortest decimal form (Fraction(repr(0.9)) == 9/10), so that
    15 images at 9:1 give 2 test images (1.5 -> 2) and not 1 (float: (1 - 0.9) * 15 = 1.4999999999999998).
    At least 1, so that a small set still has a test image; whether any train image remains is the
    caller's check (`_split` refuses k >= n)."""
    if n < 0:
        raise ValueError(f"n = {n} < 0")
    r = Fraction(repr(float(ratio)))
    if not 0 < r < 1:
        raise SplitError(f"split ratio {ratio} is outside (0, 1)")
    return max(1, math.floor((1 - r) * n + Fraction(1, 2)))


def assign(keys: list[str], *, shots: int | None, ratio: float, seed: int, method: str = "rank",
           groups: dict[str, str] | None = None, dataset: str | None = None) -> tuple[dict[str, str], list[str]]:
    """{key: 'train'|'test'} for the chosen subset of `keys` (content hashes), plus fallbacks.

    `groups` ({key: class}) stratifies: the subset is drawn over all keys, the split within each class.
    The result does not depend on the order of `keys`. `dataset` names the params key in errors."""
    if method not in METHODS:
        raise SplitError(f"unknown split method {method!r} ({', '.join(METHODS)})")
    uniq = sorted(set(keys))
    if len(uniq) != len(keys):
        raise SplitError("duplicate content hashes among curated images; re-run curate with dedup.exact: true")
    chosen = subset(uniq, shots=shots, seed=seed)
    if groups is None:
        return _split(chosen, ratio=ratio, seed=seed, method=method, dataset=dataset)
    missing = [k for k in chosen if k not in groups]
    if missing:
        raise SplitError(f"{len(missing)} image(s) have no class (e.g. {missing[0]}); re-run curate")
    out: dict[str, str] = {}
    fallbacks: list[str] = []
    for cls, members in strata(chosen, groups).items():
        if len(members) == 1:
            out[members[0]] = "train"
            fallbacks.append(f"class {cls!r} has a single image in the subset: it is a train image, the class has "
                             "no test image")
            continue
        part, fb = _split(members, ratio=ratio, seed=seed, method=method, dataset=dataset, label=f"class {cls!r}")
        out.update(part)
        fallbacks += [f"class {cls!r}: {f}" for f in fb]
    return {k: out[k] for k in chosen}, fallbacks


def subset(keys, *, shots: int | None, seed: int) -> list[str]:
    """The few-shot subset: the `shots` keys with the lowest sha256(seed:subset:key) (all when shots is None),
    in that order."""
    ranked = sorted(set(keys), key=lambda k: (hash_unit(seed, "subset", k), k))
    return ranked if shots is None else ranked[:shots]


def strata(chosen: list[str], groups: dict[str, str] | None) -> dict[str | None, list[str]]:
    """The sets the train/test rule runs on: {None: chosen} without classes, else {class: its keys} (sorted
    class names, keys in the order of `chosen`)."""
    if groups is None:
        return {None: list(chosen)}
    return {cls: [k for k in chosen if groups[k] == cls] for cls in sorted({groups[k] for k in chosen})}


def by_u(keys: list[str], seed: int) -> list[str]:
    """`keys` ranked by u = hash_unit(seed, 'split', key), largest first (ties by key): the rank order."""
    return sorted(keys, key=lambda c: (-hash_unit(seed, "split", c), c))


def _split(chosen: list[str], *, ratio: float, seed: int, method: str, dataset: str | None = None,
           label: str | None = None) -> tuple[dict[str, str], list[str]]:
    """The train/test rule on one set of keys (the whole subset, or one class of it)."""
    if not chosen:
        return {}, []
    if method == "rank":
        n, k = len(chosen), exact_test_count(len(chosen), ratio)
        if k >= n:
            where = " of ".join(x for x in (label, f"dataset {dataset!r}" if dataset else None) if x) or "the subset"
            raise SplitError(f"{where}: {n} image(s) at split ratio {ratio} would put {k} image(s) in the test part "
                             f"(max(1, (1 - {ratio}) x {n} rounded half up)) and none in the train part; raise "
                             f"datasets.{dataset or '<name>'}.split.ratio in params/datasets.yaml or add images")
        return {c: ("test" if i < k else "train") for i, c in enumerate(by_u(chosen, seed))}, []
    if method != "threshold":
        raise SplitError(f"unknown split method {method!r} ({', '.join(METHODS)})")
    u = {k: hash_unit(seed, "split", k) for k in chosen}
    out = {k: ("test" if u[k] >= ratio else "train") for k in chosen}
    fallbacks = []
    if not any(v == "test" for v in out.values()):
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
    assignment, fallbacks = assign(list(by_key), shots=shots, ratio=ratio, seed=seed, method=method, groups=groups,
                                   dataset=dataset)
    for fb in fallbacks:
        log.warning("dataset %s: %s", dataset, fb)
    position: dict[str, tuple[int, int, int]] = {}  # key -> (rank in its stratum, stratum size, stratum test count)
    for members in strata(list(assignment), groups).values():
        n_test_here = sum(assignment[k] == "test" for k in members)
        for i, k in enumerate(by_u(members, seed), start=1):
            position[k] = (i, len(members), n_test_here)
    out_rows = []
    for key, split in assignment.items():
        r = by_key[key]
        rank, stratum_images, stratum_test = position[key]
        out_rows.append({"file": r["file"], "sha256": r["output_sha256"], "split": split,
                         "source": r["source"] + (f"#face{r['face_index']}" if r.get("face_index") not in
                                                  (None, "") else ""),
                         "pixels_sha256": key, "u": f"{hash_unit(seed, 'split', key):.6f}",
                         "rank": rank, "stratum_images": stratum_images, "stratum_test": stratum_test,
                         "method": method, "ratio": repr(ratio),
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
        "exact": method == "rank",
        "rule": ("subset = lowest sha256(seed:subset:pixels_sha256); " + RULES[method]
                 + ("; applied within each class (stratified)" if classed else "")),
        **({"rounding": ROUNDING + ("; per class, the overall test count is the sum of the per-class counts"
                                    if classed else "")} if method == "rank" else {}),
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
