"""The translation track end to end through Snakemake (params/profiles/translate_smoke.yaml): synthetic edge ->
face pairs, CycleGAN (both directions, cycle errors) and pix2pix (one direction, paired error) through train,
score, select, invert (cycle / paired reconstruction errors) and evaluate (per direction), then the report's
translation section. NICE-GAN is planned by the same profile (tests/test_workflow.py's parity test covers every
profile) and left out of this run to keep it near two minutes on 2 cores."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONUNBUFFERED": "1"}
MODELS = ("cyclegan", "pix2pix")
CELL = "runs/demo_edges2faces/{model}/s0"


def sh(cmd: list[str], cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    dst = tmp_path_factory.mktemp("translate")
    for name in ("workflow", "params", "src"):
        shutil.copytree(REPO / name, dst / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copy(REPO / "dvc.yaml", dst / "dvc.yaml")
    sh(["fewgan", "params", "--profile", "translate_smoke", "--models", *MODELS], dst)
    sh(["snakemake", "--cores", "2", "all"], dst, timeout=900)
    return dst


def _json(project: Path, rel: str) -> dict:
    return json.loads((project / rel).read_text())


@pytest.mark.slow
def test_scores_per_direction_select_one_snapshot(project):
    for model, dirs in (("cyclegan", ["AB", "BA"]), ("pix2pix", ["AB"])):
        cell = CELL.format(model=model)
        scores = _json(project, f"{cell}/score/scores.json")
        assert scores["translation"]["directions"] == dirs
        for row in scores["rows"]:
            assert sorted(row["directions"]) == dirs
            per = [row["directions"][d]["swd"] for d in dirs]
            assert row["swd"] == pytest.approx(sum(per) / len(per))  # the selection value: mean over directions
            assert all(row["directions"][d]["n_fake"] == 14 for d in dirs)  # one translation per train image
        best = _json(project, f"{cell}/select/best.json")
        assert best["iteration"] in {r["iteration"] for r in scores["rows"]}


@pytest.mark.slow
def test_evaluate_reports_every_direction_with_intervals_and_the_nicegan_kid(project):
    for model, dirs in (("cyclegan", ["AB", "BA"]), ("pix2pix", ["AB"])):
        m = _json(project, f"{CELL.format(model=model)}/evaluate/metrics.json")
        assert list(m["directions"]) == dirs and m["translation"]["paired"] is True
        for d in dirs:
            b = m["directions"][d]
            assert (b["n_fake"], b["n_real_test"], b["n_real_train"]) == (2, 2, 14)
            for key in ("fid_test", "kid_test", "fd_effnet_test", "kid_effnet_test"):
                assert b[key] is not None and len(b[f"{key}_ci"]) == 2, key
            assert b["swd"]["mean"] is not None and len(b["swd"]["mean_ci"]) == 2
            kid = b["kid_nicegan"]
            assert kid["subset_size"] == 2 and kid["subsets"] == 50 and len(kid["kid_x100_ci"]) == 2
            assert kid["kid_x100"] == pytest.approx(b["kid_test"] / 10, rel=0.5)  # x100 vs x10^3, 50 vs 10 subsets
            assert "untrained" in kid["label"]  # no standard Inception weights here: labelled
        summary = _json(project, f"{CELL.format(model=model)}/evaluate/summary.json")
        assert all(f"kid_nicegan_x100_{d}" in summary and f"fid_test_{d}" in summary for d in dirs)


@pytest.mark.slow
def test_cycle_and_paired_errors_replace_inversion(project):
    for model, measures in (("cyclegan", {"cycle_AB", "cycle_BA", "paired_AB", "paired_BA"}),
                            ("pix2pix", {"paired_AB"})):
        with open(project / CELL.format(model=model) / "invert/inversion.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert {r["measure"] for r in rows} == measures
        assert {int(r["iteration"]) for r in rows} == {2, 4}  # a curve over the snapshots
        assert all(float(r["mse_mean"]) >= 0 and r["steps"] == "0" and r["split"] == "test" for r in rows)
        inv = _json(project, f"{CELL.format(model=model)}/invert/inversion.json")
        assert inv["kind"] == "translation" and inv["headline"]["metric"] in ("lpips", "effnet_deep", "msssim")


@pytest.mark.slow
def test_the_report_has_a_translation_section(project):
    report = project / "reports/benchmark"
    html = (report / "index.html").read_text()
    assert 'id="translation"' in html and "A → B" in html and "B → A" in html and "KID×100 test (NICE-GAN)" in html
    assert "No number is printed" in html  # NICE-GAN's published table: source only, nothing unverified
    with open(report / "translation.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {(r["model"], r["direction"]) for r in rows} == {("cyclegan", "AB"), ("cyclegan", "BA"), ("pix2pix", "AB")}
    data = _json(project, "reports/benchmark/report.json")
    assert len(data["translation"]["grids"]) == 4  # per cell: translations (evaluate) and cycles (invert)
    assert all((report / g).is_file() for g in data["translation"]["grids"])
    with open(report / "stage_costs.csv", newline="") as f:  # the translators' stage costs (were left out)
        costs = {r["model"]: r for r in csv.DictReader(f)}
    for model in MODELS:
        cell = CELL.format(model=model)
        for stage in ("train", "score", "select", "invert", "evaluate"):
            want = _json(project, f"{cell}/{stage}/stage.json")["wall_s"]
            assert float(costs[f"{model}/s0"][stage]) == pytest.approx(want, rel=1e-6)
    again = subprocess.run(["snakemake", "--cores", "1", "-n", "all"], cwd=project, env=ENV, capture_output=True,
                           text=True, timeout=300)
    assert "Nothing to be done" in again.stdout + again.stderr
