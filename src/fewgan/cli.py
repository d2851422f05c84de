"""`fewgan <stage>`: the one door into every stage. Snakemake rules and dvc.yaml call only this.

Each stage command reads `params/active.yaml` (see `fewgan params`), takes its input and output
paths as arguments (defaults follow docs/DESIGN.md), and writes `stage.json` (wall time, CPU time,
peak memory) into its output directory.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import sys
import time
from pathlib import Path
from typing import Callable

log = logging.getLogger("fewgan")
_ARGV: list[str] = []  # the command line of this invocation, recorded in stage.json
_ALLOCATOR: dict | None = None  # what fewgan.allocator did in this process, recorded in stage.json


# --------------------------------------------------------------------------------------------------
# default paths (docs/DESIGN.md)
# --------------------------------------------------------------------------------------------------
def curated_dir(d: str) -> Path:
    return Path("data/curated") / d


def split_dir(d: str) -> Path:
    return Path("data/splits") / d


def run_dir(d: str, m: str, stage: str) -> Path:
    return Path("runs") / d / m / stage


def work_dir(d: str, m: str) -> Path:
    return Path("work") / d / m


# --------------------------------------------------------------------------------------------------
# stage bookkeeping
# --------------------------------------------------------------------------------------------------
def _peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux; children cover torchrun / worker processes
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024.0


def _cpu_s() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def run_stage(stage: str, out_dir: Path, fn: Callable[[], object], threads: int | None = None) -> object:
    """Run one stage, then record its cost in `out_dir/stage.json`."""
    import datetime as dt

    from fewgan.io import atomic_write_json

    started = dt.datetime.now(dt.timezone.utc)
    t0, c0 = time.perf_counter(), _cpu_s()
    result = fn()
    wall, cpu = time.perf_counter() - t0, _cpu_s() - c0
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "stage.json", {
        "stage": stage, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
        "peak_rss_mb": round(_peak_rss_mb(), 1), "threads": threads, "cpu_allocator": _ALLOCATOR,
        "started": started.isoformat(timespec="seconds"),
        "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "argv": list(_ARGV),
    })
    log.info("%s finished in %.1f s (cpu %.1f s, peak %.0f MB)", stage, wall, cpu, _peak_rss_mb())
    return result


def _params(args) -> dict:
    from fewgan.params import load_active

    params = load_active(Path(args.params))
    for key, names in (("dataset", "datasets"), ("model", "models")):
        name = getattr(args, key, None)
        if name is not None and name not in params[names]:
            from fewgan.params import ParamsError

            raise ParamsError(f"{args.params}: no {key} named {name!r} (known: {sorted(params[names])})")
    return params


def _threads(args, params: dict, stage: str) -> int:
    """Torch threads for a compute stage; also applies resources.cpu_allocator (fewgan.allocator)."""
    global _ALLOCATOR
    import torch

    from fewgan.allocator import configure_allocator
    from fewgan.params import threads_for

    n = threads_for(params, stage, args.threads)
    torch.set_num_threads(n)
    _ALLOCATOR = configure_allocator(params.get("resources", {}).get("cpu_allocator", "retain"))
    return n


# --------------------------------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------------------------------
def cmd_params(args) -> None:
    from fewgan.params import load_active, write_active

    if args.check:
        p = load_active(Path(args.out))
        print(f"{args.out}: up to date (profile {p['profile']})")
        return
    params = write_active(args.profile, Path(args.params_dir), Path(args.out))
    exp = params["experiment"]
    print(f"wrote {args.out}: profile {args.profile}, datasets {exp['datasets']}, models {exp['models']}")


def cmd_curate(args) -> None:
    from fewgan.data import curate

    params = _params(args)
    out = Path(args.out or curated_dir(args.dataset))
    run_stage("curate", out, lambda: curate.run(params, args.dataset, out))


def cmd_split(args) -> None:
    from fewgan.data import split

    params = _params(args)
    out = Path(args.out or split_dir(args.dataset))
    curated = Path(args.curated or curated_dir(args.dataset))
    run_stage("split", out, lambda: split.run(params, args.dataset, curated, out))


def _dm_paths(args) -> dict[str, Path]:
    d, m = args.dataset, args.model
    return {
        "curated": Path(args.curated or curated_dir(d)),
        "split": Path(args.split or split_dir(d)),
        "train": Path(getattr(args, "train_dir", None) or run_dir(d, m, "train")),
    }


def cmd_train(args) -> None:
    from fewgan.train import loop

    params = _params(args)
    p = _dm_paths(args)
    out = Path(args.out or run_dir(args.dataset, args.model, "train"))
    work = Path(args.work or work_dir(args.dataset, args.model))
    n = _threads(args, params, "train")
    run_stage("train", out, lambda: loop.run(params, args.dataset, args.model, p["curated"], p["split"],
                                             out, work, n), n)


def cmd_score(args) -> None:
    from fewgan.metrics import score

    params = _params(args)
    p = _dm_paths(args)
    out = Path(args.out or run_dir(args.dataset, args.model, "score"))
    n = _threads(args, params, "score")
    run_stage("score", out, lambda: score.run(params, args.dataset, args.model, p["train"], p["curated"],
                                              p["split"], out, n), n)


def cmd_select(args) -> None:
    from fewgan.metrics import score

    params = _params(args)
    p = _dm_paths(args)
    scores = Path(args.scores or run_dir(args.dataset, args.model, "score"))
    out = Path(args.out or run_dir(args.dataset, args.model, "select"))
    run_stage("select", out, lambda: score.select(params, scores, p["train"], out))


def cmd_invert(args) -> None:
    from fewgan import invert

    params = _params(args)
    p = _dm_paths(args)
    out = Path(args.out or run_dir(args.dataset, args.model, "invert"))
    n = _threads(args, params, "invert")
    run_stage("invert", out, lambda: invert.run(params, args.dataset, args.model, p["train"], p["curated"],
                                                p["split"], out, n), n)


def cmd_evaluate(args) -> None:
    from fewgan.metrics import evaluate

    params = _params(args)
    p = _dm_paths(args)
    selected = Path(args.select or run_dir(args.dataset, args.model, "select"))
    out = Path(args.out or run_dir(args.dataset, args.model, "evaluate"))
    n = _threads(args, params, "evaluate")
    run_stage("evaluate", out, lambda: evaluate.run(params, args.dataset, args.model, selected, p["curated"],
                                                    p["split"], out, n), n)


def cmd_report(args) -> None:
    from fewgan import report

    params = _params(args)
    out = Path(args.out)
    report.run(params, Path(args.runs), Path(args.data), out)
    # the report is the last stage: its own cost is shown by the next report, and recorded here
    run_stage("report", out, lambda: None)


def cmd_bench(args) -> None:
    from fewgan import bench

    bench.main(args)


# --------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="fewgan", description=__doc__.splitlines()[0])
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = ap.add_subparsers(dest="command", required=True, metavar="<stage>")

    def add(name: str, fn, help_: str, dataset=False, model=False, threads=False):
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(fn=fn)
        p.add_argument("--params", default="params/active.yaml", help="resolved params file")
        if dataset:
            p.add_argument("--dataset", required=True, help="dataset name from params/datasets.yaml")
        if model:
            p.add_argument("--model", required=True, help="model name from params/models/")
        if threads:
            p.add_argument("--threads", type=int, default=None, help="torch threads (default: params resources)")
        p.add_argument("--out", default=None, help="output directory (default: docs/DESIGN.md layout)")
        return p

    from fewgan.params import PROFILES

    p = sub.add_parser("params", help="resolve params/*.yaml + a profile into params/active.yaml",
                       description="Resolve params/*.yaml with a profile (smoke | demo | paper | celebahq128) into "
                                   "params/active.yaml, the file both Snakemake and DVC read.")
    p.set_defaults(fn=cmd_params)
    p.add_argument("--profile", default=os.environ.get("FEWGAN_PROFILE", "demo"),
                   choices=list(PROFILES), help="compute profile (env FEWGAN_PROFILE)")
    p.add_argument("--params-dir", default="params")
    p.add_argument("--out", default="params/active.yaml")
    p.add_argument("--check", action="store_true", help="only check that the active file is up to date")

    add("curate", cmd_curate, "curate a dataset: decode, align/crop, deduplicate, manifest", dataset=True)
    p = add("split", cmd_split, "few-shot subset and deterministic 9:1 train/test split", dataset=True)
    p.add_argument("--curated", default=None)
    for name, fn, help_ in (
        ("train", cmd_train, "train one model on one dataset (resumable, snapshots)"),
        ("score", cmd_score, "FID/KID of every snapshot"),
        ("select", cmd_select, "pick the snapshot with the lowest FID"),
        ("invert", cmd_invert, "invert held-out test images at every snapshot (FastGAN Table 5)"),
        ("evaluate", cmd_evaluate, "FID, KID, SWD, MS-SSIM of the selected generator"),
    ):
        p = add(name, fn, help_, dataset=True, model=True, threads=name != "select")
        p.add_argument("--curated", default=None)
        p.add_argument("--split", default=None)
        p.add_argument("--train-dir", default=None)
        if name == "train":
            p.add_argument("--work", default=None, help="resume scratch dir (default work/<dataset>/<model>)")
        if name == "select":
            p.add_argument("--scores", default=None)
        if name == "evaluate":
            p.add_argument("--select", default=None)
    p = add("report", cmd_report, "build reports/benchmark from all runs")
    p.set_defaults(out="reports/benchmark")
    p.add_argument("--runs", default="runs")
    p.add_argument("--data", default="data")

    p = sub.add_parser("bench", help="measure stage costs on this machine and estimate profile run times")
    p.set_defaults(fn=cmd_bench)
    p.add_argument("--quick", action="store_true", help="fewer repeats and sizes (a few minutes)")
    p.add_argument("--resolutions", default="64,128,256")
    p.add_argument("--models", default=None, help="comma-separated (default: all registered)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--params", default="params/active.yaml")
    p.add_argument("--json", default=None, help="also write the figures as JSON here")
    p.add_argument("--compare", default=None, metavar="DIR",
                   help="compare the active profile's estimate with the stage.json costs of a finished run in DIR")
    from fewgan.weights import register_cli
    register_cli(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    global _ARGV
    _ARGV = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(_ARGV)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    from fewgan.io import UnsafePathError
    from fewgan.params import ParamsError

    try:
        args.fn(args)
    except (ParamsError, UnsafePathError, FileNotFoundError) as exc:
        print(f"fewgan {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # stage errors that explain themselves (diverged, interrupted, bad data)
        if type(exc).__name__ in _SELF_EXPLAINING:
            print(f"fewgan {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 3
        raise
    return 0


#: exceptions whose message already says what happened and what to do: no traceback for them
_SELF_EXPLAINING = {"TrainingDivergedError", "TrainingInterrupted", "DatasetConfigError", "CurateError",
                    "ImageDecodeError", "LandmarkError", "DetectorUnavailable", "SplitIntegrityError",
                    "SourceError", "SplitError", "ReportInputError", "WeightsUnavailableError",
                    "WeightsChecksumError"}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
