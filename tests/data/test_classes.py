"""Classes per image (datasets.<name>.classes): curate from sub-folders or a labels CSV, stratified split,
class indices from the loader; a dataset without classes is unchanged."""

from __future__ import annotations

import csv
import hashlib
import json

import pytest
import torch

from fewgan.data import curate, split
from fewgan.data.classes import class_index
from fewgan.data.curate import MANIFEST_COLUMNS
from fewgan.data.loading import SplitIntegrityError, labels_of, load_images, split_classes
from fewgan.data.schema import DatasetConfigError, resolve_entry
from fewgan.data.split import SPLIT_COLUMNS, SplitError, assign

from .helpers import noise_images, params_for

#: images per class of the synthetic classed folder
COUNTS = {"cat": 7, "dog": 5, "wild": 6}


def classed_folder(root, counts=COUNTS, size=32):
    """root/<class>/<class>NNN.png, distinct noise images per class (different seeds: no duplicates)."""
    for k, (cls, n) in enumerate(counts.items()):
        noise_images(root / cls, n, size=size, seed=100 + k, prefix=cls)
    return root


def entry_for(classes: dict | None, **kw) -> dict:
    e = {"source": {"kind": "folder", "path": "src"}, "mode": "none", "resolution": 32, "min_images": 4,
         "split": {"ratio": 0.8}}
    if classes is not None:
        e["classes"] = classes
    e.update(kw)
    return e


def rows_of(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def curate_split(tmp_path, entry, name="toy"):
    params = params_for(name, entry)
    cs = curate.run(params, name, tmp_path / "cur")
    ss = split.run(params, name, tmp_path / "cur", tmp_path / "spl")
    return params, cs, ss


@pytest.fixture
def subfolder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    classed_folder(tmp_path / "src")
    (tmp_path / "src" / "README.txt").write_text("not an image")  # top-level non-image: still not_image
    params, cs, ss = curate_split(tmp_path, entry_for({"from": "subfolder"}))
    return tmp_path, params, cs, ss


def test_curate_records_the_subfolder_class_of_every_image(subfolder):
    tmp, _, cs, _ = subfolder
    rows = rows_of(tmp / "cur" / "manifest.csv")
    assert list(rows[0]) == MANIFEST_COLUMNS + ["class"]
    written = [r for r in rows if r["status"] == "written"]
    assert len(written) == sum(COUNTS.values())
    assert all(r["class"] == r["source"].split("/")[0] for r in written)
    assert {r["source"]: r["reason"] for r in rows if r["status"] == "skipped"} == {"README.txt": "not_image"}
    assert cs["classes"] == {"from": "subfolder", "csv": None, "names": ["cat", "dog", "wild"], "counts": COUNTS}


def test_split_is_stratified_and_records_classes(subfolder):
    tmp, _, _, ss = subfolder
    rows = rows_of(tmp / "spl" / "split.csv")
    assert list(rows[0]) == SPLIT_COLUMNS + ["class"]
    for cls, n in COUNTS.items():
        mine = [r for r in rows if r["class"] == cls]
        assert len(mine) == n
        assert {r["split"] for r in mine} == {"train", "test"}, cls  # every class in train AND test
        assert ss["classes"]["counts"][cls] == {"train": sum(r["split"] == "train" for r in mine),
                                                "test": sum(r["split"] == "test" for r in mine)}
    assert ss["classes"]["index"] == {"cat": 0, "dog": 1, "wild": 2} and ss["classes"]["stratified"] is True
    assert ss["train"] + ss["test"] == sum(COUNTS.values()) and "within each class" in ss["rule"]


def test_loader_returns_class_indices_and_keeps_the_two_tuple_api(subfolder):
    tmp, *_ = subfolder
    x, names = load_images(tmp / "cur", tmp / "spl", "train")  # callers that do not ask for labels
    x2, names2, y = load_images(tmp / "cur", tmp / "spl", "train", with_labels=True)
    assert torch.equal(x, x2) and names == names2 and y.dtype == torch.long and y.shape == (len(names),)
    by_file = {r["file"]: r["class"] for r in rows_of(tmp / "spl" / "split.csv")}
    index = split_classes(tmp / "spl")
    assert index == {"cat": 0, "dog": 1, "wild": 2}
    assert y.tolist() == [index[by_file[n]] for n in names]
    _, tnames, ty = load_images(tmp / "cur", tmp / "spl", "test", with_labels=True)
    assert sorted(set(ty.tolist())) == [0, 1, 2]
    ly, lindex = labels_of(tmp / "spl", list(reversed(tnames)))
    assert ly.tolist() == list(reversed(ty.tolist())) and lindex == index
    # the mapping recorded by split must agree with split.csv
    summary = tmp / "spl" / "summary.json"
    data = json.loads(summary.read_text())
    data["classes"]["index"] = {"cat": 1, "dog": 0, "wild": 2}
    summary.write_text(json.dumps(data))
    with pytest.raises(SplitIntegrityError, match="class mapping"):
        load_images(tmp / "cur", tmp / "spl", "train", with_labels=True)


def test_rank_method_is_exact_within_each_class(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    classed_folder(tmp_path / "src", {"a": 10, "b": 10, "c": 2})
    _, _, ss = curate_split(tmp_path, entry_for({"from": "subfolder"}, split={"ratio": 0.8}))  # rank: the default
    assert ss["method"] == "rank"
    assert ss["classes"]["counts"] == {"a": {"train": 8, "test": 2}, "b": {"train": 8, "test": 2},
                                       "c": {"train": 1, "test": 1}}  # floor(0.4 + 1/2) = 0 -> the rule's minimum 1
    assert ss["fallbacks"] == [] and (ss["train"], ss["test"]) == (17, 5)  # the minimum is the rule, not a fallback
    rows = rows_of(tmp_path / "spl" / "split.csv")
    assert {(r["class"], r["stratum_images"], r["stratum_test"]) for r in rows} == {
        ("a", "10", "2"), ("b", "10", "2"), ("c", "2", "1")}


def test_assign_groups_single_image_class_stays_train_and_classless_is_unchanged():
    keys = [hashlib.sha256(f"k{i}".encode()).hexdigest() for i in range(40)]
    groups = {k: ("solo" if i == 0 else "many") for i, k in enumerate(keys)}
    out, fb = assign(keys, shots=None, ratio=0.9, seed=0, groups=groups)
    assert out[keys[0]] == "train" and any("'solo' has a single image" in f for f in fb)
    # one group holding everything = the classless split, image for image
    plain, fb_plain = assign(keys, shots=None, ratio=0.9, seed=0)
    one, fb_one = assign(keys, shots=None, ratio=0.9, seed=0, groups={k: "x" for k in keys})
    assert plain == one and [f"class 'x': {f}" for f in fb_plain] == fb_one


def test_labels_csv_and_a_missing_label_is_refused_with_a_reason(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    paths = noise_images(tmp_path / "src", 12, size=32)
    with open(tmp_path / "src" / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "class"])
        for i, p in enumerate(paths[:-1]):  # the last image is not labelled
            w.writerow([p.name, "odd" if i % 2 else "even"])
        w.writerow(["gone.png", "even"])  # names no file: ignored, reported
    _, cs, ss = curate_split(tmp_path, entry_for({"from": "csv", "csv": "labels.csv"}))
    rows = rows_of(tmp_path / "cur" / "manifest.csv")
    assert "labels.csv" not in {r["source"] for r in rows}  # the labels file is not an image candidate
    missing = [r for r in rows if r["source"] == paths[-1].name]
    assert len(missing) == 1 and missing[0]["status"] == "skipped" and missing[0]["reason"] == "no_class"
    assert "not listed in the labels file labels.csv" in missing[0]["detail"]
    assert cs["counts"]["skipped_by_reason"] == {"no_class": 1} and cs["counts"]["written"] == 11
    assert cs["classes"]["counts"] == {"even": 6, "odd": 5}
    assert any("gone.png" in f for f in cs["fallbacks"]) and any("no_class" in n for n in cs["notes"])
    written = {r["source"]: r["class"] for r in rows if r["status"] == "written"}
    assert written == {p.name: ("odd" if i % 2 else "even") for i, p in enumerate(paths[:-1])}
    assert set(ss["classes"]["counts"]) == {"even", "odd"}


def test_labels_csv_errors_name_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    noise_images(tmp_path / "src", 12, size=32)
    (tmp_path / "src" / "labels.csv").write_text("name,label\nimg000.png,a\n")
    with pytest.raises(DatasetConfigError, match=r"labels\.csv.*columns \['file', 'class'\]"):
        curate.run(params_for("toy", entry_for({"from": "csv", "csv": "labels.csv"})), "toy", tmp_path / "cur")
    (tmp_path / "src" / "labels.csv").write_text("file,class\nimg000.png,a\nimg000.png,b\n")
    with pytest.raises(DatasetConfigError, match=r"labels\.csv:3: img000\.png is labelled both 'a' and 'b'"):
        curate.run(params_for("toy", entry_for({"from": "csv", "csv": "labels.csv"})), "toy", tmp_path / "cur")
    with pytest.raises(DatasetConfigError, match=r"nope\.csv not found"):
        curate.run(params_for("toy", entry_for({"from": "csv", "csv": "nope.csv"})), "toy", tmp_path / "cur")
    with pytest.raises(DatasetConfigError, match=r"datasets\.toy\.classes\.csv is required"):
        resolve_entry(params_for("toy", entry_for({"from": "csv"})), "toy")
    with pytest.raises(DatasetConfigError, match=r"datasets\.toy\.classes\.from"):
        resolve_entry(params_for("toy", entry_for({"from": "folder"})), "toy")


def test_subfolder_mode_refuses_top_level_images_with_a_reason(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    classed_folder(tmp_path / "src")
    noise_images(tmp_path / "src", 1, size=32, seed=99, prefix="loose")
    params = params_for("toy", entry_for({"from": "subfolder"}))
    cs = curate.run(params, "toy", tmp_path / "cur")
    loose = [r for r in rows_of(tmp_path / "cur" / "manifest.csv") if r["source"] == "loose000.png"]
    assert loose[0]["reason"] == "no_class" and "sub-folder" in loose[0]["detail"]
    assert cs["counts"]["skipped_by_reason"] == {"no_class": 1}


def test_classless_dataset_has_no_class_column_and_split_refuses_a_stale_manifest(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    classed_folder(tmp_path / "src")
    _, cs, ss = curate_split(tmp_path, entry_for(None))  # classes left to the defaults: from none
    assert list(rows_of(tmp_path / "cur" / "manifest.csv")[0]) == MANIFEST_COLUMNS
    assert list(rows_of(tmp_path / "spl" / "split.csv")[0]) == SPLIT_COLUMNS
    assert "classes" not in cs and "classes" not in ss
    assert split_classes(tmp_path / "spl") == {}
    _, _, y = load_images(tmp_path / "cur", tmp_path / "spl", "train", with_labels=True)
    assert y is None
    with pytest.raises(SplitError, match=r"has no class column.*re-run `fewgan curate`"):
        split.run(params_for("toy", entry_for({"from": "subfolder"})), "toy", tmp_path / "cur", tmp_path / "spl2")


def test_class_index_is_sorted_names():
    assert class_index(["wild", "cat", "dog", "cat"]) == {"cat": 0, "dog": 1, "wild": 2}


def test_afhq_subfolders_give_three_stratified_classes(shared_data, tmp_path, monkeypatch):
    """The real AFHQ folder (cat/, dog/, wild/): its params entry curates with classes, every class is in
    train and test."""
    from pathlib import Path

    from fewgan.params import resolve

    params, _ = resolve("demo", Path(__file__).resolve().parents[2] / "params")
    monkeypatch.chdir(tmp_path)
    entry = params["datasets"]["afhq_stargan_v2"]
    assert entry["classes"] == {"from": "subfolder", "csv": None}
    entry["resolution"] = 32  # the decode dominates; the classes do not depend on the size
    monkeypatch.setenv("FEWGAN_SHARED_DATA", str(shared_data))
    cs = curate.run(params, "afhq_stargan_v2", tmp_path / "cur")
    ss = split.run(params, "afhq_stargan_v2", tmp_path / "cur", tmp_path / "spl")
    assert cs["classes"]["names"] == ["cat", "dog", "wild"] and sum(cs["classes"]["counts"].values()) == 41
    assert all(c["train"] >= 1 and c["test"] >= 1 for c in ss["classes"]["counts"].values())
