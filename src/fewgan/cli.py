"""`fewgan <stage>`: the one door into every stage. Snakemake rules and dvc.yaml call only this.

The stage sub-commands are built from the stage table (`fewgan.stages.STAGES`): each takes `--dataset`
and/or `--model` by its scope, one option per input path (defaults: the table's layout), `--out`, and
`--threads` for the compute stages. Each reads `params/active.yaml` (see `fewgan params`) and writes
`stage.json` (wall time, CPU time, peak memory) into its output directory, last.

Names and paths from the command line are checked before anything runs: names must follow
fewgan.names.NAME_RULE and exist in the params; every path must stay inside the working directory, and
each of its parts must follow the name rule too.

One writer per output: a stage command holds an exclusive lock (`fcntl.flock`) on each folder it writes
(`--out`, and train's `--work`) while it runs, in `.fewgan/locks/` (never inside a declared output or a
data dependency). A second process for the same output - another engine, a second Snakemake/DVC run, a
manual call - is refused at once, naming the output and the holder's PID (exit code 4); it does not wait,
so a double-scheduled job is visible instead of silently overwriting results the first engine recorded.
A stage's previous `stage.json` is removed when it starts, so `stage.json` always means "this output
folder was finished by one complete run".

Exit codes: 0 done; 2 bad command line or params; 3 the stage stopped with an error that explains itself
(damaged input, full disk, ...); 4 the output is busy (another fewgan process is writing it).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import resource
import sys
import time
from pathlib import Path
from typing import Callable

from fewgan import preload  # light (sockets, json): how a command runs, never what it computes
from fewgan.stages import BY_NAME, STAGES, Stage, StageContext, fill

log = logging.getLogger("fewgan")
_ARGV: list[str] = []  # the command line of this invocation, recorded in stage.json


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


def run_stage(stage: str, out_dir: Path, fn: Callable[[], object], threads: int | None = None,
              allocator: dict | None = None) -> object:
    """Run one stage, then record its cost in `out_dir/stage.json` (written last: a stage.json means
    the stage finished)."""
    import datetime as dt

    from fewgan.io import atomic_write_json

    started = dt.datetime.now(dt.timezone.utc)
    t0, c0 = time.perf_counter(), _cpu_s()
    result = fn()
    wall, cpu = time.perf_counter() - t0, _cpu_s() - c0
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "stage.json", {
        "stage": stage, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
        "peak_rss_mb": round(_peak_rss_mb(), 1), "threads": threads, "cpu_allocator": allocator,
        "started": started.isoformat(timespec="seconds"),
        "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "argv": list(_ARGV),
        "preload_server": preload.SERVER_PID,  # a fork of `fewgan preload`'s interpreter (its pid), or null
    })
    log.info("%s finished in %.1f s (cpu %.1f s, peak %.0f MB)", stage, wall, cpu, _peak_rss_mb())
    return result


def _safe_path(value: str, option: str) -> Path:
    """A path from the command line (or a params key naming a folder fewgan writes), refused when it is
    absolute, leaves the working directory (`..`, symlinks) or has a part that breaks the name rule."""
    from fewgan.io import UnsafePathError, safe_join
    from fewgan.names import NAME_RULE, is_valid_name

    rule = f"every fewgan path is relative to the project directory {Path.cwd()} and stays inside it"
    try:
        safe_join(Path.cwd(), value)
    except UnsafePathError as exc:
        raise UnsafePathError(f"{option} {exc}; {rule}") from None
    parts = Path(value).parts
    bad = next((part for part in parts if not is_valid_name(part)), None)
    if not parts or bad is not None:
        why = f"path part {bad!r} is not allowed: each part must be {NAME_RULE}" if parts else "empty path"
        raise UnsafePathError(f"{option} {value!r}: {why}; {rule}")
    return Path(value)


def _check_output(path: Path, option: str, kind: str, reads: list[tuple[str, Path]] = ()) -> None:
    """An output path the command writes (`kind` 'dir': a folder it fills or replaces whole; 'file': one
    file), refused before anything runs when the write would destroy something else: an existing file
    where a folder goes (or a folder where a file goes), or a folder holding what the command reads."""
    from fewgan.io import UnsafePathError

    if kind == "dir" and path.exists() and not path.is_dir():
        raise UnsafePathError(f"{option} {path}: exists and is not a folder; the stage writes a folder there "
                              "and would replace it: give another path, or move the file away")
    if kind == "file" and path.is_dir():
        raise UnsafePathError(f"{option} {path}: is a folder; a file is written there: give a file path")
    if kind == "dir":
        where = path.resolve()
        for what, read in reads:
            r = read.resolve()
            if where == r or where in r.parents:
                raise UnsafePathError(f"{option} {path}: holds {what} {read}, which this command reads; writing "
                                      "the output there would replace it: give another path")


class OutputBusyError(RuntimeError):
    """Another fewgan process holds the lock of an output this command would write."""


#: where the per-output lock files live (relative to the project directory)
LOCK_DIR = Path(".fewgan") / "locks"


@contextlib.contextmanager
def _output_locks(outputs: list[tuple[str, Path]]):
    """Hold an exclusive, non-blocking flock per output folder for the duration of the block; raise
    OutputBusyError naming the output and the holder when one is taken. The kernel drops the lock when the
    holder exits, even on SIGKILL, so a killed run never leaves a stale lock behind."""
    import datetime as dt
    import fcntl

    held: list[int] = []
    try:
        for option, path in outputs:
            key = os.path.relpath(path.resolve(), Path.cwd().resolve()).replace(os.sep, "+")
            lock = LOCK_DIR / f"{key}.lock"
            lock.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
                os.close(fd)
                raise OutputBusyError(
                    f"{option} {path} is being written by another fewgan process "
                    f"({holder or 'PID unknown: it is just starting'}); two writers would interleave their "
                    f"files, so this one stops. Wait for that process to finish (or stop it), then re-run. "
                    f"Lock file: {lock}") from None
            held.append(fd)
            os.ftruncate(fd, 0)
            now = dt.datetime.now().isoformat(timespec="seconds")
            os.pwrite(fd, f"PID {os.getpid()}: fewgan {' '.join(_ARGV)} (since {now})\n".encode(), 0)
        yield
    finally:
        for fd in held:
            os.close(fd)  # releases the flock


def _params(args) -> dict:
    from fewgan.names import check_name
    from fewgan.params import ParamsError, load_active

    for key, kind in (("dataset", "dataset"), ("model", "model")):
        name = getattr(args, key, None)
        if name is not None:
            check_name(name, kind, f"--{key}")
    params = load_active(_safe_path(args.params, "--params"))
    for key, names in (("dataset", "datasets"), ("model", "models")):
        name = getattr(args, key, None)
        if name is not None and name not in params[names]:
            raise ParamsError(f"{args.params}: no {key} named {name!r} (known: {sorted(params[names])})")
    from fewgan.params import WRITE_PATH_KEYS, lookup

    for key, kind in (("datasets", "dataset"), ("models", "model")):  # the matrix `report` turns into paths
        for name in (params.get("experiment") or {}).get(key) or []:
            check_name(name, kind, f"{args.params}: experiment.{key}")
    for key in WRITE_PATH_KEYS:  # folders the stages write into, named by params (active.yaml may be hand-edited)
        value = lookup(params, key)
        if value is not None:
            _safe_path(str(value), f"{args.params}: {key}")
    return params


def _psi_list(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--psi-sweep {text!r}: comma-separated numbers, e.g. 1,0.8,0.6") from None
    if not values:
        raise argparse.ArgumentTypeError("--psi-sweep: give at least one psi")
    return values


def _seed(text: str) -> int:
    """--seed: a non-negative integer (it names the cell's folder, runs/D/M/s<seed>/)."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"--seed {text!r}: use a non-negative integer, e.g. 0")
    return int(text)


def cmd_stage(args) -> None:
    """Any stage of the table: resolve paths, set threads and the allocator, call the entry, stage.json."""
    stage: Stage = BY_NAME[args.command]
    params = _params(args)
    d, m, seed = getattr(args, "dataset", None), getattr(args, "model", None), getattr(args, "seed", None)
    opt = lambda name: "--" + name.replace("_", "-")  # noqa: E731
    paths = {name: _safe_path(getattr(args, name) or fill(tmpl, d, m, seed), opt(name))
             for name, tmpl in {**stage.args, **stage.scratch}.items()}
    out = _safe_path(args.out or fill(stage.out, d, m, seed), "--out")
    threads, allocator = None, None
    if stage.threads:
        import torch

        from fewgan.allocator import configure_allocator
        from fewgan.params import threads_for

        threads = threads_for(params, stage.name, args.threads)
        torch.set_num_threads(threads)
        allocator = configure_allocator(params["resources"]["cpu_allocator"])
    module, func = stage.entry.split(":")
    entry = getattr(importlib.import_module(module), func)
    ctx = StageContext(params=params, dataset=d, model=m, out=out, paths=paths, threads=threads, seed=seed)
    writes = [("--out", out)] + [(opt(n), paths[n]) for n in stage.scratch]
    reads = [("--params", Path(args.params))] + [(opt(n), paths[n]) for n in stage.args]
    for option, path in writes:
        _check_output(path, option, "dir", reads)
    main_rank = os.environ.get("RANK", "0") == "0"  # torchrun: rank 0 holds the locks for the group
    with _output_locks(writes if main_rank else []):
        if main_rank:  # a previous run's record must not vouch for what this run leaves half done
            with contextlib.suppress(FileNotFoundError, IsADirectoryError, NotADirectoryError):
                (out / "stage.json").unlink()
        run_stage(stage.name, out, lambda: entry(ctx), threads, allocator)
    record = os.environ.get("FEWGAN_RECORD_MODULES")
    if record:  # tests: which fewgan modules did this stage really load? (checked against code_deps)
        import json

        with open(record, "a", encoding="utf-8") as f:
            f.write(json.dumps({"stage": stage.name, "modules": sorted(n for n in sys.modules
                                                                      if n.split(".")[0] == "fewgan")}) + "\n")


def cmd_params(args) -> None:
    from fewgan.params import load_active, write_active

    if args.check:
        p = load_active(_safe_path(args.out, "--out"))
        print(f"{args.out}: up to date (profile {p['profile']})")
        return
    out = _safe_path(args.out, "--out")
    _check_output(out, "--out", "file")
    origin: dict[str, str] = {}
    params = write_active(args.profile, _safe_path(args.params_dir, "--params-dir"), out,
                          datasets=args.datasets, models=args.models, seeds=args.seeds, origin_out=origin)
    exp = params["experiment"]
    print(f"wrote {args.out}: profile {args.profile}, datasets {exp['datasets']}, models {exp['models']}, "
          f"seeds {exp['seeds']}")
    if not args.quiet:
        from fewgan.plan import describe

        print(describe(params, origin, _safe_path(args.bench_figures, "--bench-figures")))


def cmd_dag(args) -> None:
    from fewgan.dag import check_dvc_yaml, write_dvc_yaml

    if args.check:
        check_dvc_yaml(_safe_path(args.dvc_yaml, "--dvc-yaml"))
        print(f"{args.dvc_yaml}: matches the stage table")
    else:
        write_dvc_yaml(_safe_path(args.dvc_yaml, "--dvc-yaml"))
        print(f"wrote {args.dvc_yaml} from the stage table (src/fewgan/stages.py)")


def cmd_sample(args) -> None:
    from fewgan import sample

    run_dir = _safe_path(args.run, "run folder")
    out = _safe_path(args.out, "--out") if args.out else None
    if out is not None:
        _check_output(out, "--out", "dir")
    result = sample.run(run_dir, out, n=args.n, seed=args.seed, fmt=args.format, cols=args.cols, cls=args.cls,
                        psi=args.psi, interpolate=args.interpolate, steps=args.steps, gif=args.gif, mix=args.mix,
                        iteration=args.iteration, psi_sweep_values=args.psi_sweep, sweep_n=args.sweep_n,
                        device=args.device, command=_ARGV[1:])
    where = out or run_dir / "sample"
    for name, what in result["files"].items():
        print(f"{where / name}: {what}")
    print(f"{where / 'sample.json'}: provenance (snapshot {result['snapshot']['path']}, iteration "
          f"{result['snapshot']['iteration']}, seed {result['seed']}, psi {result['psi']})")


def cmd_bench(args) -> None:
    from fewgan import bench

    for option in ("params", "json", "compare"):
        value = getattr(args, option)
        if value is None or (option == "compare" and value == "."):  # ".": this project folder, only read
            continue
        _safe_path(value, f"--{option}")
    if args.json is not None:
        _check_output(Path(args.json), "--json", "file")
    bench.main(args)


# --------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="fewgan", description=__doc__.splitlines()[0])
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = ap.add_subparsers(dest="command", required=True, metavar="<command>")

    p = sub.add_parser("params", help="resolve params/*.yaml + a profile into params/active.yaml",
                       description="Resolve params/*.yaml with a profile (a file params/profiles/<name>.yaml) "
                                   "into params/active.yaml, the file both Snakemake and DVC read.")
    p.set_defaults(fn=cmd_params)
    p.add_argument("--profile", default=os.environ.get("FEWGAN_PROFILE", "demo"),
                   help="compute profile: smoke | demo | paper | celebahq128 | any params/profiles/<name>.yaml "
                        "(env FEWGAN_PROFILE)")
    p.add_argument("--datasets", nargs="+", default=None, metavar="NAME",
                   help="run the experiment on these datasets (params/datasets.yaml) instead of the profile's")
    p.add_argument("--models", nargs="+", default=None, metavar="NAME",
                   help="run the experiment with these models instead of the profile's")
    p.add_argument("--seeds", nargs="+", type=_seed, default=None, metavar="N",
                   help="training seeds (experiment.seeds), e.g. --seeds 0 1 2 for intervals over seeds")
    p.add_argument("--params-dir", default="params")
    p.add_argument("--out", default="params/active.yaml")
    p.add_argument("--check", action="store_true", help="only check that the active file is up to date")
    p.add_argument("--bench-figures", default="cache/bench.json",
                   help="`fewgan bench` figures for the plan's time estimate (default cache/bench.json)")
    p.add_argument("--quiet", action="store_true", help="do not print the plan (resolutions, jobs, estimated time)")

    for stage in STAGES:
        p = sub.add_parser(stage.name, help=stage.help, description=stage.help)
        p.set_defaults(fn=cmd_stage)
        p.add_argument("--params", default="params/active.yaml", help="resolved params file")
        if stage.scope in ("dataset", "cell"):
            p.add_argument("--dataset", required=True, help="dataset name from params/datasets.yaml")
        if stage.scope == "cell":
            p.add_argument("--model", required=True, help="model name from params/models/")
            p.add_argument("--seed", type=_seed, required=True,
                           help="the cell's training seed (experiment.seeds; params `seed` drives data and metrics)")
        for name, tmpl in {**stage.args, **stage.scratch}.items():
            p.add_argument("--" + name.replace("_", "-"), dest=name, default=None, help=f"default: {tmpl}")
        if stage.threads:
            p.add_argument("--threads", type=int, default=None, help="torch threads (default: params resources)")
        p.add_argument("--out", default=None, help=f"output directory (default: {stage.out})")

    p = sub.add_parser("dag", help="generate dvc.yaml from the stage table (or check it)")
    p.set_defaults(fn=cmd_dag)
    p.add_argument("--dvc-yaml", default="dvc.yaml")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="write dvc.yaml (the default)")
    mode.add_argument("--check", action="store_true", help="fail when dvc.yaml differs from what the table generates")

    p = sub.add_parser("sample", help="images from a trained run's generator (grid/PNGs, truncation, interpolation, "
                                      "style mixing), with provenance",
                       description="Images from the selected generator of a run (select/generator.pt) or one of its "
                                   "training snapshots, reproducibly (--seed); see fewgan.sample.")
    p.set_defaults(fn=cmd_sample)
    p.add_argument("run", help="the run folder, runs/<dataset>/<model>/s<seed>")
    p.add_argument("-n", type=int, default=16, help="number of samples (default 16; 0: none)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the latents and noise (default 0)")
    p.add_argument("--format", choices=("grid", "png", "both"), default="grid",
                   help="one grid (samples.png), one PNG per image (images/), or both")
    p.add_argument("--cols", type=int, default=None, help="images per grid row (default: square)")
    p.add_argument("--class", dest="cls", default=None, help="class name or index (class-conditional models)")
    p.add_argument("--psi", type=float, default=None,
                   help="truncation (models with the truncation capability; meaning recorded in sample.json)")
    p.add_argument("--interpolate", type=int, default=0, metavar="K", help="K rows of latent interpolation")
    p.add_argument("--steps", type=int, default=8, help="images per interpolation row (default 8)")
    p.add_argument("--gif", action="store_true", help="also an animated GIF of the first interpolation")
    p.add_argument("--mix", type=int, default=0, metavar="K",
                   help="style-mixing grid of K content x K style latents (FastGAN: skip-layer excitation sources)")
    p.add_argument("--iteration", type=int, default=None,
                   help="sample this training snapshot instead of the selected generator")
    p.add_argument("--psi-sweep", type=_psi_list, default=None, metavar="PSI,PSI,...",
                   help="fidelity/diversity over truncation: SWD vs the training images and MS-SSIM at each psi "
                        "(truncation.png, truncation.csv)")
    p.add_argument("--sweep-n", type=int, default=100, help="fakes per psi of --psi-sweep (default 100)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda[:i]")
    p.add_argument("--out", default=None, help="output folder (default: <run>/sample)")

    p = sub.add_parser("preload", help="run COMMAND (snakemake, dvc repro) with torch & co. imported once for all "
                                       "its fewgan stages (fewgan.preload)")
    p.set_defaults(fn=cmd_preload)
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ARGS..., e.g. -- snakemake --cores 8 all")

    p = sub.add_parser("bench", help="measure stage costs on this machine and estimate profile run times")
    p.set_defaults(fn=cmd_bench)
    p.add_argument("--quick", action="store_true", help="fewer repeats and sizes (a few minutes)")
    p.add_argument("--resolutions", default="64,128,256")
    p.add_argument("--models", default=None, help="comma-separated (default: all registered)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--params", default="params/active.yaml")
    p.add_argument("--json", default="cache/bench.json",
                   help="write the figures as JSON here (default cache/bench.json: `fewgan params` reads it for its "
                        "time estimate)")
    p.add_argument("--compare", default=None, metavar="DIR", nargs="?", const=".",
                   help="compare the active profile's estimate with the stage.json costs of a finished run in DIR "
                        "(a project folder; without DIR: this one)")
    from fewgan.data.register import register_cli as dataset_cli
    from fewgan.weights import register_cli as weights_cli

    dataset_cli(sub)  # `fewgan dataset add NAME PATH ...`
    weights_cli(sub)  # `fewgan weights list | check | install FILE...`
    return ap


def cmd_preload(args) -> None:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        print("fewgan preload: error: give the command to run after '--', e.g. "
              "`fewgan preload -- snakemake --cores 8 all`", file=sys.stderr)
        raise SystemExit(2)
    raise SystemExit(preload.run(command))


def main(argv: list[str] | None = None) -> int:
    global _ARGV
    from fewgan.numpy_simd import configure

    numpy_note = configure()  # first, before anything imports numpy: its AVX2 sort on AMD Zen 4 (fewgan.numpy_simd)
    _ARGV = list(sys.argv[1:] if argv is None else argv)
    if _ARGV and _ARGV[0] in BY_NAME and os.environ.get("FEWGAN_PRELOAD_SOCKET") and \
            not os.environ.get("FEWGAN_RECORD_MODULES"):  # (that test records what a fresh process imports)
        code = preload.delegate(_ARGV)  # `fewgan preload -- COMMAND`: run in a fork of its preloaded interpreter
        if code is not None:
            return code
    args = build_parser().parse_args(_ARGV)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if numpy_note:
        log.debug("numpy: %s", numpy_note)  # also in every output's provenance (host.numpy_simd)
    from fewgan.io import DISK_FULL, UnsafePathError
    from fewgan.names import InvalidNameError
    from fewgan.params import ParamsError

    try:
        if args.command == "dataset":  # `fewgan dataset add` appends to <params-dir>/datasets.yaml
            _safe_path(args.params_dir, "--params-dir")
        args.fn(args)
    except (ParamsError, UnsafePathError, InvalidNameError, FileNotFoundError) as exc:
        print(f"fewgan {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OutputBusyError as exc:
        print(f"fewgan {args.command}: busy: {exc}", file=sys.stderr)
        return 4
    except OSError as exc:
        if exc.errno in DISK_FULL:  # the message names the file; nothing half-written was left
            print(f"fewgan {args.command}: error: {exc}", file=sys.stderr)
            return 3
        raise
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
                    "WeightsChecksumError", "DagMismatchError", "DatasetAddError", "CheckpointError",
                    "ScoresError", "SampleError"}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
