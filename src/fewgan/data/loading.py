"""Reading curated images for training and evaluation, with the train/test wall enforced.

`load_images(curated_dir, split_dir, which)` returns the rows of one split as a uint8 tensor
(N, 3, R, R) and their file names, after checking every file's sha256 against split.csv. Loading
`train` refuses, before reading a single pixel, any row whose file name, file sha256 or content hash
also belongs to a test row (`assert_disjoint`), so the train stage provably never reads a test image.
`TestImageGuard` lets other readers check arbitrary paths against the test set.

Classes: `load_images(..., with_labels=True)` also returns each image's class index (None for a dataset
without classes); `split_classes(split_dir)` is the class -> index mapping (sorted class names of
split.csv, checked against the one recorded in the split's summary.json).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fewgan.io import safe_join, sha256_file

SPLITS = ("train", "test")


class SplitIntegrityError(RuntimeError):
    """split.csv and the curated files disagree, or train and test overlap."""


def read_split(split_dir: Path) -> list[dict]:
    path = Path(split_dir) / "split.csv"
    if not path.is_file():
        raise SplitIntegrityError(f"{path} not found: run `fewgan split` for this dataset first")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise SplitIntegrityError(f"{path}: unreadable ({exc}); re-run `fewgan split`") from None
    for i, r in enumerate(rows, start=2):
        if r.get("split") not in SPLITS or not r.get("file") or not r.get("sha256"):
            raise SplitIntegrityError(f"{path}:{i}: malformed row {r!r}; re-run `fewgan split`")
        if "class" in r and not (r["class"] or "").strip():
            raise SplitIntegrityError(f"{path}:{i}: row {r['file']} has an empty class; re-run curate/split")
    return rows


def split_classes(split_dir: Path, rows: list[dict] | None = None) -> dict[str, int]:
    """{class name: index} of a split (sorted names; {} when the dataset has no classes). When the split's
    summary.json records a mapping it must be this one (else the files are from different runs)."""
    from fewgan.data.classes import class_index

    split_dir = Path(split_dir)
    rows = read_split(split_dir) if rows is None else rows
    if not rows or "class" not in rows[0]:
        return {}
    index = class_index(r["class"] for r in rows)
    summary = split_dir / "summary.json"
    if summary.is_file():
        from fewgan.io import read_json

        recorded = (read_json(summary).get("classes") or {}).get("index")
        if recorded is not None and recorded != index:
            raise SplitIntegrityError(f"{summary}: class mapping {recorded} differs from split.csv's {index}; "
                                      "re-run `fewgan split`")
    return index


def labels_of(split_dir: Path, names: list[str]) -> tuple[torch.Tensor | None, dict[str, int]]:
    """(class indices of the split rows named `names` as a LongTensor, mapping); (None, {}) without classes."""
    rows = read_split(split_dir)
    index = split_classes(split_dir, rows)
    if not index:
        return None, {}
    by_file = {r["file"]: r["class"] for r in rows}
    unknown = [n for n in names if n not in by_file]
    if unknown:
        raise SplitIntegrityError(f"{Path(split_dir) / 'split.csv'} has no row for {unknown[0]}; re-run curate/split")
    return torch.tensor([index[by_file[n]] for n in names], dtype=torch.long), index


def check_counts(rows: list[dict], split_dir: Path) -> None:
    """split.csv must hold as many train and test rows as the split stage recorded in summary.json: a file
    cut at a line boundary still parses, and would silently train or evaluate on fewer images."""
    summary = Path(split_dir) / "summary.json"
    if not summary.is_file():
        return
    try:
        recorded = json.loads(summary.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SplitIntegrityError(f"{summary}: unreadable ({exc}); re-run `fewgan split`") from None
    want = {k: recorded.get(k) for k in SPLITS} if isinstance(recorded, dict) else {}
    got = {k: sum(r["split"] == k for r in rows) for k in SPLITS}
    if all(isinstance(v, int) for v in want.values()) and want and want != got:
        raise SplitIntegrityError(f"{Path(split_dir) / 'split.csv'}: {got['train']} train / {got['test']} test rows, "
                                  f"but {summary} records {want['train']} / {want['test']}: the file is damaged "
                                  "or was edited; re-run `fewgan split`")


def assert_disjoint(rows: list[dict], *, where: str = "split.csv") -> None:
    """Raise SplitIntegrityError when any file name, file sha256 or pixel hash is in train and test."""
    for key in ("file", "sha256", "pixels_sha256"):
        train = {r[key] for r in rows if r["split"] == "train" and r.get(key)}
        test = {r[key] for r in rows if r["split"] == "test" and r.get(key)}
        both = sorted(train & test)
        if both:
            raise SplitIntegrityError(f"{where}: {len(both)} {key} value(s) are both train and test "
                                      f"(e.g. {both[0]}); the train stage must never read a test image: "
                                      "re-run curate/split")


class TestImageGuard:
    """Knows the test set of a split; `check(path)` refuses any file that is a test image (by name or
    by content sha256)."""

    __test__ = False  # not a pytest class

    def __init__(self, curated_dir: Path, split_dir: Path):
        self.curated_dir = Path(curated_dir).resolve()
        rows = read_split(split_dir)
        assert_disjoint(rows, where=str(Path(split_dir) / "split.csv"))
        self.test_paths = {safe_join(self.curated_dir, r["file"]) for r in rows if r["split"] == "test"}
        self.test_sha = {r["sha256"] for r in rows if r["split"] == "test"}

    def check(self, path: Path, sha256: str | None = None) -> None:
        p = Path(path).resolve()
        if p in self.test_paths or (sha256 or sha256_file(p)) in self.test_sha:
            raise SplitIntegrityError(f"{path} is a held-out test image; training must not read it")


def _load_png(path: Path, resolution: int | None) -> np.ndarray:
    with Image.open(path) as im:
        im.load()
        if im.mode != "RGB":
            raise SplitIntegrityError(f"{path}: curated images must be 8-bit RGB, got mode {im.mode}; re-run curate")
        if resolution is not None and im.size != (resolution, resolution):
            im = im.resize((resolution, resolution), Image.LANCZOS)
        return np.asarray(im, dtype=np.uint8).copy()


def load_images(curated_dir: Path, split_dir: Path, which: str, resolution: int | None = None, *,
                with_labels: bool = False):
    """uint8 tensor (N, 3, R, R) and the file names (relative to curated_dir) of split `which`; with
    `with_labels`, a third item: the class indices (LongTensor (N,), mapping `split_classes`), or None
    when the dataset has no classes.

    Every file's sha256 must equal split.csv's (else: re-run curate/split). `resolution`, when given
    and different from the files', resizes with Lanczos (antialiased)."""
    if which not in SPLITS:
        raise ValueError(f"which must be 'train' or 'test', got {which!r}")
    curated_dir, split_dir = Path(curated_dir), Path(split_dir)
    rows = read_split(split_dir)
    assert_disjoint(rows, where=str(split_dir / "split.csv"))
    check_counts(rows, split_dir)
    test_sha = {r["sha256"] for r in rows if r["split"] == "test"}
    test_files = {r["file"] for r in rows if r["split"] == "test"}
    chosen = [r for r in rows if r["split"] == which]
    if not chosen:
        raise SplitIntegrityError(f"{split_dir / 'split.csv'} has no {which} rows; re-run `fewgan split`")
    arrays, names = [], []
    for r in chosen:
        path = safe_join(curated_dir, r["file"])
        if not path.is_file():
            raise SplitIntegrityError(f"{path} (listed in {split_dir / 'split.csv'}) is missing; re-run curate/split")
        got = sha256_file(path)
        if got != r["sha256"]:
            raise SplitIntegrityError(f"{path}: sha256 {got} differs from split.csv ({r['sha256']}); the curated "
                                      "images changed since the split: re-run curate/split")
        if which == "train" and (got in test_sha or r["file"] in test_files):  # the wall, checked per file
            raise SplitIntegrityError(f"{path} is a held-out test image; training must not read it")
        arrays.append(_load_png(path, resolution))
        names.append(r["file"])
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise SplitIntegrityError(f"curated images in {curated_dir} have different sizes {sorted(shapes)}; "
                                  "pass `resolution` or re-run curate")
    batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    if not with_labels:
        return batch, names
    index = split_classes(split_dir, rows)
    labels = torch.tensor([index[r["class"]] for r in chosen], dtype=torch.long) if index else None
    return batch, names, labels
