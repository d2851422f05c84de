"""Same-day before/after of the post-training stages: several commits re-run score, select, invert and evaluate on
the SAME trained snapshots, one job at a time, and the table compares their summed stage.json wall times and the
largest relative difference of every number they wrote (issue 24 item 1: "at equal outputs"). The commits take
turns cell by cell, so a drift of the machine's speed during the run hits each of them alike.

    python bench/bench_post_training.py --run /path/to/finished/demo --commits 521c9e8 HEAD
    python bench/bench_post_training.py --run . --commits HEAD~3 HEAD --models dcgan     # one cell: ~1 min each
    python bench/bench_post_training.py --run /path/to/demo --commits HEAD HEAD:preload  # the same code under
                                                                                        # `fewgan preload --`

`--run`: a project directory where the demo (or any profile) finished training: its data/ and runs/*/*/s*/train
are copied into a fresh clone of this repository at each commit (under --work, default cache/post_training/),
nothing else. Each commit's own params/active.yaml is regenerated for `--profile`. `COMMIT:preload` runs each
cell's four stages as jobs of one `fewgan preload -- sh -c ...` (one server per cell, its import time counted in
the `cells` column, the wall time of the whole cell; stage.json starts after the process is up). Run it on a
quiet machine: two torch jobs side by side are 3-5x slower each.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGES = ("score", "select", "invert", "evaluate")
OUTPUTS = {"score": "scores.json", "select": "best.json", "invert": "inversion.json", "evaluate": "metrics.json"}
#: keys that record time, place or provenance, not results
SKIP = ("seconds", "wall", "time", "started", "finished", "cpu_s", "peak", "rss", "provenance", "path", "sha256",
        "_s", "created")


def leaves(x, pre: str = ""):
    """(dotted key, float) of every number in a JSON value."""
    if isinstance(x, dict):
        for k, v in x.items():
            yield from leaves(v, f"{pre}.{k}")
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from leaves(v, f"{pre}[{i}]")
    elif isinstance(x, (int, float)) and not isinstance(x, bool):
        yield pre, float(x)


def rel_diff(a: float, b: float) -> float:
    if a == b or (math.isnan(a) and math.isnan(b)):
        return 0.0
    if math.isnan(a) or math.isnan(b):
        return math.inf
    return abs(a - b) / max(abs(a), abs(b), 1e-12)


def largest_differences(a: dict, b: dict, top: int = 3) -> list[tuple[float, str, float, float]]:
    """The `top` largest relative differences between two JSON outputs, keys missing on one side as inf."""
    da = {k: v for k, v in leaves(a) if not any(s in k.lower() for s in SKIP)}
    db = {k: v for k, v in leaves(b) if not any(s in k.lower() for s in SKIP)}
    rows = [(rel_diff(da[k], db[k]), k, da[k], db[k]) for k in da.keys() & db.keys()]
    rows += [(math.inf, k, da.get(k, math.nan), db.get(k, math.nan)) for k in da.keys() ^ db.keys()]
    return sorted(rows, key=lambda r: -r[0])[:top]


def cells(run: Path, models: list[str] | None) -> list[tuple[str, str, str]]:
    """(dataset, model, seed dir) of every trained cell of a finished run."""
    out = []
    for train in sorted(run.glob("runs/*/*/s*/train")):
        dataset, model, seed = train.parts[-4:-1]
        if (train / "snapshots").is_dir() and (models is None or model in models):
            out.append((dataset, model, seed))
    if not out:
        raise SystemExit(f"{run}: no trained cell under runs/<dataset>/<model>/s<seed>/train/snapshots")
    return out


def split_label(label: str) -> tuple[str, bool]:
    """'COMMIT' or 'COMMIT:preload' -> (commit, preload)."""
    commit, _, mode = label.partition(":")
    if mode not in ("", "preload"):
        raise SystemExit(f"--commits {label}: write COMMIT or COMMIT:preload")
    return commit, mode == "preload"


def prepare(label: str, run: Path, work: Path, profile: str, todo: list) -> Path:
    """A fresh clone at the label's commit with the run's data and train snapshots, its params regenerated for
    `profile`."""
    commit, _ = split_label(label)
    here = work / label.replace("/", "_").replace(":", "_")
    shutil.rmtree(here, ignore_errors=True)
    subprocess.run(["git", "clone", "-q", str(REPO), str(here)], check=True)
    subprocess.run(["git", "checkout", "-q", commit], cwd=here, check=True)
    shutil.copytree(run / "data", here / "data")
    for dataset, model, seed in todo:
        shutil.copytree(run / "runs" / dataset / model / seed / "train", here / "runs" / dataset / model / seed / "train")
    subprocess.run([sys.executable, "-m", "fewgan.cli", "params", "--profile", profile, "--quiet"], cwd=here,
                   env=_env(here), check=True)
    return here


def _env(here: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(here / "src"))
    env.pop("NPY_DISABLE_CPU_FEATURES", None)  # each commit decides numpy's kernels itself
    return env


def run_cell(here: Path, cell: tuple[str, str, str], threads: int, preload: bool = False) -> float:
    """score, select, invert, evaluate of one cell in the clone `here`, one after another (as the jobs of one
    `fewgan preload --` when `preload`); the wall seconds of it all."""
    import shlex
    import time

    dataset, model, seed = cell
    r = f"runs/{dataset}/{model}/{seed}"
    common = ["--dataset", dataset, "--model", model, "--seed", seed.lstrip("s")]
    data = ["--curated", f"data/curated/{dataset}", "--split", f"data/splits/{dataset}"]
    args = {"score": data + ["--train-dir", f"{r}/train", "--threads", str(threads)],
            "select": ["--scores", f"{r}/score", "--train-dir", f"{r}/train"],
            "invert": data + ["--train-dir", f"{r}/train", "--threads", str(threads)],
            "evaluate": data + ["--select", f"{r}/select", "--threads", str(threads)]}
    commands = [[sys.executable, "-m", "fewgan.cli", stage, *common, *args[stage], "--out", f"{r}/{stage}"]
                for stage in STAGES]
    t0 = time.perf_counter()
    if preload:
        script = " && ".join(" ".join(shlex.quote(c) for c in cmd) for cmd in commands)
        commands = [[sys.executable, "-m", "fewgan.cli", "preload", "--", "sh", "-c", script]]
    for cmd in commands:
        subprocess.run(cmd, cwd=here, env=_env(here), check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True, help="a project directory whose training finished")
    ap.add_argument("--commits", nargs="+", required=True, help="commits to compare, the first is the baseline")
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--models", nargs="*", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", type=Path, default=REPO / "cache" / "post_training")
    args = ap.parse_args()
    todo = cells(args.run.resolve(), args.models)
    dirs = {c: prepare(c, args.run.resolve(), args.work.resolve(), args.profile, todo) for c in args.commits}
    walls = dict.fromkeys(args.commits, 0.0)
    for cell in todo:  # cells outer, commits inner: a drift of the machine's speed hits every commit alike
        for c in args.commits:
            walls[c] += run_cell(dirs[c], cell, args.threads, split_label(c)[1])
    print(f"{len(todo)} cell(s) of {args.run}, one job at a time, {args.threads} threads; CPU: "
          + subprocess.run([sys.executable, "-c", "from fewgan.provenance import cpu_name; print(cpu_name())"],
                           capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO / "src"))
                           ).stdout.strip())
    print(f"{'commit':20s} " + " ".join(f"{s:>9s}" for s in STAGES) + f" {'score+invert+evaluate':>22s}"
          + f" {'cells (wall)':>13s}")
    for c, d in dirs.items():
        sums = {s: sum(json.loads((d / "runs" / ds / m / sd / s / "stage.json").read_text())["wall_s"]
                       for ds, m, sd in todo) for s in STAGES}
        print(f"{c[:20]:20s} " + " ".join(f"{sums[s]:8.1f}s" for s in STAGES)
              + f" {sums['score'] + sums['invert'] + sums['evaluate']:21.1f}s {walls[c]:12.1f}s")
    base = args.commits[0]
    for c in args.commits[1:]:
        print(f"largest relative differences, {c} vs {base}:")
        for ds, m, sd in todo:
            worst = []
            for s in STAGES:
                a = json.loads((dirs[base] / "runs" / ds / m / sd / s / OUTPUTS[s]).read_text())
                b = json.loads((dirs[c] / "runs" / ds / m / sd / s / OUTPUTS[s]).read_text())
                worst += [(r, f"{s}{k}", x, y) for r, k, x, y in largest_differences(a, b)]
            r, k, x, y = max(worst, key=lambda w: w[0])
            print(f"  {m}/{sd}: {r:.1e} at {k} ({x!r} vs {y!r})")


if __name__ == "__main__":
    main()
