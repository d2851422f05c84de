"""`fewgan params` prints the plan: resolutions and where they come from, jobs per stage, estimated time (issue 31)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fewgan.cli import main
from fewgan.params import write_active
from fewgan.plan import datasets_plan, describe, estimate, job_counts

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "params"

#: bench figures with round numbers, so every estimate below is computed by hand
FIGURES = {
    "machine": "Test CPU 9000", "measured_at": "2026-12-03T20:00:00+00:00", "device": "cpu",
    "process_start_s": 2.0, "curate_s_per_image": 0.01,
    "extractor": {"fewgan_img_s": 10.0}, "effnet": {"img_s": 20.0},
    "swd": {"resolution": 64, "swd_images": 100, "swd_s": 1.0, "msssim_s_per_pair": 0.001},
    "train_profile": {"demo/dcgan": {"model": "dcgan", "resolution": 64, "s_per_iter": 0.1,
                                     "generate_s_per_image": 0.001}},
    "invert_profile": {"demo/dcgan": {"model": "dcgan", "resolution": 64, "s_per_image_per_step": 0.01}},
}


def _active(tmp_path, **kw):
    origin: dict[str, str] = {}
    params = write_active("demo", PARAMS, tmp_path / "active.yaml", origin_out=origin, **kw)
    return params, origin


def test_resolution_and_its_source_per_dataset(tmp_path):
    params, origin = _active(tmp_path)
    assert datasets_plan(params, origin) == [{"dataset": "demo_faces", "resolution": 64,
                                              "resolution_from": str(PARAMS / "profiles" / "demo.yaml"),
                                              "train": 90, "test": 10, "count_known": True}]
    # a dataset the demo profile does not size keeps its entry's resolution: the plan says so
    params, origin = _active(tmp_path, datasets=["flowers_daisy_128"])
    (row,) = datasets_plan(params, origin)
    assert (row["resolution"], row["resolution_from"]) == (128, str(PARAMS / "datasets.yaml"))


def test_jobs_per_stage_over_datasets_models_and_seeds(tmp_path):
    params, _ = _active(tmp_path, seeds=[0, 1, 2])
    cells = 5 * 3  # the demo's five models, three seeds, one dataset
    assert job_counts(params) == {"curate": 1, "split": 1, "train": cells, "score": cells, "select": cells,
                                  "invert": cells, "evaluate": cells, "report": 1}


def test_estimate_from_bench_figures_by_hand(tmp_path):
    params, _ = _active(tmp_path, models=["dcgan"], seeds=[0, 1])
    assert (params["train"]["iterations"], params["train"]["snapshot_every"], params["invert"]["steps"],
            params["invert"]["max_images"]) == (300, 100, 40, 8)  # the numbers the sums below use
    est = estimate(params, FIGURES)
    s = est["stages"]
    assert s["curate"] == pytest.approx(2.0 + 100 * 0.01)
    assert s["train"] == pytest.approx(2 * (2.0 + 300 * 0.1))            # two seeds
    assert s["invert"] == pytest.approx(2 * (2.0 + 3 * 40 * 0.01 * 8))    # 3 snapshots x 40 steps x 8 test images
    assert s["select"] == pytest.approx(2 * 2.0)
    assert est["total_s"] == pytest.approx(sum(s.values()))
    assert est["scaled"] == [] and est["unmeasured"] == []

    # at 128 px the 64-px step is scaled by the pixel count, and said so; an unmeasured model is named
    params, _ = _active(tmp_path, models=["dcgan", "fastgan"], datasets=["flowers_daisy_128"])
    est = estimate(params, FIGURES)
    assert est["stages"]["train"] == pytest.approx(2.0 + 300 * 0.1 * 4)
    assert est["scaled"] == ["flowers_daisy_128/dcgan: training step measured at 64 px, scaled to 128 px by the "
                             "pixel count", "flowers_daisy_128/dcgan: inversion step measured at 64 px, scaled to "
                             "128 px by the pixel count"]
    assert est["unmeasured"] == ["fastgan"]


def test_fewgan_params_prints_the_plan(tmp_path, capsys, monkeypatch):
    shutil.copytree(PARAMS, tmp_path / "params")
    monkeypatch.chdir(tmp_path)
    out = "active.yaml"
    assert main(["params", "--profile", "demo", "--out", out, "--bench-figures", "none.json"]) == 0
    text = capsys.readouterr().out
    assert "demo_faces: 64 px (from" in text and "90 train / 10 test" in text
    assert "jobs: curate 1, split 1, train 5, score 5, select 5, invert 5, evaluate 5, report 1 (28 in all)" in text
    assert "estimated time: none yet: `fewgan bench --quick`" in text

    Path("bench.json").write_text(json.dumps(FIGURES))
    assert main(["params", "--profile", "demo", "--models", "dcgan", "--out", out,
                 "--bench-figures", "bench.json"]) == 0
    text = capsys.readouterr().out
    assert "estimated time:" in text and "Test CPU 9000, 2026-12-03" in text
    assert "not on this machine" in text  # measured elsewhere: said


def test_describe_says_when_a_figure_is_missing_or_the_file_is_corrupt(tmp_path):
    params, origin = _active(tmp_path)
    fig = tmp_path / "bench.json"
    fig.write_text(json.dumps({k: v for k, v in FIGURES.items() if k != "extractor"}))
    assert "lacks a figure" in describe(params, origin, fig)
    fig.write_text("{not json")
    assert f"estimated time: none: {fig}: cannot be read as `fewgan bench` figures" in describe(params, origin, fig)


def test_the_demo_width_row_at_the_dataset_resolution_wins_over_scaling(tmp_path):
    params, _ = _active(tmp_path, models=["dcgan"], datasets=["flowers_daisy_128"])
    figures = {**FIGURES, "train": [{"model": "dcgan", "resolution": 128, "s_per_iter": 0.3,
                                     "generate_s_per_image": 0.002}]}
    est = estimate(params, figures)
    assert est["stages"]["train"] == pytest.approx(2.0 + 300 * 0.3)
    assert not any("training step" in n for n in est["scaled"])
