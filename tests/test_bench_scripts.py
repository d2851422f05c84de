"""The committed benchmarks run and print their tables (tiny sizes; the speed figures themselves are
measured by hand on a quiet machine, see bench/README.md)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # subprocess benchmarks / torchrun: not in `make test-fast`

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _run(args: list[str], tmp_path: Path) -> str:
    proc = subprocess.run([sys.executable, *args], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_bench_fastgan_prints_every_variant_and_the_ratios(tmp_path):
    out_json = tmp_path / "fastgan.json"
    out = _run(["bench/bench_fastgan.py", "--resolution", "64", "--batch", "2", "--ngf", "16", "--ndf", "16",
                "--warmup", "0", "--iters", "1", "--recon", "l1", "--threads", "1", "--rounds", "2", "--isa",
                "--json", str(out_json)], tmp_path)
    for variant in ("baseline", "baseline-retain", "fewgan", "fewgan-bf16"):
        assert f"\n{variant} " in "\n" + out
    assert "fewgan / baseline = " in out and "fewgan-bf16 / baseline = " in out
    assert "oneDNN cpu isa:" in out and "AMX in use: " in out
    results = {r["variant"]: r for r in json.loads(out_json.read_text())["results"]}
    assert results["baseline"]["allocator"] == "system"
    assert results["fewgan"]["allocator"].startswith("retain")
    assert results["fewgan-bf16"]["precision"] == "bf16" and results["fewgan"]["precision"] == "fp32"
    assert all(r["rounds"] == 2 and len(r["times_s"]) == 2 for r in results.values())  # interleaved rounds
    assert all(r["median_s"] > 0 and r["peak_rss_mb"] > 0 for r in results.values())


def test_bench_metrics_checks_msssim_against_numpy_and_prints_the_swd_bound(tmp_path):
    out = _run(["bench/bench_metrics.py", "--only", "swd,msssim", "--res", "64", "--swd-images", "4",
                "--pairs", "4", "--repeats", "1", "--threads", "1"], tmp_path)
    assert "SWD 4 vs 4 @ 64px" in out and "of which projections + sorts" in out
    assert "bound on the SWD speed-up with these sort/BLAS kernels" in out
    assert "MS-SSIM 4 pairs @ 64px" in out  # the script asserts equality with its numpy reference


def test_bench_metrics_effnet_and_inversion_rows_assert_equal_values(tmp_path):
    """Issue 24 item 1's rows: EfficientNet-Lite0 as shipped vs channels_last, the inversion step's LPIPS with the
    target's features recomputed vs kept; the script asserts the features/losses agree before printing."""
    out = _run(["bench/bench_metrics.py", "--quick", "--only", "effnet,invert", "--repeats", "1", "--threads", "1"],
               tmp_path)
    m = re.search(r"EffNet-Lite0 16 imgs \(img/s\) +([\d.]+)/s +([\d.]+)/s .*max rel diff ([\d.e+-]+)", out)
    assert m and float(m.group(1)) > 0 and float(m.group(2)) > 0 and float(m.group(3)) <= 2e-5, out
    m = re.search(r"inversion LPIPS, 5 steps of 8 @ 32px +([\d.]+) s +([\d.]+) s .*loss ([\d.]+) = ([\d.]+)", out)
    assert m and m.group(3) == m.group(4), out
    m = re.search(r"kept: (\d+) GFLOP/s = (\d+)% of the fp32 matmul peak \((\d+)\)", out)
    assert m and int(m.group(1)) > 0 and int(m.group(3)) > 0, out


def test_bench_metrics_sort_rows_compare_numpys_kernels_at_equal_values(tmp_path):
    """numpy's AVX-512 vs AVX2 sort kernels (fewgan.numpy_simd), each in a child process; the script asserts the
    sorted values and the bootstrap's resampled SWDs are equal under both before printing."""
    out = _run(["bench/bench_metrics.py", "--quick", "--only", "sort", "--repeats", "1", "--threads", "1"], tmp_path)
    m = re.search(r"np.sort 512 x 11,520 float32 +([\d.]+) s +([\d.]+) s .*fewgan runs: (AVX-512 off|numpy's default)",
                  out)
    assert m and float(m.group(1)) > 0 and float(m.group(2)) > 0, out
    m = re.search(r"SWD bootstrap 10 resamples +([\d.]+) s +([\d.]+) s .*values equal", out)
    assert m and float(m.group(1)) > 0, out


def test_gpu_check_dry_run_prints_its_table(tmp_path):
    """bench/gpu_check.sh is for a GPU machine; --dry-run runs every step on the CPU at toy sizes."""
    env = {**ENV, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(["bash", "bench/gpu_check.sh", "--dry-run"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = proc.stdout.split("fewgan GPU check (DRY RUN on CPU, toy sizes)")[1]
    for row in ("FastGAN step 64px b2 baseline fp32 channels_last=off", "FastGAN step 64px b2 fewgan fp32 channels_last=on",
                "Inception images/s", "smoke profile, snakemake --cores 4 runs/demo_faces/dcgan/s0/train, device cpu",
                "torchrun DDP, 1 process"):
        assert row in table, row
    assert "world_size 1, device cpu" in table
    # the Inception row holds both speeds (as shipped / channels_last), parsed from bench_metrics.py's table
    assert re.search(r"Inception images/s \(as shipped / channels_last\) +\| [\d.]+/s / [\d.]+/s", table), table


def test_bench_post_training_compares_every_number_and_finds_the_trained_cells(tmp_path):
    """bench/bench_post_training.py's comparison: every number of two JSON outputs, time/provenance keys left out,
    a key on one side only reported as infinitely different; cells are the runs with train snapshots."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_post_training", REPO / "bench" / "bench_post_training.py")
    bp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bp)
    a = {"swd": {"mean": 100.0, "levels": [1.0, 2.0]}, "seconds": {"total": 3.0}, "n": 5, "ok": True,
         "provenance": {"x": 1.0}}
    b = {"swd": {"mean": 100.0001, "levels": [1.0, 2.5]}, "seconds": {"total": 9.0}, "n": 5, "ok": False,
         "provenance": {"x": 2.0}, "extra": 1}
    worst = bp.largest_differences(a, b, top=3)
    assert worst[0][:2] == (float("inf"), ".extra")
    assert worst[1][1] == ".swd.levels[1]" and worst[1][0] == pytest.approx(0.2)
    assert worst[2][1] == ".swd.mean" and worst[2][0] == pytest.approx(1e-6, rel=1e-3)
    assert all("seconds" not in k and "provenance" not in k for _, k, _, _ in bp.largest_differences(a, b, top=10))
    assert bp.rel_diff(float("nan"), float("nan")) == 0.0 and bp.rel_diff(1.0, float("nan")) == float("inf")
    for model in ("dcgan", "fastgan"):
        (tmp_path / "runs" / "toy" / model / "s0" / "train" / "snapshots").mkdir(parents=True)
    (tmp_path / "runs" / "toy" / "biggan" / "s0" / "train").mkdir(parents=True)  # never trained: no snapshots
    assert bp.cells(tmp_path, None) == [("toy", "dcgan", "s0"), ("toy", "fastgan", "s0")]
    assert bp.cells(tmp_path, ["fastgan"]) == [("toy", "fastgan", "s0")]
    with pytest.raises(SystemExit, match="no trained cell"):
        bp.cells(tmp_path / "nothing", None)
    assert bp.split_label("HEAD") == ("HEAD", False) and bp.split_label("abc123:preload") == ("abc123", True)
    with pytest.raises(SystemExit, match="COMMIT:preload"):
        bp.split_label("HEAD:fast")
