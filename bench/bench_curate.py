"""Curation throughput: images per second of `fewgan.data.curate.run` (median of a few repeats).

Datasets (from params/datasets.yaml, real images from ../shared/data or $FEWGAN_SHARED_DATA):
- flowers_daisy_128: 764 JPEGs, `center` mode at 128 px;
- faces_wild_dlib: 9 annotated VOC photos, 43 faces, `face` mode (FFHQ alignment) at 64 and 256 px;
- demo_faces: the synthetic demo set (generation + face alignment) at 64 px.

Usage: python bench/bench_curate.py [--repeats 3] [--only NAME ...]
Throughput counts written images (faces in face mode) per wall-clock second (and per CPU second of
this process) of the whole stage,
including decoding, hashing, pHash, PNG encoding and the atomic writes; one warm-up run is not counted.
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from fewgan.data import curate  # noqa: E402
from fewgan.io import read_yaml  # noqa: E402

CASES = [  # (label, dataset, overrides)
    ("flowers center 128", "flowers_daisy_128", {}),
    ("dlib faces face 64", "faces_wild_dlib", {}),
    ("dlib faces face 256", "faces_wild_dlib", {"resolution": 256, "min_face_fraction": 0.0}),
    ("demo synthetic face 64", "demo_faces", {}),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", nargs="*", default=None, help="dataset names to run")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    os.chdir(REPO)
    registry = read_yaml(REPO / "params" / "datasets.yaml")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_curate_") as tmp:
        for label, name, over in CASES:
            if args.only and name not in args.only:
                continue
            params = {"seed": 0, "datasets": {name: {**copy.deepcopy(registry[name]), **over}}}
            curate.run(params, name, Path(tmp) / "warmup")  # imports, file cache
            times, cpus, written = [], [], 0
            for r in range(args.repeats):
                t, c = time.perf_counter(), time.process_time()
                s = curate.run(params, name, Path(tmp) / f"{name}-{r}")
                times.append(time.perf_counter() - t)
                cpus.append(time.process_time() - c)
                written = s["counts"]["written"]
            med, cpu = statistics.median(times), statistics.median(cpus)
            rows.append((label, written, med, written / med, cpu, written / cpu))
    print(f"# curate throughput, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"median of {args.repeats}")
    print(f"# load average at the end: {os.getloadavg()[0]:.1f} (wall-clock figures are only meaningful when low;"
          " CPU-second figures are steadier on a shared machine)")
    print(f"| {'case':<24} | {'images':>6} | {'wall s':>7} | {'images/s':>8} | {'CPU s':>7} | {'images/CPU-s':>12} |")
    print(f"|{'-' * 26}|{'-' * 8}|{'-' * 9}|{'-' * 10}|{'-' * 9}|{'-' * 14}|")
    for label, n, sec, ips, cpu, ipc in rows:
        print(f"| {label:<24} | {n:>6} | {sec:>7.2f} | {ips:>8.1f} | {cpu:>7.2f} | {ipc:>12.1f} |")


if __name__ == "__main__":
    main()
