"""A fake runs/ + data/ tree in the docs/DESIGN.md formats, for the report tests."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

UNTRAINED = "feature extractor: untrained, not comparable to published FID"
EVIL_DATASET = "evil<script>x"
EVIL_DESCRIPTION = "photos <script>alert('pwned')</script> & friends"
MODELS = ["fastgan", "dcgan"]


def _json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _csv(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def _png(path: Path, seed: int, size=(24, 16)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)


def fid_of(d_index: int, m_index: int) -> float:
    return 40.0 + 10 * d_index + 1.5 * m_index + 0.123


def build_tree(root: Path, seeds: tuple[int, ...] = (0,), swd_by_model: dict | None = None) -> dict:
    """Cells runs/D/M/s<seed>/ for every seed; `swd_by_model` {model: [SWD per seed]} sets the ranking metric."""
    datasets = ["faces", EVIL_DATASET]
    runs, data = root / "runs", root / "data"
    stage_wall = {}
    for di, d in enumerate(datasets):
        _json(data / "curated" / d / "summary.json", {"n_images": 20, "resolution": 64, "synthetic": di == 0})
        _json(data / "splits" / d / "summary.json", {"n_train": 18, "n_test": 2})
        _json(data / "curated" / d / "stage.json", {"stage": "curate", "wall_s": 1.0 + di, "cpu_s": 1.0})
        _json(data / "splits" / d / "stage.json", {"stage": "split", "wall_s": 0.5, "cpu_s": 0.5})
        for mi, m in enumerate(MODELS):
            for si, seed in enumerate(seeds):
                base = runs / d / m / f"s{seed}"
                fid = fid_of(di, mi) + si
                swd = (swd_by_model or {}).get(m, [20.0 + mi] * len(seeds))[si]
                _json(base / "train" / "run.json", {
                    "dataset": d, "model": m, "resolution": 64, "iterations": 300, "batch_size": 8,
                    "params_G": 1234567 + mi, "params_D": 765432, "wall_seconds": 90.0,
                    "seconds_per_iteration": 0.3 + mi, "device": "cpu",
                    "compute": {"kimg": 2.4, "train_seconds": 90.0, "flops": 300 * 1e9 * (mi + 1), "device": "cpu"},
                    "fallbacks": [f"LPIPS-VGG backbone untrained ({m})"],
                    "snapshots": [{"iteration": i, "path": f"snapshots/snapshot_{i:07d}.pt", "kimg": i * 8 / 1000,
                                   "train_seconds": i * 0.3, "flops": i * 1e9 * (mi + 1), "device": "cpu"}
                                  for i in (100, 200, 300)]})
                _csv(base / "score" / "scores.csv",
                     ["iteration", "fid", "kid", "kid_std", "swd", "n_fake", "n_real", "seconds", "snapshot"],
                     [[i, fid + (300 - i) / 10, 5.0, 0.5, 30.0 - i / 100 + mi, 50, 18, 1.0, f"snapshot_{i:07d}.pt"]
                      for i in (100, 200, 300)])
                _json(base / "score" / "scores.json", {"rows": [], "fallbacks": ["Inception untrained"],
                                                        "feature_extractor": {"standard": False, "label": UNTRAINED}})
                _json(base / "select" / "best.json", {"iteration": 300, "fid": fid, "kid": 5.0, "swd": 27.0 + mi,
                                                      "metric": "swd", "why": "auto: the Inception extractor is a fallback",
                                                      "snapshot": "snapshot_0000300.pt", "rule": "lowest SWD"})
                _csv(base / "invert" / "inversion.csv",
                     ["iteration", "lpips_mean", "lpips_std", "mse_mean", "mse_std", "n_images", "steps", "split",
                      "psnr_mean", "psnr_std", "msssim_mean", "msssim_std"],
                     [[i, 0.3 + 0.0001 * i * (mi + 1), 0.01, 0.05, 0.01, 2, 20, "test", 20.0, 1.0, 0.5 + i / 1000, 0.02]
                      for i in (100, 200, 300)]
                     + [[i, 0.2, 0.01, 0.04, 0.01, 2, 20, "train", 21.0, 1.0, 0.9, 0.01] for i in (100, 200, 300)])
                _json(base / "invert" / "inversion.json", {
                    "rows": [], "fallbacks": ["LPIPS-vgg: untrained VGG backbone"],
                    "headline": {"metric": "msssim", "column": "msssim_mean"},
                    "settings": {"lpips": {"fallback": "untrained VGG backbone"}}})
                _png(base / "invert" / "reconstructions.png", 10 * di + mi)
                _json(base / "evaluate" / "metrics.json", {
                    "fid_train": fid, "fid_test": fid + 7.0, "kid_train": 12.345 + mi, "kid_train_std": 1.25,
                    "kid_test": 20.5, "kid_test_std": 2.5, "swd": {"levels": {"64": 30.0, "32": 20.0, "16": 10.0},
                                                                     "mean": swd},
                    "swd_real_floor": {"mean": 5.0}, "msssim_fake": 0.25, "msssim_real": 0.2, "n_fake": 50,
                    "n_real_train": 18, "n_real_test": 2,
                    "feature_extractor": {"name": "inception-v3-compat", "source": "untrained", "sha256": None,
                                          "standard": False, "label": UNTRAINED},
                    "fallbacks": ["Inception weights unavailable: untrained extractor"],
                    "provenance": {"git": {"commit": "abc123", "dirty": False}}})
                _png(base / "evaluate" / "samples.png", 100 + 10 * di + mi)
                for k, stage in enumerate(("train", "score", "select", "invert", "evaluate")):
                    wall = 10.0 * (k + 1) + di + mi
                    stage_wall[(d, m, seed, stage)] = wall
                    _json(base / stage / "stage.json", {"stage": stage, "wall_s": wall, "cpu_s": wall})
    params = {
        "profile": "smoke", "seed": 0, "device": "cpu",
        "experiment": {"datasets": datasets, "models": MODELS, "seeds": list(seeds)},
        "datasets": {"faces": {"description": "synthetic demo faces", "source": {"type": "synthetic"}},
                     EVIL_DATASET: {"description": EVIL_DESCRIPTION}},
        "evaluation": {"select": {"metric": "auto"}},
        "report": {"title": "bench <b>title</b>", "include_paper_table": True, "image_grid_max": 16, "decimals": 2,
                   "flops_budget": None},
        "_meta": {"sha256": "f" * 64},
    }
    return {"params": params, "runs": runs, "data": data, "out": root / "reports" / "benchmark",
            "stage_wall": stage_wall, "datasets": datasets}


@pytest.fixture
def tree(tmp_path) -> dict:
    return build_tree(tmp_path)


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """One report build shared by the read-only tests of this folder (matplotlib figures are the slow part)."""
    import pandas as pd

    from fewgan.report import run

    tree = build_tree(tmp_path_factory.mktemp("report"))
    result = run(tree["params"], tree["runs"], tree["data"], tree["out"])
    out = tree["out"]
    return {**tree, "result": result, "summary": pd.read_csv(out / "summary.csv"),
            "md": (out / "README.md").read_text(), "html": (out / "index.html").read_text()}
