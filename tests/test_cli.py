"""The CLI door: clear errors with exit codes, stage cost records, safe paths."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from fewgan.cli import main
from fewgan.io import UnsafePathError, atomic_write_json, safe_join

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    shutil.copytree(REPO / "params", tmp_path / "params")
    monkeypatch.chdir(tmp_path)
    assert main(["params", "--profile", "smoke"]) == 0
    return tmp_path


def test_unknown_dataset_is_a_clear_error(project, capsys):
    assert main(["curate", "--dataset", "nope"]) == 2
    err = capsys.readouterr().err
    assert "params/active.yaml" in err and "'nope'" in err and "demo_faces" in err


def test_stale_active_params_refused_with_instructions(project, capsys):
    f = project / "params" / "train.yaml"
    data = yaml.safe_load(f.read_text())
    data["iterations"] += 1
    f.write_text(yaml.safe_dump(data))
    assert main(["split", "--dataset", "demo_faces"]) == 2
    err = capsys.readouterr().err
    assert "stale" in err and "params/train.yaml" in err and "fewgan params --profile smoke" in err


def test_missing_active_params(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["curate", "--dataset", "demo_faces"]) == 2
    assert "fewgan params --profile demo" in capsys.readouterr().err


def test_curate_records_its_cost_in_stage_json(project):
    p = yaml.safe_load((project / "params" / "active.yaml").read_text())
    assert p["datasets"]["demo_faces"]["source"]["kind"] == "synthetic"
    assert main(["curate", "--dataset", "demo_faces", "--out", "data/curated/demo_faces"]) == 0
    rec = json.loads((project / "data/curated/demo_faces/stage.json").read_text())
    assert rec["stage"] == "curate" and rec["wall_s"] > 0 and rec["cpu_s"] > 0 and rec["peak_rss_mb"] > 10
    assert rec["argv"][:3] == ["curate", "--dataset", "demo_faces"]
    summary = json.loads((project / "data/curated/demo_faces/summary.json").read_text())
    n_png = len(list((project / "data/curated/demo_faces/images").glob("*.png")))
    assert n_png == summary["counts"]["written"] if "counts" in summary else n_png > 0


def test_safe_join_refuses_escapes(tmp_path):
    assert safe_join(tmp_path, "a/b.png") == (tmp_path / "a" / "b.png").resolve()
    for bad in ("../x", "a/../../x", "/etc/passwd"):
        with pytest.raises(UnsafePathError):
            safe_join(tmp_path, bad)


def test_atomic_json_writes_no_partial_file_and_no_nan(tmp_path):
    target = tmp_path / "m.json"
    atomic_write_json(target, {"fid": float("nan"), "ok": 1.5})
    assert json.loads(target.read_text()) == {"fid": None, "ok": 1.5}
    with pytest.raises(TypeError):
        atomic_write_json(target, {"bad": object()})
    assert json.loads(target.read_text()) == {"fid": None, "ok": 1.5}  # old content intact
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]  # no temp file left behind


def test_atomic_writes_leave_files_readable_like_any_other(tmp_path, monkeypatch):
    """mkstemp's temporary files are private (0600); results must get the usual mode (0666 & ~umask)."""
    import fewgan.io as fio

    for mask, mode in ((0o022, 0o644), (0o077, 0o600), (0o002, 0o664)):
        monkeypatch.setattr(fio, "_UMASK", mask)
        fio.atomic_write_text(tmp_path / f"a{mask}.txt", "x")
        assert (tmp_path / f"a{mask}.txt").stat().st_mode & 0o777 == mode


def test_atomic_replace_keeps_the_replaced_files_mode(tmp_path):
    """Replacing a file the user made group-only (0640) or executable (0755) must not reset its mode."""
    import fewgan.io as fio

    for mode in (0o640, 0o755):
        f = tmp_path / f"m{mode:o}.txt"
        f.write_text("old")
        os.chmod(f, mode)
        fio.atomic_write_text(f, "new")
        assert f.read_text() == "new" and f.stat().st_mode & 0o777 == mode


def test_bench_compare_reads_this_project_by_default_and_refuses_escapes(tmp_path, monkeypatch, capsys):
    """`fewgan bench --compare` (no DIR) means this project; the costs it compares are the summed
    stage.json wall times of a finished run."""
    from fewgan import bench
    from fewgan.cli import build_parser

    args = build_parser().parse_args(["bench", "--compare"])
    assert args.compare == "."
    for rel, stage, wall in (("data/curated/a", "curate", 1.5), ("runs/a/m/s0/train", "train", 10.0),
                             ("runs/a/n/s0/train", "train", 2.5), ("reports/benchmark", "report", 0.5)):
        atomic_write_json(tmp_path / rel / "stage.json", {"stage": stage, "wall_s": wall})
    assert bench.measured_costs(tmp_path) == {"curate": 1.5, "train": 12.5, "report": 0.5, "total": 14.5}
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "--compare", "../elsewhere"]) == 2
    assert "--compare" in capsys.readouterr().err


def test_atomic_dir_keeps_the_previous_folder_when_the_swap_fails(tmp_path, monkeypatch):
    """The swap is two renames (old away, new in): if the second fails, or the process dies between them,
    the previous content must come back, not be deleted as a leftover."""
    import errno

    import fewgan.io as fio

    final = tmp_path / "out"
    final.mkdir()
    (final / "keep.txt").write_text("previous")
    real_rename, calls = os.rename, []

    def failing_second_rename(src, dst):
        calls.append(src)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_rename(src, dst)

    monkeypatch.setattr(fio.os, "rename", failing_second_rename)
    with pytest.raises(OSError, match="out"):
        with fio.atomic_dir(final) as tmp:
            (tmp / "new.txt").write_text("new")
    monkeypatch.setattr(fio.os, "rename", real_rename)
    assert (final / "keep.txt").read_text() == "previous" and not (final / "new.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]

    # killed between the renames (the .old folder of a dead process, no `out`): the next writer restores it
    os.rename(final, tmp_path / ".out.old-999999999-deadbeef")
    with fio.atomic_dir(final) as tmp:
        assert (final / "keep.txt").read_text() == "previous"  # restored before the new content is made
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in final.iterdir()) == ["new.txt"]
