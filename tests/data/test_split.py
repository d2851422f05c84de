"""Split determinism and stability, and the loader's train/test wall."""

from __future__ import annotations

import csv
import hashlib
import shutil

import numpy as np
import pytest

from fewgan.params import dataset_entry
import torch

from fewgan.data import curate, split
from fewgan.data.loading import SplitIntegrityError, TestImageGuard, load_images
from fewgan.data.split import SplitError, assign

from .helpers import noise_images


def keys(n, salt="k"):
    return [hashlib.sha256(f"{salt}{i}".encode()).hexdigest() for i in range(n)]


def test_assign_deterministic_and_seeded():
    k = keys(500)
    a, _ = assign(k, shots=None, ratio=0.9, seed=0)
    b, _ = assign(list(reversed(k)), shots=None, ratio=0.9, seed=0)  # input order is irrelevant
    c, _ = assign(k, shots=None, ratio=0.9, seed=1)
    assert a == b and a != c


def test_assign_ratio_in_expectation():
    a, fb = assign(keys(20000), shots=None, ratio=0.9, seed=0)
    frac = sum(v == "test" for v in a.values()) / len(a)
    assert abs(frac - 0.1) < 0.01 and fb == []  # binomial sd = 0.002


def test_adding_images_never_moves_existing_ones():
    old = keys(300)
    new = keys(200, salt="new")
    a, _ = assign(old, shots=None, ratio=0.9, seed=4)
    b, _ = assign(old + new, shots=None, ratio=0.9, seed=4)
    assert all(b[k] == a[k] for k in old)


def test_subset_is_seeded_and_nested():
    k = keys(400)
    a, _ = assign(k, shots=100, ratio=0.9, seed=0)
    assert len(a) == 100
    b, _ = assign(k + keys(50, salt="x"), shots=100, ratio=0.9, seed=0)
    kept = set(a) & set(b)
    # images surviving in the subset keep their split; the subset only loses members to new ones
    assert all(a[x] == b[x] for x in kept) and len(kept) >= 50


def test_rank_method_gives_exact_count():
    k = keys(100)
    a, fb = assign(k, shots=None, ratio=0.9, seed=0, method="rank")
    assert sum(v == "test" for v in a.values()) == 10 and fb == []
    t, _ = assign(k, shots=None, ratio=0.9, seed=0)
    rank_test = {x for x, v in a.items() if v == "test"}
    thr_test = {x for x, v in t.items() if v == "test"}
    assert rank_test != thr_test or len(thr_test) == 10
    assert rank_test <= thr_test or thr_test <= rank_test  # both are "largest hash values" sets


def test_degenerate_split_is_corrected_and_recorded():
    # with ratio 0.999 almost nothing falls in test: one image is moved, and it is said so
    a, fb = assign(keys(5), shots=None, ratio=0.999, seed=0)
    assert sum(v == "test" for v in a.values()) == 1 and len(fb) == 1 and "moved" in fb[0]


@pytest.fixture
def curated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    noise_images(tmp_path / "src", 30, size=32)
    entry = {"source": {"kind": "folder", "path": "src"}, "mode": "center", "resolution": 32,
             "min_images": 10, "split": {"ratio": 0.8}}
    params = {"seed": 0, "datasets": {"d": dataset_entry(entry)}}
    curate.run(params, "d", tmp_path / "cur")
    split.run(params, "d", tmp_path / "cur", tmp_path / "spl")
    return tmp_path, params


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_split_stage_outputs(curated):
    tmp, params = curated
    rows = read_rows(tmp / "spl" / "split.csv")
    assert len(rows) == 30 and {r["split"] for r in rows} == {"train", "test"}
    s = split.run(params, "d", tmp / "cur", tmp / "spl2")
    assert (tmp / "spl" / "split.csv").read_bytes() == (tmp / "spl2" / "split.csv").read_bytes()
    assert s["train"] + s["test"] == 30 and s["train"] == sum(r["split"] == "train" for r in rows)
    for r in rows:
        assert (tmp / "cur" / r["file"]).is_file() and r["source"].startswith("img")


def test_split_stable_when_images_added_end_to_end(curated):
    tmp, params = curated
    before = {r["source"]: r["split"] for r in read_rows(tmp / "spl" / "split.csv")}
    noise_images(tmp / "src", 15, size=32, seed=99, prefix="new")
    curate.run(params, "d", tmp / "cur")
    split.run(params, "d", tmp / "cur", tmp / "spl")
    after = {r["source"]: r["split"] for r in read_rows(tmp / "spl" / "split.csv")}
    assert len(after) == 45
    assert all(after[s] == v for s, v in before.items())


def test_identical_images_are_refused_not_merged(curated):
    """With dedup off, two files with the same pixels reach split: it must name them, not keep one silently
    (one copy in train and one in test would leak the test set)."""
    tmp, params = curated
    first = sorted((tmp / "src").iterdir())[0]
    shutil.copy(first, tmp / "src" / "zz_copy.png")
    params["datasets"]["d"]["dedup"] = {"exact": False, "phash_max_distance": None}
    curate.run(params, "d", tmp / "cur")
    with pytest.raises(SplitError, match=r"manifest.csv: .* and .* have identical pixels; set dedup.exact: true"):
        split.run(params, "d", tmp / "cur", tmp / "spl4")


def test_split_too_few_images(curated):
    tmp, params = curated
    params["datasets"]["d"]["shots"] = 40
    with pytest.raises(SplitError, match="30 curated image.*need at least 40"):
        split.run(params, "d", tmp / "cur", tmp / "spl3")


def test_load_images_train_and_test(curated):
    tmp, _ = curated
    rows = read_rows(tmp / "spl" / "split.csv")
    x, names = load_images(tmp / "cur", tmp / "spl", "train")
    assert x.dtype == torch.uint8 and x.shape == (len(names), 3, 32, 32)
    assert set(names) == {r["file"] for r in rows if r["split"] == "train"}
    y, tnames = load_images(tmp / "cur", tmp / "spl", "test", resolution=16)
    assert y.shape == (len(tnames), 3, 16, 16) and not set(tnames) & set(names)
    # pixels are exactly the PNG's
    from PIL import Image

    ref = np.array(Image.open(tmp / "cur" / names[0]))
    assert torch.equal(x[0], torch.from_numpy(ref).permute(2, 0, 1))


def test_loader_detects_modified_file(curated):
    tmp, _ = curated
    rows = read_rows(tmp / "spl" / "split.csv")
    victim = next(r for r in rows if r["split"] == "train")["file"]
    with open(tmp / "cur" / victim, "ab") as f:
        f.write(b"\0")
    with pytest.raises(SplitIntegrityError, match="re-run curate/split"):
        load_images(tmp / "cur", tmp / "spl", "train")


def _write_rows(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_train_loader_refuses_test_images(curated):
    tmp, _ = curated
    rows = read_rows(tmp / "spl" / "split.csv")
    test_row = next(r for r in rows if r["split"] == "test")
    # a test image listed again as train (same file): refused before any pixel is read
    _write_rows(tmp / "spl" / "split.csv", rows + [dict(test_row, split="train")])
    with pytest.raises(SplitIntegrityError, match="both train and test"):
        load_images(tmp / "cur", tmp / "spl", "train")
    # the same test image under another name (same content): refused too
    shutil.copy(tmp / "cur" / test_row["file"], tmp / "cur" / "images" / "sneaky.png")
    sneaky = dict(test_row, split="train", file="images/sneaky.png", pixels_sha256="")
    _write_rows(tmp / "spl" / "split.csv", rows + [sneaky])
    with pytest.raises(SplitIntegrityError, match="both train and test"):
        load_images(tmp / "cur", tmp / "spl", "train")
    _write_rows(tmp / "spl" / "split.csv", rows)
    guard = TestImageGuard(tmp / "cur", tmp / "spl")
    with pytest.raises(SplitIntegrityError, match="held-out test image"):
        guard.check(tmp / "cur" / "images" / "sneaky.png")
    guard.check(tmp / "cur" / next(r for r in rows if r["split"] == "train")["file"])  # train is fine
