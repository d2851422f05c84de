"""`fewgan dataset add`: the folder report, the refusals, and the entry appended to params/datasets.yaml."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fewgan.data import curate
from fewgan.data.register import DatasetAddError, add_dataset, default_resolution, format_report
from fewgan.data.schema import resolve_entry, validate_entry
from fewgan.params import dataset_entry
from fewgan.io import read_yaml

from .helpers import noise_images

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    """A scratch repository: a copy of params/, run from its root (as Snakemake/DVC run curate)."""
    shutil.copytree(REPO / "params", tmp_path / "params")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FEWGAN_SHARED_DATA", raising=False)
    return tmp_path


def datasets_bytes(repo: Path) -> bytes:
    return (repo / "params" / "datasets.yaml").read_bytes()


def add(repo: Path, name: str, path, **kw):
    kw.setdefault("mode", "center")
    kw.setdefault("resolution", None)
    kw.setdefault("shots", None)
    kw.setdefault("landmarks", None)
    return add_dataset(name, path, params_dir=repo / "params", **kw)


def messy_folder(repo: Path) -> Path:
    """12 good images, and one of each kind of trouble. Returns the folder."""
    src = repo / "data" / "sources" / "messy"
    noise_images(src, 12, size=48)
    Image.fromarray(np.random.default_rng(7).integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(src / "tiny.png")
    shutil.copy(src / "img003.png", src / "img003_copy.png")                      # duplicate (file bytes)
    good = (src / "img004.png").read_bytes()
    (src / "corrupt.png").write_bytes(good[: len(good) // 2])                   # truncated PNG
    (src / "garbage.jpg").write_bytes(b"\xff\xd8 this is no JPEG at all" * 10)  # undecodable "image"
    (src / "notes.txt").write_text("where the photos came from")                # not an image
    outside = repo / "elsewhere"
    noise_images(outside, 1, size=48, seed=99, prefix="out")
    os.symlink(outside / "out000.png", src / "escape.png")                      # symlink escaping the folder
    (src / ".DS_Store").write_bytes(b"\x00\x01")                                # hidden file
    noise_images(src / ".thumbs", 2, seed=5)                                    # hidden folder
    os.symlink(outside, src / "linked")                                         # linked folder
    return src


def test_messy_folder_report_counts_and_reasons(repo):
    src = messy_folder(repo)
    r = add(repo, "messy", src, dry_run=True)
    good = {f"img{i:03d}.png" for i in range(12)}
    assert set(r.accepted) == good | {"tiny.png"}
    assert r.refused_by_reason == {"duplicate_exact": 1, "hidden_file": 1, "hidden_folder": 1, "not_image": 1,
                                   "symlink_folder": 1, "symlink_outside": 1, "truncated": 1, "unreadable": 1}
    by_file = {f.file: f for f in r.refused}
    assert by_file["img003_copy.png"].reason == "duplicate_exact" and "img003.png" in by_file["img003_copy.png"].detail
    assert by_file["corrupt.png"].reason == "truncated"
    assert by_file["garbage.jpg"].reason == "unreadable"
    assert by_file["notes.txt"].reason == "not_image"
    assert by_file["escape.png"].reason == "symlink_outside" and "elsewhere" in by_file["escape.png"].detail
    assert by_file[".DS_Store"].reason == "hidden_file"
    assert by_file[".thumbs/"].reason == "hidden_folder" and "2 file(s)" in by_file[".thumbs/"].detail
    assert by_file["linked/"].reason == "symlink_folder"
    # nothing dropped silently: every file found is accepted or refused
    assert r.files_found == 21 == len(r.accepted) + len(r.refused)
    assert r.decoded == 13 and r.formats == {"PNG": 13}
    assert r.sizes == {"width": (20, 48, 48), "height": (20, 48, 48)}
    # the tiny image is upsampled by curate, not refused: the default resolution says so, a warning names it
    assert r.resolution == 32 and "20 px" in r.resolution_note and "tiny.png" in r.resolution_note
    assert r.shots == 13 and "all 13" in r.shots_note
    assert r.source == {"root": "repo", "path": "data/sources/messy", "how": r.source["how"]}
    assert not r.problems and not r.written
    text = format_report(r)
    for needle in ("files found: 21", "accepted: 13", "truncated: corrupt.png", "symlink_outside: escape.png",
                   "not_image: notes.txt", "formats (by content): PNG 13", "width min 20 / median 48 / max 48"):
        assert needle in text, needle
    # an explicit resolution above the tiny image: still accepted, with an upsampling warning naming it
    r64 = add(repo, "messy", src, resolution=64, dry_run=True)
    assert r64.resolution == 64 and "tiny.png" in r64.accepted
    assert any("upsample" in w and "tiny.png (20 px)" in w for w in r64.warnings)
    # at the default (32) only tiny itself (20 px) is upsampled: the note says no resolution fits it
    assert [w for w in r.warnings if "upsample" in w] == [w for w in r.warnings if "tiny.png (20 px)" in w] != []
    assert "no supported resolution fits it" in r.resolution_note


def test_report_matches_what_curate_does(repo):
    """The report predicts curate: same accepted files, same reason for every file curate skips."""
    src = messy_folder(repo)
    Image.new("RGB", (40, 30), (9, 9, 9)).save(src / "wide.png")          # not square: refused by mode none
    noise_images(src / "b", 1, size=48, prefix="img000_again")
    shutil.copy(src / "img000.png", src / "b" / "img000_again000.png")   # same bytes in a sub-folder
    Image.open(src / "img001.png").save(src / "img001_as.bmp")           # same pixels, other bytes
    r = add(repo, "strict", src, mode="none", resolution=32)
    assert r.written
    params = {"seed": 0, "datasets": {k: dataset_entry(v, repo / "params") for k, v in read_yaml(repo / "params" / "datasets.yaml").items()}}
    curate.run(params, "strict", repo / "data" / "curated" / "strict")
    with open(repo / "data" / "curated" / "strict" / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(x["source"] for x in rows if x["status"] == "written") == sorted(r.accepted)
    curate_reasons = {x["source"]: x["reason"] for x in rows if x["status"] == "skipped"}
    # curate names what its folder scan leaves out too (symlink_outside, symlink_folder, ...); hidden names
    # it skips silently
    ours = {f.file: f.reason for f in r.refused if f.reason not in ("hidden_file", "hidden_folder")}
    assert ours == curate_reasons
    assert curate_reasons["wide.png"] == "not_square" and curate_reasons["img001_as.bmp"] == "duplicate_exact"


def test_entry_appended_byte_for_byte_and_params_accept_it(repo):
    from fewgan.params import resolve, validate

    before = datasets_bytes(repo)
    src = repo / "data" / "sources" / "cats"
    noise_images(src, 11, size=70)
    r = add(repo, "my_cats", src, description="cats of the lab", domain="cats")
    after = datasets_bytes(repo)
    assert r.written and after.startswith(before) and after[len(before):] == r.text.encode()
    data = read_yaml(repo / "params" / "datasets.yaml")
    entry = data["my_cats"]
    validate_entry("my_cats", dataset_entry(entry))
    assert entry == {"description": "cats of the lab", "domain": "cats",
                     "source": {"kind": "folder", "root": "repo", "path": "data/sources/cats"},
                     "mode": "center", "resolution": 64, "shots": 11, "min_images": 10}
    assert resolve_entry({"seed": 0, "datasets": {"my_cats": dataset_entry(data["my_cats"])}}, "my_cats")["shots"] == 11
    # every key is commented; the header says when, from where, and the counts
    body = r.text.splitlines()
    assert body[0] == "" and body[1].startswith("# ---- my_cats: added by `fewgan dataset add` on ")
    assert any(str(src) in line for line in body if line.startswith("#"))
    assert "# found 11 file(s): 11 images accepted, 0 refused (none)" in r.text
    for line in body:
        if line.startswith("  "):
            assert " # " in line, line
    params, origin = resolve("smoke", repo / "params")
    validate(params, origin)
    assert params["datasets"]["my_cats"]["resolution"] == 64
    # a second registration appends after the first, leaving it intact
    r2 = add(repo, "my_cats_2", src, mode="pad", shots=10)
    assert datasets_bytes(repo).startswith(after) and r2.entry["shots"] == 10 and r2.entry["mode"] == "pad"


@pytest.mark.parametrize("bad", ["../x", "<script>", "", "a/b", "x" * 65, ".hidden"])
def test_bad_names_refused_file_untouched(repo, bad):
    src = repo / "data" / "sources" / "ok"
    noise_images(src, 10)
    before = datasets_bytes(repo)
    with pytest.raises(DatasetAddError, match="dataset name") as e:
        add(repo, bad, src)
    assert "fewgan dataset add NAME" in str(e.value)
    assert datasets_bytes(repo) == before


def test_existing_name_refused_file_untouched(repo):
    src = repo / "data" / "sources" / "ok"
    noise_images(src, 10)
    before = datasets_bytes(repo)
    with pytest.raises(DatasetAddError, match="'demo_faces' already exists; pick another NAME"):
        add(repo, "demo_faces", src)
    assert datasets_bytes(repo) == before
    with pytest.raises(DatasetAddError, match="differs only in letter case from the existing 'demo_faces'"):
        add(repo, "Demo_Faces", src)
    assert datasets_bytes(repo) == before


def test_dry_run_writes_nothing(repo):
    src = repo / "data" / "sources" / "ok"
    noise_images(src, 10, size=40)
    f = repo / "params" / "datasets.yaml"
    before, mtime = f.read_bytes(), f.stat().st_mtime_ns
    r = add(repo, "fresh", src, dry_run=True)
    assert f.read_bytes() == before and f.stat().st_mtime_ns == mtime and not r.written
    assert sorted(p.name for p in (repo / "params").iterdir()) == sorted(p.name for p in (REPO / "params").iterdir())
    assert r.text.startswith("\n# ---- fresh: added by") and "dry run: nothing written" in format_report(r)


def test_class_subfolders_reported_and_recorded(repo):
    src = repo / "data" / "sources" / "animals"
    for k, (cls, n) in enumerate((("cat", 4), ("dog", 5), ("wild", 6))):
        noise_images(src / cls, n, seed=10 + k, prefix=cls)
    noise_images(src, 1, seed=20, prefix="loose")
    r = add(repo, "animals", src)
    assert r.classes == {"(top level)": 1, "cat": 4, "dog": 5, "wild": 6}
    assert any("belong to no class" in w for w in r.warnings)
    # one loose image: auto keeps the dataset unconditional and says why
    assert "classes" not in r.entry and "not used as classes: 1 image(s) lie outside the sub-folders" in r.text
    assert "classes (sub-folders, accepted images): (top level) 1, cat 4" in format_report(r)
    with pytest.raises(DatasetAddError, match=r"--classes subfolder: .*1 accepted image\(s\) lie directly in the folder"):
        add(repo, "animals2", src, classes="subfolder")


def test_class_subfolders_become_classes_that_curate_reads(repo):
    src = repo / "data" / "sources" / "animals"
    for k, (cls, n) in enumerate((("cat", 4), ("dog", 5), ("wild", 6))):
        noise_images(src / cls, n, seed=10 + k, prefix=cls)
    r = add(repo, "animals", src)
    assert r.entry["classes"] == {"from": "subfolder"} and "used as classes" in r.text
    after = read_yaml(repo / "params" / "datasets.yaml")["animals"]
    assert after["classes"] == {"from": "subfolder"}
    assert dataset_entry(after, repo / "params")["classes"]["from"] == "subfolder"
    params = {"seed": 0, "datasets": {"animals": dataset_entry(after, repo / "params")}}
    curate.run(params, "animals", repo / "data" / "curated" / "animals")
    with open(repo / "data" / "curated" / "animals" / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["class"] for r in rows) == ["cat"] * 4 + ["dog"] * 5 + ["wild"] * 6
    r2 = add(repo, "animals_flat", src, classes="none")
    assert "classes" not in r2.entry and "not used as classes: --classes none" in r2.text


def test_face_mode_needs_landmarks(repo):
    src = repo / "data" / "sources" / "faces"
    noise_images(src, 10)
    before = datasets_bytes(repo)
    with pytest.raises(DatasetAddError, match="--mode face needs face landmarks") as e:
        add(repo, "faces", src, mode="face")
    assert "--landmarks FILE" in str(e.value) and "--detector dlib" in str(e.value)
    assert datasets_bytes(repo) == before


def test_face_mode_landmark_coverage(repo):
    src = repo / "data" / "sources" / "faces"
    noise_images(src, 12, size=64)
    face = [[20, 24], [44, 24], [32, 34], [23, 46], [41, 46]]
    small = [[31, 31], [33, 31], [32, 32], [31, 33], [33, 33]]  # crop side 8 px < 0.5 x 32
    lm = {f"img{i:03d}.png": face for i in range(11)}          # img011.png has none
    lm["img010.png"] = [face, small]                            # two faces, one tiny
    lm["gone.png"] = face                                       # names no image in the folder
    (src / "landmarks.json").write_text(json.dumps(lm))
    r = add(repo, "faces", src, mode="face", landmarks=src / "landmarks.json", resolution=32)
    assert r.landmarks["uncovered"] == ["img011.png"] and r.landmarks["unknown_names"] == ["gone.png"]
    assert r.refused_by_reason == {"face_too_small": 1, "no_landmarks": 1}
    assert [(f.file, f.face) for f in r.refused if f.reason == "face_too_small"] == [("img010.png", 1)]
    assert len(r.accepted) == 11 and "img010.png#0" in r.accepted
    assert [f.file for f in r.other] == ["landmarks.json"]
    assert r.entry["landmarks"] == {"format": "json", "path": "landmarks.json", "missing_images": "warn"}
    validate_entry("faces", dataset_entry(read_yaml(repo / "params" / "datasets.yaml")["faces"]))
    # curate, given the entry written, skips and writes the same photos/faces
    params = {"seed": 0, "datasets": {k: dataset_entry(v, repo / "params") for k, v in read_yaml(repo / "params" / "datasets.yaml").items()}}
    s = curate.run(params, "faces", repo / "data" / "curated" / "faces")
    assert s["counts"]["written"] == len(r.accepted) and s["counts"]["skipped_by_reason"] == r.refused_by_reason
    # a landmark file outside the image folder cannot be named by landmarks.path: refused
    shutil.copy(src / "landmarks.json", repo / "lm.json")
    with pytest.raises(DatasetAddError, match="outside the image folder"):
        add(repo, "faces2", src, mode="face", landmarks=repo / "lm.json")


def test_folder_outside_repo_and_shared_data(repo, tmp_path_factory):
    away = tmp_path_factory.mktemp("away") / "pics"
    noise_images(away, 10)
    before = datasets_bytes(repo)
    r = add(repo, "away", away, dry_run=True)               # a dry run still reports the images
    assert len(r.accepted) == 10 and r.source["root"] is None
    assert any("outside the repository" in p and "cp -r" in p for p in r.problems)
    with pytest.raises(DatasetAddError, match="absolute paths are refused") as e:
        add(repo, "away", away)
    assert e.value.report is not None and len(e.value.report.accepted) == 10
    assert datasets_bytes(repo) == before


@pytest.mark.parametrize("where", ["data/curated/x", "runs/x", "cache", "data"])
def test_pipeline_output_folders_refused(repo, where):
    (repo / "data" / "curated" / "x").mkdir(parents=True)
    (repo / "runs" / "x").mkdir(parents=True)
    (repo / "cache").mkdir()
    noise_images(repo / where, 10)
    with pytest.raises(DatasetAddError, match="pipeline output folder"):
        add(repo, "bad", repo / where)


def test_odd_names_do_not_break_the_yaml(repo):
    src = repo / "data" / "sources" / 'we#ird "set"\nx: 1'
    noise_images(src, 10)
    shutil.copy(src / "img001.png", src / "zz bad\nname #: [x].png")          # refused: a newline in the name
    r = add(repo, "123", src, description="quote \" and # and \\ and\nnewline", domain="ünïcode ✓")
    data = read_yaml(repo / "params" / "datasets.yaml")
    entry = data["123"]                                      # a string key, not the integer 123
    assert entry["source"]["path"] == 'data/sources/we#ird "set"\nx: 1'
    assert entry["description"] == "quote \" and # and \\ and\nnewline" and entry["domain"] == "ünïcode ✓"
    assert 123 not in data and set(data) - {"123"} == set(read_yaml(REPO / "params" / "datasets.yaml"))
    shown = format_report(r)
    # the folder scan leaves such a name out (curate: bad_file_name); the report names it, escaped
    assert "not_listed: 'zz bad\\nname #: [x].png'" in shown and "bad\nname" not in shown
    assert "#   refused not_listed: zz bad\\u000aname #: [x].png\n" in r.text


def test_cli_dataset_add(repo, capsys):
    from fewgan.cli import main

    src = repo / "data" / "sources" / "cli"
    noise_images(src, 10, size=64)
    assert main(["dataset", "add", "cli_set", str(src), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "accepted: 10 images" in out and "dry run: nothing written" in out
    assert "cli_set" not in read_yaml(repo / "params" / "datasets.yaml")
    assert main(["dataset", "add", "cli_set", str(src), "--resolution", "32", "--shots", "10"]) == 0
    assert read_yaml(repo / "params" / "datasets.yaml")["cli_set"]["resolution"] == 32
    with pytest.raises(SystemExit) as e:
        main(["dataset", "add", "cli_set", str(src)])
    assert e.value.code == 2 and "already exists" in capsys.readouterr().err


def test_default_resolution():
    assert [default_resolution(s) for s in (20, 32, 63, 64, 500, 1024, 5000)] == [32, 32, 32, 64, 256, 1024, 1024]


def test_real_folder_afhq(repo, shared_data, monkeypatch):
    """A real folder (../shared/data/afhq-stargan-v2, README: cat 15, dog 11, wild 15 at 512 px)."""
    folder = shared_data / "afhq-stargan-v2"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    monkeypatch.setenv("FEWGAN_SHARED_DATA", str(shared_data))
    before = datasets_bytes(repo)
    r = add(repo, "afhq_local", folder, mode="none")
    assert r.source["root"] == "shared_data" and r.source["path"] == "afhq-stargan-v2"
    assert r.classes == {"cat": 15, "dog": 11, "wild": 15}
    assert r.formats == {"JPEG": 41} and r.sizes == {"width": (512, 512, 512), "height": (512, 512, 512)}
    assert r.refused_by_reason == {"not_image": 1} and r.refused[0].file == "SOURCE.md"
    assert r.resolution == 512 and r.shots == 41
    assert any("'afhq_stargan_v2'" in w and "already reads this folder" in w for w in r.warnings)
    assert datasets_bytes(repo).startswith(before)
    validate_entry("afhq_local", dataset_entry(read_yaml(repo / "params" / "datasets.yaml")["afhq_local"]))


def test_failed_check_after_writing_restores_the_file(repo, monkeypatch):
    from fewgan.data.register import entry

    src = repo / "data" / "sources" / "ok"
    noise_images(src, 10)
    f = repo / "params" / "datasets.yaml"
    before, mode = f.read_bytes(), f.stat().st_mode
    real = entry._entry_text
    monkeypatch.setattr(entry, "_entry_text", lambda *a: real(*a) + "  broken: [not closed\n")
    with pytest.raises(DatasetAddError, match="original file was restored"):
        add(repo, "fresh", src)
    assert f.read_bytes() == before and f.stat().st_mode == mode
    assert not list(f.parent.glob(".datasets.yaml.*"))  # no temporary file left behind


def test_file_without_final_newline_and_its_mode_kept(repo):
    f = repo / "params" / "datasets.yaml"
    f.write_bytes(f.read_bytes().rstrip(b"\n"))
    os.chmod(f, 0o640)
    before = f.read_bytes()
    src = repo / "data" / "sources" / "ok"
    noise_images(src, 10)
    add(repo, "fresh", src)
    assert f.read_bytes().startswith(before + b"\n\n# ---- fresh:") and (f.stat().st_mode & 0o777) == 0o640
    assert read_yaml(f)["fresh"]["shots"] == 10


def test_face_mode_with_a_detector_plugin(repo, monkeypatch):
    from fewgan.data import landmarks as L

    face = np.array([[20, 24], [44, 24], [32, 34], [23, 46], [41, 46]], dtype=np.float64)
    seen = []

    def factory():
        def detect(image):
            seen.append(image.size)
            return [] if len(seen) == 3 else [face]  # the third photo has no face
        return detect

    monkeypatch.setitem(L._DETECTORS, "fake", factory)
    src = repo / "data" / "sources" / "faces"
    noise_images(src, 12, size=64)
    r = add(repo, "faces", src, mode="face", detector="fake", resolution=32, dry_run=True)
    assert r.refused_by_reason == {"no_face_detected": 1} and r.refused[0].file == "img002.png"
    assert len(r.accepted) == 11 and len(seen) == 12  # detected once per photo
    assert "detector: fake" in r.text and "landmarks" not in r.entry
    with pytest.raises(DatasetAddError, match="unknown detector 'nope'"):
        add(repo, "faces", src, mode="face", detector="nope", dry_run=True)
