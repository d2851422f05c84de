"""Snakemake and DVC run the same DAG: parity of planned outputs, lint, full smoke runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fewgan.params import PROFILES

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "DVC_NO_ANALYTICS": "1",
       "PYTHONUNBUFFERED": "1"}


def sh(cmd: list[str], cwd: Path, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def make_project(dst: Path, profile: str) -> Path:
    """A copy of the pipeline definition (not the outputs) with the profile selected."""
    for name in ("workflow", "params", "src"):
        shutil.copytree(REPO / name, dst / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copy(REPO / "dvc.yaml", dst / "dvc.yaml")
    sh(["fewgan", "params", "--profile", profile], dst)
    return dst


def snakemake_outputs(project: Path) -> set[str]:
    """Every output file/directory of the planned DAG, from `snakemake --summary` (dry, nothing runs)."""
    out = sh(["snakemake", "--cores", "1", "--summary", "all"], project).stdout
    paths = set()
    for line in out.splitlines()[1:]:
        if line.strip():
            paths.add(line.split("\t")[0].rstrip("/"))
    return paths


def dvc_outputs(project: Path) -> set[str]:
    code = ("import json,sys; from dvc.repo import Repo; r = Repo(sys.argv[1]); "
            "print(json.dumps(sorted(o.def_path for s in r.index.stages for o in s.outs)))")
    if not (project / ".dvc").exists():
        sh(["dvc", "init", "--no-scm", "-q"], project)
    return set(json.loads(sh([sys.executable, "-c", code, str(project)], project).stdout))


@pytest.mark.parametrize("profile", PROFILES)
def test_snakemake_plans_exactly_the_dvc_outputs(tmp_path, profile):
    project = make_project(tmp_path, profile)
    smk, dvc = snakemake_outputs(project), dvc_outputs(project)
    assert smk == dvc, f"only Snakemake: {sorted(smk - dvc)}\nonly DVC: {sorted(dvc - smk)}"
    assert "reports/benchmark" in smk and any(p.endswith("evaluate/metrics.json") for p in smk)


def test_snakemake_lint_is_clean(tmp_path):
    project = make_project(tmp_path, "smoke")
    proc = sh(["snakemake", "--lint"], project, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Lints for" not in out, out


def _check_report(project: Path) -> dict:
    report = project / "reports" / "benchmark"
    assert (report / "index.html").is_file() and (report / "README.md").is_file()
    text = (report / "README.md").read_text()
    assert "not comparable to published FID" in text  # the untrained-extractor label
    metrics = json.loads(next(project.glob("runs/*/fastgan/evaluate/metrics.json")).read_text())
    assert metrics["feature_extractor"]["standard"] is False
    return metrics


@pytest.mark.slow
def test_smoke_run_with_snakemake_then_nothing_to_do(tmp_path):
    project = make_project(tmp_path, "smoke")
    sh(["snakemake", "--cores", "2", "all"], project, timeout=1200)
    metrics = _check_report(project)
    assert metrics["fid_train"] is not None and metrics["fid_train"] >= 0
    again = sh(["snakemake", "--cores", "2", "-n", "all"], project)
    assert "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.slow
def test_smoke_run_with_dvc_repro_in_a_git_repo_then_up_to_date(tmp_path):
    project = make_project(tmp_path, "smoke")
    sh(["git", "init", "-q"], project)
    sh(["git", "-c", "user.email=ci@fewgan", "-c", "user.name=ci", "commit", "-q", "--allow-empty", "-m", "init"], project)
    sh(["dvc", "init", "-q"], project)
    sh(["dvc", "config", "core.analytics", "false"], project)
    sh(["dvc", "repro"], project, timeout=1200)
    _check_report(project)
    assert (project / "dvc.lock").is_file()
    status = sh(["dvc", "status"], project).stdout
    assert "up to date" in status.lower() or status.strip() == "", status
    again = sh(["dvc", "repro"], project)
    assert "didn't change, skipping" in again.stdout and "Running stage" not in again.stdout
