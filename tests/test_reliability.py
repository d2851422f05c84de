"""Fault injection on the real stage code: hostile names and paths, hard kills, damaged files, malicious
checkpoints, two runs at once, a full disk, the bad inputs of the earlier issue, and hostile inputs at the
door (issue 26: PNG bombs, symlink loops, odd file names, hostile YAML, bad values and output paths; these
run in a bare project of their own, `door`, so `-k door` does not build the smoke project).

Every case records what it observed (`record`), and the last test writes docs/RELIABILITY.md from those
records, so the table there is this module's actual outcome, never hand-written. It is written only when
every test of the module ran (`pytest tests/test_reliability.py`), so a `-k` selection cannot truncate it.

Budget: about 4 minutes on 2 busy CPU cores. One tiny smoke project (dataset demo_faces: 14 synthetic
images at 32 px; model dcgan; 24 iterations) is built once per module; torch runs 1 thread (2 threads on
2 shared cores is ~100x slower here); a process is started only where one must die or two must race; the
rest calls `fewgan.cli.main` in-process. All randomness (kill points, damaged bytes) comes from SEED.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import errno
import io
import json
import logging
import os
import pickle
import random
import re
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

import fewgan.cli as cli_mod
import fewgan.io as fio
from fewgan.cli import main
from fewgan.stages import BY_NAME, STAGES, fill

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
DOC = REPO / "docs" / "RELIABILITY.md"
SEED = 20240611
D, M = "demo_faces", "dcgan"
TS = 0  # the cell's training seed (experiment.seeds: [0], the default)
CELL = f"runs/{D}/{M}/s{TS}"
WORK = f"work/{D}/{M}/s{TS}"
ITERATIONS = 24
PROFILE = f"""\
# written by tests/test_reliability.py: the smoke pipeline, smaller (1 dataset, 1 model, 1 thread)
experiment: {{datasets: [{D}], models: [{M}]}}
datasets:
  {D}: {{source: {{count: 14}}, resolution: 32, shots: 12}}
models:
  {M}: {{z_dim: 16, ngf: 8, ndf: 8, ema_decay: 0.9}}
train: {{iterations: {ITERATIONS}, batch_size: 4, snapshot_every: 8, sample_every: 8, log_every: 4, grid_size: 2,
         interpolation_steps: 2}}
evaluation:
  fid: {{n_fake: 8, batch_size: 8}}
  kid: {{subsets: 2}}
  swd: {{patches_per_image: 4, directions: 8, repeats: 1}}
  msssim: {{pairs: 4}}
  score: {{n_fake: 4}}
  weights: {{allow_untrained_fallback: true}}
invert: {{steps: 2, max_images: 1, log_every: 1, snapshots: "last_k: 2", grid_images: 2}}
resources: {{threads: {{train: 1, score: 1, invert: 1, evaluate: 1}}}}
"""
#: the stages in pipeline order, with their name options
PIPELINE = [("curate", D, None), ("split", D, None), ("train", D, M), ("score", D, M), ("select", D, M),
            ("invert", D, M), ("evaluate", D, M), ("report", None, None)]
_TMP_NAME = re.compile(r"\.tmp-\d+-|\.old-\d+-")
#: files an engine adds inside a declared folder output (Snakemake marks directory outputs with this)
ENGINE_FILES = {".snakemake_timestamp"}

# ------------------------------------------------------------------------------------------------------
# the outcome collector (-> docs/RELIABILITY.md)
# ------------------------------------------------------------------------------------------------------
ROWS: list[dict] = []
BAD_INPUTS: list[dict] = []
HOSTILE: list[dict] = []
EXECUTED: set[str] = set()
FAILED: set[str] = set()  # a failed case leaves its rows out: the doc is not written from a partial run
STARTED = time.monotonic()
CLEAR, RECOMPUTE, SAME, BITEXACT, REFUSED = ("clear error", "clean recompute", "same result (damage in unused "
                                             "bytes)", "bit-exact resume", "refused")


def record(area: str, case: str, outcome: str, detail: str = "", n: int = 1) -> None:
    ROWS.append({"area": area, "case": case, "outcome": outcome, "detail": detail, "n": n})


@pytest.fixture(autouse=True)
def _one_thread(request):
    """torch on 1 thread (after conftest's 2); remember which tests ran (for the doc)."""
    torch.set_num_threads(1)
    EXECUTED.add(request.node.originalname)
    yield
    report = getattr(request.node, "rep_call", None)  # tests/conftest.py keeps each phase's report on the item
    if report is not None and report.failed:
        FAILED.add(request.node.nodeid)


# ------------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------------
def cli(*argv: str) -> tuple[int, str]:
    """`fewgan ARGV` in-process: (exit code, stderr)."""
    buf = io.StringIO()
    with contextlib.redirect_stderr(buf):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse, `fewgan dataset add`
            rc = exc.code if isinstance(exc.code, int) else 1
    return rc, buf.getvalue()


def stage_argv(stage: str, *extra: str) -> list[str]:
    s = BY_NAME[stage]
    argv = [stage] + (["--dataset", D] if s.scope in ("dataset", "cell") else [])
    return argv + (["--model", M, "--seed", str(TS)] if s.scope == "cell" else []) + list(extra)


def sub_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(k, None)
    return env


_SCRIPT = Path(sys.executable).parent / "fewgan"
FEWGAN = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "fewgan.cli"]


class Proc:
    """A process of ours (its own session, so SIGKILL reaches it and nothing else), output collected."""

    def __init__(self, argv: list[str], cwd: Path):
        self.t0 = time.monotonic()
        self.p = subprocess.Popen(argv, cwd=cwd, env=sub_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, start_new_session=True)
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.p.stdout:
            self.lines.append((time.monotonic() - self.t0, line))

    def seen(self, marker: str) -> float | None:
        return next((t for t, ln in list(self.lines) if marker in ln), None)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.p.pid, signal.SIGKILL)

    def wait(self, timeout: float = 300) -> int:
        rc = self.p.wait(timeout)
        self._reader.join(10)
        return rc

    @property
    def output(self) -> str:
        return "".join(ln for _, ln in self.lines)


def _stamp(path: Path):
    try:
        st = path.stat()
        return (st.st_ino, st.st_mtime_ns, st.st_size)
    except FileNotFoundError:
        return None


def run_and_kill(argv: list[str], cwd: Path, *, after_s: float | None = None, on_file: Path | None = None,
                 on_log: tuple[str, float] | None = None, limit_s: float = 240) -> dict:
    """Start `fewgan ARGV`; SIGKILL it when the trigger fires (seconds after start, when `on_file` is
    replaced, or `delay` seconds after a log line containing `marker`). Returns what happened."""
    proc = Proc(FEWGAN + argv, cwd)
    base = _stamp(on_file) if on_file is not None else None
    seen = None
    while True:
        rc = proc.p.poll()
        now = time.monotonic() - proc.t0
        if on_log is not None and seen is None:
            seen = proc.seen(on_log[0])
        if rc is not None:
            proc.wait()
            return {"killed": False, "rc": rc, "at": now, "output": proc.output, "marker_at": seen}
        fire = (after_s is not None and now >= after_s) or (on_file is not None and _stamp(on_file) != base)
        fire = fire or (seen is not None and now >= seen + on_log[1])
        if fire or now > limit_s:
            proc.kill()
            proc.wait()
            return {"killed": True, "rc": None, "at": now, "output": proc.output, "marker_at": seen}
        time.sleep(0.005)


def valid_file(p: Path) -> str | None:
    """None when `p` is a complete file of its kind, else why not."""
    if _TMP_NAME.search(p.name):
        return "temporary file of an interrupted write"
    try:
        if p.suffix == ".json":
            json.loads(p.read_text(encoding="utf-8"))
        elif p.suffix == ".jsonl":
            for line in p.read_text(encoding="utf-8").splitlines():
                json.loads(line)
        elif p.suffix == ".csv":
            rows = list(csv.reader(io.StringIO(p.read_text(encoding="utf-8"))))
            if not rows or any(len(r) != len(rows[0]) for r in rows):
                return "ragged or empty CSV"
        elif p.suffix == ".png":
            from PIL import Image

            with Image.open(p) as im:
                im.load()
        elif p.suffix in (".pt", ".pth"):
            fio.torch_load(p)
        elif p.suffix == ".html":
            if not p.read_text(encoding="utf-8").rstrip().endswith("</html>"):
                return "HTML document not closed"
        else:
            p.read_bytes()
    except Exception as exc:  # noqa: BLE001 - any failure to parse is the finding
        return f"{type(exc).__name__}: {exc}"
    return None


def declared(stage: str, out: Path | None = None) -> list[tuple[str, Path]]:
    """(kind, path) of the stage's declared outputs, under `out` when the run used another --out."""
    s = BY_NAME[stage]
    d, m, t = {"dataset": (D, None, None), "cell": (D, M, TS), "all": (None, None, None)}[s.scope]
    default = Path(fill(s.out, d, m, t))
    res = []
    for o in s.outs:
        if o.dvc_only:  # the live curves under work/: scratch kept across resumes, not an atomic output
            continue
        p = Path(fill(o.path, d, m, t))
        if out is not None:
            p = out / p.relative_to(default) if p != default else out
        res.append((o.kind, p))
    return res


def check_outputs(stage: str, out: Path | None = None, *, finished: bool = False) -> str:
    """Assert that every declared output is absent or complete and that stage.json was written last (when
    it is there, every output is there, valid, and was written by the run it records). Returns a label."""
    s = BY_NAME[stage]
    out = out or Path(fill(s.out, *{"dataset": (D, None, None), "cell": (D, M, TS), "all": (None, None, None)}[s.scope]))
    files, absent = [], []
    for kind, p in declared(stage, out):
        if kind == "dir":
            if p.is_dir():
                files += [f for f in p.rglob("*") if f.is_file() and f.name not in ENGINE_FILES]
            else:
                absent.append(p)
        elif p.exists():
            files.append(p)
        else:
            absent.append(p)
    sj = out / "stage.json"
    problems = {str(f): why for f in files if (why := valid_file(f))}
    if sj.is_file():
        # stage.json vouches for the folder: nothing missing, nothing partial, nothing older than its run
        started = datetime.fromisoformat(json.loads(sj.read_text())["started"]).timestamp() - 1.0
        done = sj.stat().st_mtime + 0.01
        assert not absent, f"{stage}: stage.json present but {absent} missing"
        assert not problems, f"{stage}: stage.json present but {problems}"
        for f in files:
            st = f.stat()
            if st.st_nlink == 1 and not started <= st.st_mtime <= done:  # hard links: files from work/
                pytest.fail(f"{stage}: {f} was not written by the run stage.json records "
                            f"(mtime {st.st_mtime:.3f} outside [{started:.3f}, {done:.3f}])")
        return "finished (stage.json last)"
    # no stage.json: the folder is marked unfinished; still, no file at a final path may be partial
    partial = {f: w for f, w in problems.items() if not _TMP_NAME.search(Path(f).name)}
    assert not partial, f"{stage}: partial output at a final path: {partial}"
    assert not finished, f"{stage}: finished but no stage.json in {out}"
    return "unfinished: stage.json absent, files complete" + (" (+temp files, removed by the re-run)"
                                                             if problems else "")


def leftovers(root: Path) -> list[Path]:
    """Temporary files/folders of interrupted writes anywhere in the project."""
    return [p for p in root.rglob("*") if _TMP_NAME.search(p.name)]


def tree(root: Path, skip: Path | None = None) -> set[str]:
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        if skip is not None and Path(dirpath) == skip.parent:
            dirnames[:] = [d for d in dirnames if Path(dirpath) / d != skip]
        out |= {os.path.join(dirpath, n) for n in dirnames + filenames}
    return out


def state_tensors(path: Path, key: str) -> dict:
    return fio.torch_load(path)[key]


def same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) if torch.is_tensor(a[k]) else a[k] == b[k]
                                        for k in a)


# ------------------------------------------------------------------------------------------------------
# the project
# ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A finished tiny smoke pipeline (in-process), the working directory for the whole module."""
    root = tmp_path_factory.mktemp("reliability")
    proj = root / "proj"
    shutil.copytree(REPO / "params", proj / "params")
    (proj / "params" / "profiles" / "reliability.yaml").write_text(PROFILE)
    mp = pytest.MonkeyPatch()
    mp.chdir(proj)
    seconds: dict[str, float] = {}
    try:
        torch.set_num_threads(1)
        assert cli("params", "--profile", "reliability")[0] == 0
        for stage, _, _ in PIPELINE:
            t0 = time.perf_counter()
            rc, err = cli(*stage_argv(stage))
            seconds[stage] = time.perf_counter() - t0
            assert rc == 0, (stage, err)
        yield SimpleNamespace(root=root, dir=proj, seconds=seconds, startup=[])
    finally:
        mp.undo()


def _restore(path: Path, data: bytes) -> None:
    path.unlink(missing_ok=True)
    path.write_bytes(data)


def damaged(data: bytes, how: str, rng: random.Random, *, region: tuple[int, int] | None = None) -> bytes:
    """`data` truncated or corrupted the seeded way `how` says."""
    if how == "truncate-empty":
        return b""
    if how == "truncate-half":
        return data[: len(data) // 2]
    if how == "truncate-random":
        return data[: rng.randrange(1, len(data))]
    if how == "truncate-last-byte":
        return data[:-1]
    if how.startswith("truncate-lines"):  # keep the header and half the rows: still a well-formed file
        lines = data.splitlines(keepends=True)
        return b"".join(lines[: max(2, len(lines) // 2)])
    buf = bytearray(data)
    lo, hi = region or (0, len(buf))
    n = {"corrupt-byte": 1, "corrupt-region": 1, "corrupt-16": 16}[how]
    for _ in range(n):
        i = rng.randrange(lo, hi)
        buf[i] ^= rng.randrange(1, 256)
    return bytes(buf)


def tensor_region(path: Path) -> tuple[int, int]:
    """Byte range of the largest member of a torch zip file (tensor data: torch checks no CRC there)."""
    with zipfile.ZipFile(path) as zf:
        info = max(zf.infolist(), key=lambda i: i.file_size)
    with open(path, "rb") as f:  # name and extra-field lengths of the local header (torch pads the latter)
        f.seek(info.header_offset + 26)
        n, x = int.from_bytes(f.read(2), "little"), int.from_bytes(f.read(2), "little")
    start = info.header_offset + 30 + n + x
    return start, start + info.file_size


# ======================================================================================================
# 1. names and paths
# ======================================================================================================
BAD_VALUES = ["../x", "/tmp/x", "a/../../x", "<script>"]


def _bad(value: str, token: str) -> str:
    """The escaping value with a unique last part (so 'nothing appeared outside' is checkable)."""
    return {"../x": f"../x-{token}", "/tmp/x": f"/tmp/x-{token}", "a/../../x": f"a/../../x-{token}"}.get(value, value)


def test_every_stage_option_refuses_escaping_names_and_paths(project):
    token = uuid.uuid4().hex[:8]
    before = tree(project.root, skip=project.dir)
    inside_before = tree(project.dir)
    tried = collections.Counter()
    for s in STAGES:
        options = (["--dataset"] if s.scope in ("dataset", "cell") else []) + (["--model"] if s.scope == "cell" else [])
        options += ["--out", "--params"] + ["--" + n.replace("_", "-") for n in {**s.args, **s.scratch}]
        for option in options:
            for value in BAD_VALUES:
                argv = stage_argv(s.name)
                bad = _bad(value, token)
                if option in argv:
                    argv[argv.index(option) + 1] = bad
                else:
                    argv += [option, bad]
                rc, err = cli(*argv)
                name_option = option in ("--dataset", "--model")
                rule = "a name must be" if name_option else "every fewgan path is relative to the project directory"
                assert rc == 2 and option in err and rule in err, (argv, rc, err)
                tried[s.name] += 1
    assert not Path(f"/tmp/x-{token}").exists()
    assert tree(project.root, skip=project.dir) == before, "something was written beside the project"
    assert tree(project.dir) - inside_before <= {str(project.dir / ".fewgan"), str(project.dir / ".fewgan/locks")}
    # a symlink inside the project that points outside is an escape too
    outside = project.root / f"outside-{token}"
    outside.mkdir()
    (project.dir / f"link-{token}").symlink_to(outside)
    try:
        rc, err = cli(*stage_argv("split", "--out", f"link-{token}/splits"))
        assert rc == 2 and "--out" in err and "escapes" in err, err
        assert not any(outside.iterdir())
    finally:
        (project.dir / f"link-{token}").unlink()
        outside.rmdir()
    for s in STAGES:
        record("names/paths", f"`fewgan {s.name}`: every name and path option x {{`../x`, `/tmp/x`, `a/../../x`, "
               "`<script>`}", "clear error (exit 2, names the option and the rule); nothing written outside",
               n=tried[s.name])
    record("names/paths", "`--out` through a symlink that leaves the project", "clear error (exit 2); nothing written")


def test_every_place_a_name_becomes_a_path_refuses_bad_names(project, tmp_path):
    from fewgan.data.schema import resolve_entry
    from fewgan.names import InvalidNameError
    from fewgan.params import dataset_entry
    from fewgan.report.stage import slug

    bad_names = ["../x", "/tmp/x", "a/../../x", "<script>alert(1)</script>", "..", ".hidden", ""]
    entry = dataset_entry({"source": {"kind": "synthetic", "count": 12}, "resolution": 32})
    images = tmp_path / "imgs"
    images.mkdir()
    before = tree(project.root, skip=project.dir)
    for name in bad_names:
        with pytest.raises(InvalidNameError, match="name must be"):
            resolve_entry({"seed": 0, "datasets": {name: entry}}, name)
        rc, err = cli("dataset", "add", name, str(images))
        assert rc == 2 and "name must be" in err, err
        rc, err = cli("params", "--profile", "reliability", "--datasets", name)
        assert rc == 2 and "not allowed" in err, err
        if name:
            rc, err = cli("params", "--profile", name)
            assert rc == 2 and ("not allowed" in err or "unknown profile" in err), err
        s = slug(name, M)  # report figure names: one safe path part whatever the name
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", s) and len(Path(s).parts) == 1, s
        # a hand-edited active.yaml naming it in the experiment matrix (report turns the matrix into paths)
        active = yaml.safe_load(Path("params/active.yaml").read_text())
        active["experiment"]["datasets"] = [name]
        Path("params/hand-edited.yaml").write_text(yaml.safe_dump(active))
        rc, err = cli("report", "--params", "params/hand-edited.yaml", "--out", "reports/x")
        assert rc == 2 and "experiment.datasets" in err and "name must be" in err, err
        Path("params/hand-edited.yaml").unlink()
    record("names/paths", "bad dataset/model/profile names into resolve_entry, `fewgan dataset add`, "
           "`fewgan params --datasets/--profile`", "clear error (names the rule)", n=len(bad_names) * 4 - 1)
    record("names/paths", "bad names in the report: figure file names (slug), a hand-edited experiment matrix",
           "safe file name; clear error (exit 2)", n=len(bad_names) * 2)
    # the other commands' path options
    token = uuid.uuid4().hex[:8]
    for argv, option in ((["dataset", "add", "ok_name", str(images), "--params-dir", f"../x-{token}"], "--params-dir"),
                         (["params", "--profile", "reliability", "--params-dir", f"/tmp/x-{token}"], "--params-dir"),
                         (["params", "--profile", "reliability", "--out", f"../x-{token}.yaml"], "--out"),
                         (["dag", "--dvc-yaml", f"a/../../x-{token}"], "--dvc-yaml"),
                         (["bench", "--json", f"/tmp/x-{token}.json"], "--json")):
        rc, err = cli(*argv)
        assert rc == 2 and option in err, (argv, err)
    record("names/paths", "`fewgan params/dag/bench/dataset add` path options (--params-dir, --out, --dvc-yaml, "
           "--json) escaping", "clear error (exit 2)", n=5)
    # params naming folders the stages write into: refused in the source files and in a hand-edited active.yaml
    prof = project.dir / "params" / "profiles" / "reliability-escape.yaml"
    escape = yaml.safe_load(PROFILE)  # merged, not appended: a second `evaluation:` key is refused as a duplicate
    escape["evaluation"]["feature_cache_dir"] = f"../x-{token}"
    prof.write_text(yaml.safe_dump(escape))
    try:
        rc, err = cli("params", "--profile", "reliability-escape", "--out", "params/escape.yaml")
        assert rc == 2 and "feature_cache_dir" in err and "inside the project" in err, err
    finally:
        prof.unlink()
    active = yaml.safe_load(Path("params/active.yaml").read_text())
    active["evaluation"]["weights"]["cache_dir"] = f"/tmp/x-{token}"
    Path("params/hand-edited.yaml").write_text(yaml.safe_dump(active))
    rc, err = cli(*stage_argv("score", "--params", "params/hand-edited.yaml", "--out", f"{CELL}/score-x"))
    assert rc == 2 and "evaluation.weights.cache_dir" in err, err
    Path("params/hand-edited.yaml").unlink()
    record("names/paths", "params keys naming folders fewgan writes (feature_cache_dir, weights.cache_dir) set "
           "outside the project: in a profile, in a hand-edited active.yaml", "clear error (exit 2)", n=2)
    assert not Path(f"/tmp/x-{token}").exists() and not Path(f"/tmp/x-{token}.json").exists()
    assert tree(project.root, skip=project.dir) == before


# ======================================================================================================
# 2. hard kills
# ======================================================================================================
#: files each stage writes, in order (a kill is triggered when the seeded choice among them is replaced)
KILL_FILES = {
    "score": ["scores.csv", "scores.json", "fid_curve.png"],
    "invert": ["inversion.csv", "reconstructions.png", "inversion.json"],
    "evaluate": ["samples.png", "metrics.json"],
    "report": ["summary.csv", "stage_costs.csv", "README.md", "index.html", "report.json"],
}


def _final_weights(out: Path, work: Path) -> dict:
    snap = state_tensors(out / "snapshots" / f"snapshot_{ITERATIONS:07d}.pt", "G_ema")
    resume = fio.torch_load(work / "resume.pt")
    return {"G_ema": snap, "model": resume["model"], "resume_G_ema": resume["G_ema"]}


def _bit_exact(a: dict, b: dict) -> bool:
    """Exact, not a tolerance: every run here is deterministic (CPU, 1 torch thread, the same kernels in every
    process of this machine), so a resumed run that differs at all resumed wrongly."""
    return all(same_tensors(a[k], b[k]) for k in a)


@pytest.mark.slow  # five stages killed and rerun in subprocesses (~55 s): `make test`, not `make test-fast`
@pytest.mark.parametrize("stage", ["train", "score", "invert", "evaluate", "report"])
def test_hard_kill_leaves_no_partial_output_and_the_rerun_finishes(project, stage):
    rng = random.Random(f"{SEED}:kill:{stage}")
    if stage == "train":
        out, work = Path(f"{CELL}/train-kill"), Path(f"{WORK}-kill")
        argv = stage_argv("train", "--out", str(out), "--work", str(work))
        # kill 1: a seeded delay after the loop starts; kill 2: when the resume state is next replaced
        delay = rng.uniform(0.0, 0.25)  # the 24-iteration loop lasts ~0.5 s here
        k1 = run_and_kill(argv, project.dir, on_log=("from iteration", delay))
        if k1["marker_at"] is not None:  # process start -> training loop: the start-up cost of a stage here
            project.startup.append(k1["marker_at"])
        check_outputs("train", out)
        k2 = run_and_kill(argv, project.dir, on_file=work / "resume.pt")
        check_outputs("train", out)
        for p in [work / "resume.pt", *sorted((work / "snapshots").glob("*.pt"))]:
            if p.exists():
                assert valid_file(p) is None, p  # what a re-run trusts is complete
        rc, err = cli(*argv)
        assert rc == 0, err
        check_outputs("train", out, finished=True)
        run = json.loads((out / "run.json").read_text())
        ref = _final_weights(Path(f"{CELL}/train"), Path(WORK))
        exact = _bit_exact(_final_weights(out, work), ref)
        assert (k1["killed"] or k2["killed"]) and len(run["sessions_started_at"]) >= 2, (k1, k2, run)
        record("hard kill", "`fewgan train` SIGKILLed twice (a seeded delay after the loop starts; when resume.pt "
               "is next replaced), then re-run", ("outputs absent or complete; " + BITEXACT) if exact else
               "WEIGHTS DIFFER", f"kill 1 {1000 * delay:.0f} ms into the loop; the re-run resumes, and its final "
               "G, D and EMA weights equal the uninterrupted run's", n=2)
        assert exact, "resumed weights differ from the uninterrupted run's"
    else:
        out = Path(fill(BY_NAME[stage].out, *((D, M, TS) if stage != "report" else (None, None, None))))
        argv = stage_argv(stage)
        startup = min(project.startup) if project.startup else 4.0
        frac = rng.uniform(0.05, 1.0)
        t_kill = startup + frac * project.seconds[stage]
        run_and_kill(argv, project.dir, after_s=t_kill)
        check_outputs(stage, out)
        trigger = out / rng.choice(KILL_FILES[stage])
        k2 = run_and_kill(argv, project.dir, on_file=trigger)
        check_outputs(stage, out)
        rc, err = cli(*argv)
        assert rc == 0, err
        check_outputs(stage, out, finished=True)
        assert k2["killed"], "the stage finished before its output was replaced?"
        record("hard kill", f"`fewgan {stage}` SIGKILLed twice (a seeded time; when {trigger.name} is replaced), "
               "then re-run", "outputs absent or complete; stage.json last; re-run finished",
               f"kill 1 at start-up + {frac:.2f} x the stage's in-process time", n=2)
    assert not leftovers(project.dir), leftovers(project.dir)


# ======================================================================================================
# 3. damaged files
# ======================================================================================================
def _classify(fn, same, expect_in_message: str) -> tuple[str, str]:
    """Run a reader on a damaged file: (outcome, detail). A clear error must name the file; a value that
    loads must equal the undamaged one, or the case is a wrong result."""
    try:
        value = fn()
    except Exception as exc:  # noqa: BLE001 - the error is the finding
        msg = str(exc)
        return (CLEAR if expect_in_message in msg else f"UNCLEAR ERROR {type(exc).__name__}"), msg[:160]
    return (SAME if same(value) else "WRONG RESULT"), ""


def _short(outcome: str) -> str:
    return {CLEAR: "error", SAME: "same result"}.get(outcome, outcome)


def _read_damaged(target: Path, cases, read, same, outcomes: collections.Counter, per: list[str],
                  named: str | None = None) -> None:
    """Write each damaged copy (how, bytes) into `target` and read it back with `read`: the outcome must be an
    error naming `named` (default: the file) or exactly the undamaged value (`same`). Counts and notes each case."""
    for how, data in cases:
        _restore(target, data)
        out, detail = _classify(read, same, named or str(target))
        outcomes[out] += 1
        per.append(f"{how}: {_short(out)}")
        assert out in (CLEAR, SAME), (how, out, detail)


def _cli_reader(argv: list[str]):
    def run():
        rc, err = cli(*argv)
        if rc != 0:
            raise RuntimeError(f"exit {rc}: {err.strip()}")
        return rc
    return run


SNAPSHOT_DAMAGE = ["truncate-empty", "truncate-half", "truncate-random", "truncate-last-byte", "corrupt-byte",
                   "corrupt-region", "corrupt-16"]


def test_damaged_snapshot_and_resume_state(project, caplog):
    from fewgan.models.registry import load_snapshot

    rng = random.Random(f"{SEED}:snapshot")
    snap = Path(f"{CELL}/train/snapshots/snapshot_0000016.pt")
    original = snap.read_bytes()
    ref = state_tensors(snap, "G_ema")
    region = tensor_region(snap)
    outcomes, per = collections.Counter(), []
    try:
        _read_damaged(snap, ((how, damaged(original, how, rng, region=region if how == "corrupt-region" else None))
                             for how in SNAPSHOT_DAMAGE),
                      lambda: load_snapshot(snap)[1].state_dict(), lambda sd: same_tensors(dict(sd), ref),
                      outcomes, per)
        # through a stage: invert reads this snapshot first (invert.snapshots: last_k 2)
        _restore(snap, damaged(original, "corrupt-region", rng, region=region))
        rc, err = cli(*stage_argv("invert", "--out", f"{CELL}/invert-dmg"))
        assert rc == 3 and str(snap) in err and "CRC-32" in err, err
        outcomes[CLEAR] += 1
    finally:
        _restore(snap, original)
    per.append("`fewgan invert` on corrupt-region: exit 3")
    for o, n in outcomes.items():
        record("damaged file", "snapshot (runs/D/M/s0/train/snapshots/*.pt) read by load_snapshot: truncated x4, "
               "corrupted x3; then `fewgan invert` on one", o, "; ".join(per) + ". torch.load checks no CRC: "
               "without fewgan.io.torch_load's CRC-32 check a byte flipped in tensor data loads silently", n=n)

    # resume.pt: the loop starts fresh and says why (end to end for the corrupted one: bit-exact to the
    # uninterrupted run, since a fresh start replays the same seeded trajectory)
    from fewgan.train import checkpoint as ckpt

    work = Path(f"{WORK}-damaged")
    shutil.copytree(WORK, work)
    resume = work / "resume.pt"
    data, resume_region = resume.read_bytes(), tensor_region(resume)
    _restore(resume, damaged(data, "truncate-half", rng))
    state, why = ckpt.load_resume(resume, "any", {}, ITERATIONS)
    assert state is None and str(resume) in why and "unreadable" in why, why
    record("damaged file", "resume.pt truncated (the loop's resume check, fewgan.train.checkpoint.load_resume)",
           "clean recompute (starts fresh, says why)", why[:160])
    _restore(resume, damaged(data, "corrupt-region", rng, region=resume_region))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="fewgan.train"):
        rc, err = cli(*stage_argv("train", "--out", f"{CELL}/train-damaged", "--work", str(work)))
    assert rc == 0, err
    why = next(r.getMessage() for r in caplog.records if "not resuming" in r.getMessage())
    assert str(resume) in why and "CRC-32" in why, why
    run = json.loads(Path(f"{CELL}/train-damaged/run.json").read_text())
    assert run["sessions_started_at"] == [0]
    exact = _bit_exact(_final_weights(Path(f"{CELL}/train-damaged"), work),
                       _final_weights(Path(f"{CELL}/train"), Path(WORK)))
    record("damaged file", "resume.pt with a flipped byte in tensor data, then `fewgan train`",
           "clean recompute (starts fresh, says why)" if exact else "WEIGHTS DIFFER", why[:160])
    assert exact


def test_damaged_scores_split_and_curated_image(project):
    from fewgan.data.loading import load_images

    rng = random.Random(f"{SEED}:tables")
    # ---- scores.csv -> select: an error naming the file, or the very same choice --------------------------
    scores = Path(f"{CELL}/score/scores.csv")
    best = json.loads(Path(f"{CELL}/select/best.json").read_text())
    original = scores.read_bytes()
    outcomes, per = collections.Counter(), []
    out_sel = Path(f"{CELL}/select-dmg")

    def select_same(_):
        b = json.loads((out_sel / "best.json").read_text())
        return (b["iteration"], b["sha256"], b["fid"]) == (best["iteration"], best["sha256"], best["fid"])

    # a flipped digit of a FID value (the dangerous case: the file still parses)
    lines = original.decode().splitlines(keepends=True)
    fid_col = lines[0].strip().split(",").index("fid")
    row = 1 + rng.randrange(len(lines) - 1)
    cells = lines[row].split(",")
    digits = [i for i, ch in enumerate(cells[fid_col]) if ch.isdigit()]
    j = rng.choice(digits)
    cells[fid_col] = cells[fid_col][:j] + str((int(cells[fid_col][j]) + 1) % 10) + cells[fid_col][j + 1:]
    flipped_digit = "".join(lines[:row]) + ",".join(cells) + "".join(lines[row + 1:])
    cases = [(how, damaged(original, how, rng)) for how in ("truncate-empty", "truncate-half", "truncate-lines",
                                                             "truncate-random", "corrupt-byte", "corrupt-16")]
    cases.append(("flipped FID digit", flipped_digit.encode()))
    try:
        select = _cli_reader(stage_argv("select", "--out", str(out_sel)))

        def fresh_select():
            shutil.rmtree(out_sel, ignore_errors=True)
            return select()

        _read_damaged(scores, cases, fresh_select, select_same, outcomes, per)
    finally:
        _restore(scores, original)
    for o, n in outcomes.items():
        record("damaged file", "scores.csv -> `fewgan select`: truncated x4 (one at a line boundary), corrupted x2, "
               "one FID digit changed", o, "; ".join(per) + ". select checks scores.csv against scores.json "
               "(written by the same run)", n=n)

    # ---- split.csv -> the loader every stage uses -------------------------------------------------------
    curated, split = Path(f"data/curated/{D}"), Path(f"data/splits/{D}")
    ref = {w: load_images(curated, split, w) for w in ("train", "test")}
    split_csv = split / "split.csv"
    original = split_csv.read_bytes()
    outcomes, per = collections.Counter(), []

    def same_split(v):
        return all(torch.equal(v[w][0], ref[w][0]) and v[w][1] == ref[w][1] for w in ref)

    try:
        _read_damaged(split_csv, ((how, damaged(original, how, rng)) for how in (
            "truncate-empty", "truncate-half", "truncate-lines", "truncate-random", "corrupt-byte", "corrupt-16")),
            lambda: {w: load_images(curated, split, w) for w in ref}, same_split, outcomes, per, named="split")
        _restore(split_csv, damaged(original, "truncate-lines", rng))
        rc, err = cli(*stage_argv("train", "--out", f"{CELL}/train-x", "--work", f"{WORK}-x"))
        assert rc == 3 and str(split_csv) in err, err
        outcomes[CLEAR] += 1
    finally:
        _restore(split_csv, original)
    for o, n in outcomes.items():
        record("damaged file", "split.csv -> the image loader (train and test): truncated x4 (one at a line "
               "boundary), corrupted x2; then `fewgan train` on one", o, "; ".join(per) + "; `fewgan train`: exit 3. "
               "Row counts are checked against the split's summary.json", n=n)

    # ---- a curated PNG ------------------------------------------------------------------------------------
    png = curated / next(r["file"] for r in csv.DictReader(io.StringIO(original.decode())) if r["split"] == "train")
    data = png.read_bytes()
    outcomes, per = collections.Counter(), []
    try:
        _read_damaged(png, ((how, damaged(data, how, rng)) for how in (
            "truncate-half", "truncate-last-byte", "corrupt-byte", "corrupt-16")),
            lambda: load_images(curated, split, "train"), lambda v: torch.equal(v[0], ref["train"][0]),
            outcomes, per)
    finally:
        _restore(png, data)
    for o, n in outcomes.items():
        record("damaged file", "a curated PNG -> the image loader: truncated x2, corrupted x2", o,
               "; ".join(per) + ". Its sha256 is checked against split.csv", n=n)


@pytest.fixture(scope="module")
def extractor(project):
    from fewgan.metrics import fid as F
    from fewgan.params import load_active

    return F.build_extractor(load_active(Path("params/active.yaml")), "cpu")


def test_damaged_feature_cache_is_recomputed(project, extractor, caplog):
    from fewgan.data.loading import load_images
    from fewgan.metrics import fid as F

    rng = random.Random(f"{SEED}:cache")
    images = load_images(Path(f"data/curated/{D}"), Path(f"data/splits/{D}"), "train")[0][:2]
    cache = Path("cache/features")
    feats, meta = F.real_features(images, extractor, cache)  # computed and cached
    path = cache / f"{meta['key']}.pt"
    assert path.is_file() and F.real_features(images, extractor, cache)[1]["cached"]
    original = path.read_bytes()
    for how in ("truncate-half", "corrupt-region"):
        _restore(path, damaged(original, how, rng, region=tensor_region(path)))
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            again, m = F.real_features(images, extractor, cache)
        said = any(str(path) in r.getMessage() and "recomputing" in r.getMessage() for r in caplog.records)
        ok = not m["cached"] and torch.equal(again, feats) and said and valid_file(path) is None
        record("damaged file", "cached real features (cache/features/*.pt): " + {"truncate-half": "truncated",
               "corrupt-region": "a byte flipped in tensor data"}[how], RECOMPUTE if ok else "WRONG RESULT",
               "recomputed, the warning names the file, the cache is rewritten")
        assert ok, (how, m, said)


# ======================================================================================================
# 4. malicious checkpoints
# ======================================================================================================
class _Payload:
    """Unpickling this creates `marker`: a stand-in for any code a checkpoint could run."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _evil(path: Path, marker: Path, fmt: str) -> None:
    path.unlink(missing_ok=True)
    torch.save({"format": fmt, "G_ema": _Payload(marker), "model": _Payload(marker)}, path)


def test_malicious_checkpoints_are_refused_and_never_run(project, extractor, caplog):
    from fewgan.metrics import fid as F
    from fewgan.models.registry import SNAPSHOT_FORMAT
    from fewgan.train.state import RESUME_FORMAT

    marker = project.root / "PWNED"
    # the payload is real: plain unpickling of the checkpoint's pickle (what an unsafe loader does) runs it
    probe = project.root / "probe.pt"
    _evil(probe, project.root / "probe-ran", SNAPSHOT_FORMAT)
    with zipfile.ZipFile(probe) as z:
        pickle.loads(z.read(next(n for n in z.namelist() if n.endswith("/data.pkl"))))  # no tensors inside
    assert (project.root / "probe-ran").exists()

    evil_train = Path(f"{CELL}/train-evil")
    shutil.copytree(f"{CELL}/train", evil_train)
    for p in (evil_train / "snapshots").glob("*.pt"):
        _evil(p, marker, SNAPSHOT_FORMAT)
    snap = evil_train / "snapshots" / "snapshot_0000008.pt"
    # score loads every snapshot
    rc, err = cli(*stage_argv("score", "--train-dir", str(evil_train), "--out", f"{CELL}/score-evil"))
    assert rc == 3 and str(snap) in err and "refused" in err, err
    record("malicious checkpoint", "snapshot whose pickle runs code -> `fewgan score`", REFUSED, err.strip()[:160])
    # select reads the chosen snapshot (weights_only) before publishing it as generator.pt: refused there
    rc, err = cli(*stage_argv("select", "--train-dir", str(evil_train), "--out", f"{CELL}/select-evil"))
    assert rc == 3 and "train-evil/snapshots/" in err and "refused" in err, err
    assert not Path(f"{CELL}/select-evil/generator.pt").exists()
    record("malicious checkpoint", "the same snapshot -> `fewgan select`", REFUSED,
           err.replace(f"{project.root}/", "").strip()[:160])
    # a malicious generator.pt planted in a select folder: evaluate refuses it
    Path(f"{CELL}/select-planted").mkdir(parents=True)
    shutil.copy(snap, f"{CELL}/select-planted/generator.pt")
    rc, err = cli(*stage_argv("evaluate", "--select", f"{CELL}/select-planted", "--out", f"{CELL}/evaluate-evil"))
    assert rc == 3 and "select-planted/generator.pt" in err and "refused" in err, err
    record("malicious checkpoint", "generator.pt whose pickle runs code -> `fewgan evaluate`", REFUSED,
           err.strip()[:160])
    rc, err = cli(*stage_argv("invert", "--train-dir", str(evil_train), "--out", f"{CELL}/invert-evil"))
    assert rc == 3 and "train-evil/snapshots/snapshot_0000016.pt" in err and "refused" in err, err
    record("malicious checkpoint", "the same snapshots -> `fewgan invert`", REFUSED, err.strip()[:160])
    # train's resume.pt: a fresh start that says why
    work = Path(f"{WORK}-evil")
    shutil.copytree(WORK, work)
    _evil(work / "resume.pt", marker, RESUME_FORMAT)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="fewgan.train"):
        rc, err = cli(*stage_argv("train", "--out", f"{CELL}/train-evil2", "--work", str(work)))
    assert rc == 0, err
    why = next(r.getMessage() for r in caplog.records if "not resuming" in r.getMessage())
    assert "refused" in why and str(work / "resume.pt") in why, why
    assert json.loads(Path(f"{CELL}/train-evil2/run.json").read_text())["sessions_started_at"] == [0]
    record("malicious checkpoint", "resume.pt whose pickle runs code -> `fewgan train`",
           "refused: fresh start, says why", why[:160])
    # the real-feature cache: refused, recomputed
    images = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    feats, meta = F.real_features(images, extractor, Path("cache/features"))
    _evil(Path("cache/features") / f"{meta['key']}.pt", marker, F.CACHE_FORMAT)
    again, m2 = F.real_features(images, extractor, Path("cache/features"))
    assert not m2["cached"] and torch.equal(again, feats)
    record("malicious checkpoint", "cached real features whose pickle runs code", "refused: clean recompute")
    assert not marker.exists(), "a checkpoint ran code"


# ======================================================================================================
# 5. two runs at once
# ======================================================================================================
@contextlib.contextmanager
def holding(out: str):
    """Hold fewgan's lock of output folder `out` from this process (a long-running writer stands in)."""
    saved = cli_mod._ARGV
    cli_mod._ARGV = ["(held by tests/test_reliability.py)"]
    try:
        with cli_mod._output_locks([("--out", Path(out))]):
            yield
    finally:
        cli_mod._ARGV = saved


def test_two_fewgan_processes_for_one_output(project):
    # (a) the output is held by another process: the second refuses at once, naming output and holder
    split = Path(f"data/splits/{D}")
    before = {p.name: p.read_bytes() for p in split.iterdir()}
    with holding(str(split)):
        p = Proc(FEWGAN + stage_argv("split"), project.dir)
        rc = p.wait()
    assert rc == 4, p.output
    assert f"--out {split}" in p.output and f"PID {os.getpid()}" in p.output, p.output
    assert {q.name: q.read_bytes() for q in split.iterdir()} == before  # the refused run touched nothing
    record("two runs at once", "`fewgan split` while another process holds data/splits/D", REFUSED,
           "exit 4 at once; the message names --out and the holder's PID; nothing touched")
    # (b) two real processes for one output, started together
    out = Path(f"{CELL}/evaluate-race")
    a = Proc(FEWGAN + stage_argv("evaluate", "--out", str(out)), project.dir)
    b = Proc(FEWGAN + stage_argv("evaluate", "--out", str(out)), project.dir)
    ra, rb = a.wait(), b.wait()
    assert sorted((ra, rb)) in ([0, 0], [0, 4]), (ra, rb, a.output, b.output)
    if 4 in (ra, rb):
        loser, winner = (a, b) if ra == 4 else (b, a)
        assert f"PID {winner.p.pid}" in loser.output and f"--out {out}" in loser.output, loser.output
    check_outputs("evaluate", out, finished=True)
    record("two runs at once", "two `fewgan evaluate` for one --out, started together",
           "second refused (names the holder); first finished" if 4 in (ra, rb) else
           "both finished, one after the other", "outputs complete, all from one run")


@pytest.fixture(scope="module")
def engines(project):
    """A second project with the workflow files, for Snakemake and DVC."""
    eng = project.root / "engines"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for item in ("params", "workflow", "src"):
        shutil.copytree(REPO / item, eng / item, ignore=ignore)
    shutil.copy(REPO / "dvc.yaml", eng / "dvc.yaml")
    (eng / "params" / "profiles" / "reliability.yaml").write_text(PROFILE)
    bin_dir = Path(sys.executable).parent
    for argv in (FEWGAN + ["params", "--profile", "reliability"], [str(bin_dir / "dvc"), "init", "--no-scm", "-q"]):
        subprocess.run(argv, cwd=eng, env=sub_env(), check=True, capture_output=True, timeout=120)
    return SimpleNamespace(dir=eng, snakemake=[str(bin_dir / "snakemake"), "--cores", "1", f"data/curated/{D}"],
                           dvc=[str(bin_dir / "dvc"), "repro", "-s", f"curate@{D}"])


def _engine_text(p: Proc, eng: Path) -> str:
    log = eng / "logs" / "curate" / f"{D}.log"
    return p.output + (log.read_text(errors="replace") if log.is_file() else "")


@pytest.mark.slow  # both workflow engines, several runs (~28 s): `make test`, not `make test-fast`
def test_snakemake_and_dvc_at_once(project, engines, monkeypatch):
    eng = engines.dir
    monkeypatch.chdir(eng)
    out = Path(f"data/curated/{D}")
    # (a) the output is being written by another fewgan process: each engine's job refuses at once
    with holding(str(out)):
        s, d = Proc(engines.snakemake, eng), Proc(engines.dvc, eng)
        rs, rd = s.wait(), d.wait()
    for p, rc in ((s, rs), (d, rd)):
        assert rc != 0 and f"PID {os.getpid()}" in _engine_text(p, eng), _engine_text(p, eng)
    assert not out.exists()
    record("two runs at once", "`snakemake` and `dvc repro` at once while another fewgan process writes the "
           "output", REFUSED, "both jobs exit 4 at once, naming the holder's PID; nothing written")
    # (b) Snakemake and DVC on the same output at the same time, nothing held
    s, d = Proc(engines.snakemake, eng), Proc(engines.dvc, eng)
    rs, rd = s.wait(), d.wait()
    texts = {"snakemake": _engine_text(s, eng), "dvc": d.output}
    rcs = {"snakemake": rs, "dvc": rd}
    refused = [k for k, v in texts.items() if rcs[k] and "is being written by another fewgan process" in v]
    # Each engine deletes a job's outputs just before it runs the job, outside fewgan's lock: when one engine's
    # job starts after the other's has finished, it deletes that finished output (seen once in a loaded suite
    # run: DVC's job finished, Snakemake cleared the folder, DVC then found its output gone). What must hold:
    # each failure says why (the lock's refusal or the engine's own missing-output report), nothing partial
    # is left, and a rerun of either engine finishes.
    missing = [k for k, v in texts.items() if rcs[k] and k not in refused
               and ("does not exist" in v or "MissingOutputException" in v or "Missing files" in v)]
    unexplained = {k: v[-3000:] for k, v in texts.items() if rcs[k] and k not in refused + missing}
    assert not unexplained, unexplained
    state = check_outputs("curate", out) if out.exists() else "absent"
    assert state.startswith("finished") or state == "absent", (state, texts)
    if not state.startswith("finished"):
        again = Proc(engines.snakemake, eng)
        assert again.wait() == 0, _engine_text(again, eng)
        state = check_outputs("curate", out)
        assert state.startswith("finished"), state
    record("two runs at once", "`snakemake` and `dvc repro` of one stage at the same time",
           (f"{' and '.join(refused)} refused (names the holder)" if refused else "")
           + ("; " if refused and missing else "")
           + (f"{' and '.join(missing)} found its output deleted by the other engine, which clears a job's "
              "outputs before running it (outside fewgan's lock), and says so; a rerun finishes" if missing else "")
           or "both finished, one after the other", f"output: {state}")
    # (c) two Snakemake runs, (d) two DVC runs: the engines' own locks
    for name, argv, says in (("snakemake", engines.snakemake + ["--forcerun", "curate"], "LockException"),
                             ("dvc", engines.dvc + ["-f"], "lock")):
        a, b = Proc(argv, eng), Proc(argv, eng)
        ra, rb = a.wait(), b.wait()
        assert 0 in (ra, rb), (a.output, b.output)
        if ra != 0 or rb != 0:
            loser = a if ra != 0 else b
            assert says.lower() in loser.output.lower() or "is being written by another fewgan process" in \
                _engine_text(loser, eng), loser.output
        assert check_outputs("curate", out).startswith("finished")
        record("two runs at once", f"two `{name}` runs at once in one checkout",
               "second refused" if (ra, rb) != (0, 0) else "both finished, one after the other",
               "by the engine's own lock" if (ra, rb) != (0, 0) and says.lower() in
               (a if ra else b).output.lower() else "")


# ======================================================================================================
# 6. a full disk
# ======================================================================================================
class _FailingFile:
    """A file whose first write stores half its bytes, then fails like a full disk."""

    def __init__(self, f):
        self.f = f

    def write(self, data):
        self.f.write(data[: len(data) // 2])
        self.f.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def _full_disk(monkeypatch, after: int = 0) -> None:
    """fewgan.io's writes fail with ENOSPC mid-file, from the (after+1)-th file written on."""
    count = [0]
    real_open = open

    def fake_open(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        if not any(c in mode for c in "wax"):
            return f
        count[0] += 1
        return f if count[0] <= after else _FailingFile(f)

    monkeypatch.setattr(fio, "open", fake_open, raising=False)


def _snapshot_dir(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_full_disk_leaves_nothing_half_written(project, monkeypatch):
    scratch = project.root / "disk"
    scratch.mkdir()
    # the writers themselves
    target = scratch / "metrics.json"
    fio.atomic_write_json(target, {"fid": 1.0})
    ckpt = scratch / "snapshot.pt"
    fio.atomic_torch_save(ckpt, {"w": torch.ones(3)})
    old = {target: target.read_bytes(), ckpt: ckpt.read_bytes()}
    with monkeypatch.context() as mp:
        _full_disk(mp)
        for path, write in ((target, lambda: fio.atomic_write_json(target, {"fid": 2.0, "pad": "x" * 4096})),
                            (ckpt, lambda: fio.atomic_torch_save(ckpt, {"w": torch.zeros(1000)}))):
            with pytest.raises(OSError) as err:
                write()
            assert err.value.errno == errno.ENOSPC and str(path) in str(err.value), err.value
            assert path.read_bytes() == old[path]
    assert sorted(p.name for p in scratch.iterdir()) == ["metrics.json", "snapshot.pt"]  # no temp file
    record("full disk", "atomic JSON and checkpoint writers over existing files, ENOSPC mid-file",
           "clear error (names the file); old content intact, no temp file", n=2)
    # a stage writing files into its folder, and a stage building its folder in a temporary one
    for stage, src, out, after in (("split", f"data/splits/{D}", f"data/splits/{D}-full", 0),
                                   ("curate", f"data/curated/{D}", f"data/curated/{D}-full", 3)):
        shutil.copytree(src, out)
        before = _snapshot_dir(Path(out))
        extra = ["--curated", f"data/curated/{D}"] if stage == "split" else []
        with monkeypatch.context() as mp:
            _full_disk(mp, after=after)
            rc, err = cli(stage, "--dataset", D, *extra, "--out", out)
        assert rc == 3 and "No space left on device" in err and out in err, err
        after_state = _snapshot_dir(Path(out))
        # stage.json goes when the run starts (the folder no longer vouches for a finished run); the rest stays
        assert "stage.json" not in after_state
        before.pop("stage.json", None)
        assert after_state == before, f"{out} changed"
        assert not leftovers(project.dir), leftovers(project.dir)
        how = "(files written into --out)" if stage == "split" else "(folder built in a temporary folder)"
        # stabilised before the cut: temporary names carry PIDs of varying length
        record("full disk", f"`fewgan {stage}` with ENOSPC mid-file {how}",
               "clear error (exit 3, names the file); old content intact, no temp file; stage.json removed",
               _stable(err.strip().splitlines()[-1].replace(str(project.dir) + "/", ""))[:160])


# ======================================================================================================
# 7. the bad inputs of the earlier issue, as a user meets them (`fewgan params`, `fewgan curate`)
# ======================================================================================================
def _noise_images(folder: Path, n: int, seed: int) -> None:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        small = rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8)
        Image.fromarray(small, "RGB").resize((48, 48), Image.NEAREST).save(folder / f"img{i:03d}.png")


def test_bad_inputs_of_the_earlier_issue(project, monkeypatch):
    bad = project.root / "bad"
    shutil.copytree(REPO / "params", bad / "params")
    (bad / "params" / "profiles" / "reliability.yaml").write_text(PROFILE)
    monkeypatch.chdir(bad)
    outside = project.root / "outside_images"
    _noise_images(outside, 12, seed=1)
    inputs = bad / "inputs"
    (inputs / "empty").mkdir(parents=True)
    _noise_images(inputs / "three", 3, seed=2)
    (inputs / "link").symlink_to(outside)
    _noise_images(inputs / "file_links", 12, seed=3)
    (inputs / "file_links" / "escape.png").symlink_to(outside / "img000.png")
    _noise_images(inputs / "undecodable", 12, seed=4)
    (inputs / "undecodable" / "random_bytes.png").write_bytes(random.Random(SEED).randbytes(2000))
    good = (inputs / "undecodable" / "img000.png").read_bytes()
    (inputs / "undecodable" / "truncated.png").write_bytes(good[: len(good) // 2])
    (inputs / "undecodable" / "notes.txt").write_text("not an image\n")
    cases = [
        ("empty folder", "inputs/empty"),
        ("3 images (min_images 10)", "inputs/three"),
        ("missing folder", "inputs/nope"),
        ("absolute source path", str(outside)),
        ("`..` source path", "../outside_images"),
        ("symlinked folder pointing outside the project", "inputs/link"),
        ("folder holding a symlink to an image outside it", "inputs/file_links"),
        ("undecodable files (random bytes, truncated PNG, a text file) among 12 images", "inputs/undecodable"),
    ]
    entries = {f"bad{i}": {"source": {"kind": "folder", "path": path}, "mode": "center", "resolution": 32}
               for i, (_, path) in enumerate(cases)}
    with open("params/datasets.yaml", "a", encoding="utf-8") as f:
        f.write("\n" + yaml.safe_dump(entries, sort_keys=False))

    def outcome(rc: int, err: str, what: str) -> None:
        line = " ".join(err.strip().split())[:220].replace(str(project.root), "<tmp>")
        BAD_INPUTS.append({"input": what, "exit": rc, "outcome": line or "(no message)"})

    for i, (what, _) in enumerate(cases):
        name = f"bad{i}"
        rc, err = cli("params", "--profile", "reliability", "--datasets", name)
        assert rc == 0, err
        rc, err = cli("curate", "--dataset", name)
        if rc == 0:
            summary = json.loads(Path(f"data/curated/{name}/summary.json").read_text())
            rows = list(csv.DictReader(io.StringIO(Path(f"data/curated/{name}/manifest.csv").read_text())))
            skipped = {r["source"]: r["reason"] for r in rows if r["status"] == "skipped"}
            err = (f"curated {summary['counts']['written']} images; skipped and listed in manifest.csv: "
                   f"{skipped or 'none'}")
        outcome(rc, err, what)
    # what each must give: a clear error naming the problem, or a run that leaves the bad files out
    by = {b["input"]: b for b in BAD_INPUTS}
    assert by["empty folder"]["exit"] == 3 and "empty" in by["empty folder"]["outcome"]
    three = by["3 images (min_images 10)"]
    assert three["exit"] == 3 and "need at least 10" in three["outcome"]
    assert by["missing folder"]["exit"] == 3 and "not found" in by["missing folder"]["outcome"]
    assert by["absolute source path"]["exit"] == 2 and "absolute" in by["absolute source path"]["outcome"]
    assert by["`..` source path"]["exit"] == 2 and "escapes" in by["`..` source path"]["outcome"]
    assert by["symlinked folder pointing outside the project"]["exit"] == 2
    links = by["folder holding a symlink to an image outside it"]
    assert links["exit"] == 0 and "'escape.png': 'symlink_outside'" in links["outcome"]  # not read, named
    undec = by["undecodable files (random bytes, truncated PNG, a text file) among 12 images"]
    assert undec["exit"] == 0 and "random_bytes.png" in undec["outcome"] and "truncated.png" in undec["outcome"]
    # unknown params key
    (bad / "params" / "profiles" / "typo.yaml").write_text(PROFILE + "\n" + yaml.safe_dump({"report": {"titel": "x"}}))
    rc, err = cli("params", "--profile", "typo")
    assert rc == 2 and "unknown key 'report.titel'" in err and "did you mean 'title'" in err, err
    outcome(rc, err, "unknown params key (`report.titel` in a profile)")
    # the report of the issue: a dataset named like a path or like HTML
    for name in ("../../../escaped_outside", "<script>alert(1)</script>"):
        rc, err = cli("curate", "--dataset", name)
        outcome(rc, err, f"dataset named `{name}`")
        assert rc == 2 and not (project.root.parent / "escaped_outside").exists()
    assert not list(bad.rglob("*script*"))
    record("earlier bad inputs", "the inputs listed below, through `fewgan params` / `fewgan curate`",
           "clear error, or the bad files left out and listed", n=len(BAD_INPUTS))


# ======================================================================================================
# 8. hostile inputs at the door (issue 26): each a clear error naming the file or key, or the image skipped
#    and named; no traceback (in-process: an uncaught exception fails the test); nothing written outside
#    the run's folder
# ======================================================================================================
@pytest.fixture(scope="module")
def door(tmp_path_factory):
    """A bare project (params and the module's profile, nothing run) for the hostile inputs."""
    root = tmp_path_factory.mktemp("door")
    proj = root / "proj"
    shutil.copytree(REPO / "params", proj / "params")
    (proj / "params" / "profiles" / "reliability.yaml").write_text(PROFILE)
    mp = pytest.MonkeyPatch()
    mp.chdir(proj)
    try:
        assert cli("params", "--profile", "reliability")[0] == 0
        yield SimpleNamespace(root=root, dir=proj)
    finally:
        mp.undo()


def _files(root: Path) -> dict[str, tuple]:
    """Every entry under `root` (links not followed) with what a write changes."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)  # a folder: its entries are compared one by one, so not its mtime
            out[os.path.relpath(p, root)] = ((st.st_mode, st.st_ino) if stat.S_ISDIR(st.st_mode) else
                                             (st.st_mode, st.st_size, st.st_mtime_ns, st.st_ino))
    return out


def _changed(before: dict, after: dict) -> set[str]:
    return {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}


@contextlib.contextmanager
def only_writes(door, *allowed: str):
    """Assert that the block changes nothing under the door's temporary root except `allowed` (paths
    relative to the project, with what is below them) and fewgan's lock files."""
    before = _files(door.root)
    yield
    prefixes = [f"proj/{a}" for a in allowed] + ["proj/.fewgan"]
    stray = sorted(p for p in _changed(before, _files(door.root))  # (the folders above the run's are made)
                   if not any(p == a or p.startswith(a + "/") or a.startswith(p + "/") for a in prefixes))
    assert not stray, f"written outside the run's folder: {stray}"


def hostile(case: str, door: str, rc: int, message: str, outcome: str, n: int = 1) -> None:
    line = re.sub(r"\(since [^)]*\)", "(since <time>)", re.sub(r"PID \d+", "PID <pid>", " ".join(message.split())))
    HOSTILE.append({"input": case, "door": door, "exit": rc, "outcome": outcome, "message": line[:230] or "(none)"})
    record("hostile input", case, outcome, n=n)


def _folder_dataset(name: str, build) -> None:
    """inputs/NAME: 12 good images plus what `build(folder)` adds; a folder dataset entry for it in
    params/datasets.yaml; params/active.yaml resolved for it."""
    folder = Path("inputs") / name
    _noise_images(folder, 12, seed=sum(map(ord, name)))
    build(folder)
    entry = {name: {"source": {"kind": "folder", "path": f"inputs/{name}"}, "mode": "center", "resolution": 32}}
    with open("params/datasets.yaml", "a", encoding="utf-8") as f:
        f.write("\n" + yaml.safe_dump(entry, sort_keys=False))
    rc, err = cli("params", "--profile", "reliability", "--datasets", name)
    assert rc == 0, err


def _curate_skips(door, name: str) -> tuple[int, str, dict[str, tuple[str, str]]]:
    """`fewgan curate --dataset NAME` writing only data/curated/NAME: (exit, stderr, {source: (reason,
    detail)} of the skipped rows of manifest.csv)."""
    with only_writes(door, f"data/curated/{name}"):
        rc, err = cli("curate", "--dataset", name)
    assert rc == 0, err
    rows = list(csv.DictReader(io.StringIO(Path(f"data/curated/{name}/manifest.csv").read_text(encoding="utf-8"))))
    assert all("\n" not in r["source"] for r in rows)
    summary = json.loads(Path(f"data/curated/{name}/summary.json").read_text())
    assert summary["counts"]["written"] == 12 and summary["counts"]["found"] == len(rows), summary["counts"]
    return rc, err, {r["source"]: (r["reason"], r["detail"]) for r in rows if r["status"] == "skipped"}


def _skips_text(skipped: dict) -> str:
    return "curated 12 images; skipped and listed in manifest.csv: " + "; ".join(
        f"{src}: {reason} ({detail})" for src, (reason, detail) in skipped.items())


def _png_bomb(path: Path, side: int = 30000) -> None:
    """A real decompression bomb: a 1-bit side x side PNG of zeros (~110 kB on disk; 2.7 GB as 8-bit RGB)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" * (1 + (side + 7) // 8)  # filter byte + 1-bit pixels
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def test_door_decompression_bomb_png(door):
    _folder_dataset("bomb", lambda f: _png_bomb(f / "bomb.png"))
    rc, _, skipped = _curate_skips(door, "bomb")
    reason, detail = skipped["bomb.png"]
    assert reason == "decompression_bomb" and "bomb.png" in detail and "max_pixels" in detail, skipped
    hostile("a decompression-bomb PNG (30000x30000, 110 kB) among 12 images", "`fewgan curate`", rc,
            _skips_text(skipped), "image skipped and named (manifest.csv reason decompression_bomb)")


def test_door_image_symlink_outside_the_dataset(door):
    outside = door.root / "outside"
    _noise_images(outside, 1, seed=7)
    _folder_dataset("linkout", lambda f: (f / "escape.png").symlink_to(outside / "img000.png"))
    rc, _, skipped = _curate_skips(door, "linkout")
    assert skipped["escape.png"][0] == "symlink_outside" and str(outside) in skipped["escape.png"][1], skipped
    hostile("an image symlink pointing outside the dataset folder", "`fewgan curate`", rc,
            _skips_text(skipped).replace(str(door.root), "<tmp>"),
            "image skipped and named (reason symlink_outside); not read")


def test_door_symlink_loops(door):
    def build(f: Path) -> None:
        (f / "loop_a.png").symlink_to("loop_b.png")
        (f / "loop_b.png").symlink_to("loop_a.png")
        (f / "self.png").symlink_to("self.png")
        (f / "sub").mkdir()
        (f / "sub" / "up").symlink_to("..")  # a folder loop: os.walk would go round it if it followed links

    _folder_dataset("loops", build)
    rc, _, skipped = _curate_skips(door, "loops")
    assert {k: v[0] for k, v in skipped.items()} == {"loop_a.png": "symlink_loop", "loop_b.png": "symlink_loop",
                                                     "self.png": "symlink_loop", "sub/up/": "symlink_folder"}, skipped
    hostile("symlink loops in the image folder (a->b->a, a->a, a folder link to its parent)", "`fewgan curate`", rc,
            _skips_text(skipped).replace(str(door.root), "<tmp>"),
            "entries skipped and named (symlink_loop, symlink_folder: not followed)")
    # the source folder itself a loop
    Path("inputs/loopdir").symlink_to("loopdir")
    entry = {"loopdir": {"source": {"kind": "folder", "path": "inputs/loopdir"}, "mode": "center", "resolution": 32}}
    with open("params/datasets.yaml", "a", encoding="utf-8") as f:
        f.write("\n" + yaml.safe_dump(entry, sort_keys=False))
    assert cli("params", "--profile", "reliability", "--datasets", "loopdir")[0] == 0
    with only_writes(door):
        rc, err = cli("curate", "--dataset", "loopdir")
    assert rc in (2, 3) and "inputs/loopdir" in err and ("loop" in err or "not found" in err), err
    hostile("`source.path` a symlink loop", "`fewgan curate`", rc, err, "clear error (names the path)")


def test_door_file_names_with_newlines(door):
    def build(f: Path) -> None:
        shutil.copy(f / "img000.png", f / "new\nline.png")
        (f / "dir\nname").mkdir()
        shutil.copy(f / "img001.png", f / "dir\nname" / "x.png")
        shutil.copy(f / "img002.png", f / "tab\tand\rcr.png")

    _folder_dataset("newlines", build)
    rc, _, skipped = _curate_skips(door, "newlines")
    assert {k: v[0] for k, v in skipped.items()} == {"new\\nline.png": "bad_file_name", "dir\\nname/x.png":
                                                     "bad_file_name", "tab\\tand\\rcr.png": "bad_file_name"}, skipped
    assert not any("\n" in p.name for p in Path("data/curated/newlines").rglob("*"))
    hostile("file names with a newline (a file, a folder), a tab and a CR", "`fewgan curate`", rc,
            _skips_text(skipped), "images skipped and named, the name escaped (reason bad_file_name)")


def _profile_error(door, name: str, text: str | bytes) -> tuple[int, str]:
    """`fewgan params --profile NAME` on a profile holding `text`: must be refused (exit 2) naming the file,
    writing nothing."""
    prof = Path("params/profiles") / f"{name}.yaml"
    (prof.write_bytes if isinstance(text, bytes) else prof.write_text)(text)
    try:
        with only_writes(door):
            rc, err = cli("params", "--profile", name)
    finally:
        prof.unlink()
    assert rc == 2 and str(prof) in err and "Traceback" not in err, err
    return rc, err


def test_door_yaml_alias_bomb(door):
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]  # 9^10 = 3.5e9 values
    rc, err = _profile_error(door, "bomb", "\n".join(lines) + "\ntrain: {iterations: *a9}\n")
    assert "alias bomb" in err and "line 6" in err, err  # a5 = 1 + 9 x a4 (66,430) is the first past 100,000
    hostile("a YAML alias bomb (9 levels x 9 aliases: 3.5e9 values) in a params profile", "`fewgan params`", rc, err,
            "clear error (names the file and line)")


def test_door_yaml_duplicate_keys(door):
    rc, err = _profile_error(door, "dup", PROFILE + "train: {iterations: 1}\n")
    assert "duplicate key 'train'" in err and "line" in err, err
    hostile("duplicate YAML keys in a params profile (`train:` twice)", "`fewgan params`", rc, err,
            "refused (names the file, the key and both lines)")
    rc, err = _profile_error(door, "dup2", "train:\n  iterations: 8\n  iterations: 9\n")
    assert "duplicate key 'iterations'" in err, err


def test_door_yaml_python_tags(door):
    marker = door.root / "pwned"
    for tag in (f"!!python/object/apply:os.system ['touch {marker}']", "!!python/object:fewgan.io.CheckpointError {}",
                "!!python/name:os.system", f"!!python/object/new:subprocess.Popen [['touch', '{marker}']]"):
        rc, err = _profile_error(door, "tags", f"train: {tag}\n")
        assert "is not allowed" in err and "python/" in err, err
        assert not marker.exists()
    hostile("`!!python/object` tags (object, object/apply, object/new, name) in a params profile",
            "`fewgan params`", rc, err, "refused (names the file, tag and line); nothing constructed")


def test_door_non_utf8_params(door):
    rc, err = _profile_error(door, "latin1", PROFILE.encode() + "report: {title: 'café'}\n".encode("latin-1"))
    assert "not UTF-8" in err and "0xe9" in err, err
    hostile("non-UTF-8 params (a Latin-1 'é' in a profile)", "`fewgan params`", rc, err,
            "clear error (names the file, the byte and its line)")


@pytest.mark.parametrize("raw", ["-5", "1e309", ".nan", '"400"'])
def test_door_train_iterations(door, raw):
    marked = f"{{iterations: {ITERATIONS},"
    assert marked in PROFILE
    rc, err = _profile_error(door, "iters", PROFILE.replace(marked, f"{{iterations: {raw},"))
    assert "train.iterations" in err, err
    hostile(f"`train.iterations: {raw}` in a params profile", "`fewgan params`", rc, err,
            "clear error (names the file and key)")
    # the same value edited into params/active.yaml (`dvc exp run -S`, by hand), then a stage
    active = Path("params/active.yaml").read_text()
    edited = re.sub(r"(\ntrain:\n(?:  .*\n)*?  iterations: )\d+\n", lambda m: m.group(1) + raw + "\n", active, count=1)
    assert edited != active
    Path("params/edited.yaml").write_text(edited)
    try:
        with only_writes(door, "params/edited.yaml"):
            rc, err = cli(*stage_argv("train", "--params", "params/edited.yaml"))
    finally:
        Path("params/edited.yaml").unlink()
    assert rc == 2 and "params/edited.yaml" in err and "train.iterations" in err, err
    hostile(f"`train.iterations: {raw}` edited into params/active.yaml", "`fewgan train`", rc, err,
            "clear error (names the file and key)")


def test_door_out_root_parent_or_existing_file(door):
    Path("notes.txt").write_text("a user's file\n")
    seen: dict[str, str] = {}
    for s in STAGES:
        options = ["--out"] + ["--" + n.replace("_", "-") for n in s.scratch]
        for option in options:
            for value in ("/", "..", "notes.txt"):
                with only_writes(door):
                    rc, err = cli(*stage_argv(s.name, option, value))
                assert rc == 2 and f"{option} {value}" in err and "Traceback" not in err, (s.name, option, value, err)
                seen.setdefault(value, err)
    assert Path("notes.txt").read_text() == "a user's file\n"
    # an output folder holding what the stage reads (it would be replaced by the output)
    for argv in (stage_argv("split", "--out", "data/curated"), stage_argv("curate", "--out", "params")):
        with only_writes(door):
            rc, err = cli(*argv)
        assert rc == 2 and "which this command reads" in err, err
        seen.setdefault(argv[-1], err)
    n = sum(1 + len(s.scratch) for s in STAGES)
    for value, what in (("/", "`/`"), ("..", "`..`"), ("notes.txt", "an existing file")):
        hostile(f"`--out` (and train's `--work`) pointing at {what}, every stage", "`fewgan <stage>`", 2,
                seen[value].replace(str(door.dir), "<proj>"), "clear error (names the option); nothing written", n=n)
    hostile("`--out` a folder holding the stage's input (`split --out data/curated`, `curate --out params`)",
            "`fewgan <stage>`", 2, seen["data/curated"], "clear error (names the option and the input)", n=2)


def test_door_two_curates_at_once(door):
    name = "race"
    entry = {name: {"description": "two curates at once", "domain": "synthetic faces", "synthetic": True,
                    "source": {"kind": "synthetic", "count": 80, "seed": None}, "mode": "face", "resolution": 32}}
    with open("params/datasets.yaml", "a", encoding="utf-8") as f:
        f.write("\n" + yaml.safe_dump(entry, sort_keys=False))
    assert cli("params", "--profile", "reliability", "--datasets", name)[0] == 0
    out = Path(f"data/curated/{name}")
    lock = door.dir / cli_mod.LOCK_DIR / f"data+curated+{name}.lock"
    with only_writes(door, str(out)):
        a = Proc(FEWGAN + ["curate", "--dataset", name], door.dir)
        t0 = time.monotonic()  # the second starts once the first holds the lock (so they overlap)
        while not (lock.is_file() and f"PID {a.p.pid}" in lock.read_text()) and a.p.poll() is None:
            assert time.monotonic() - t0 < 120, a.output
            time.sleep(0.01)
        b = Proc(FEWGAN + ["curate", "--dataset", name], door.dir)
        ra, rb = a.wait(), b.wait()
    assert ra == 0 and rb in (0, 4), (ra, rb, a.output, b.output)
    if rb == 4:
        assert f"PID {a.p.pid}" in b.output and f"--out {out}" in b.output and "Traceback" not in b.output, b.output
    check_outputs("curate", out)  # no stage.json here (written by run_stage only on success: it is there)
    assert (out / "stage.json").is_file() and not leftovers(door.dir)
    rows = [r for r in csv.DictReader(io.StringIO((out / "manifest.csv").read_text())) if r["status"] == "written"]
    assert sorted(r["file"] for r in rows) == sorted(f"images/{p.name}" for p in (out / "images").iterdir())
    assert all(fio.sha256_file(out / r["file"]) == r["output_sha256"] for r in rows)
    hostile("two `fewgan curate` of the same dataset at once", "`fewgan curate` x2 (processes)", rb,
            (" ".join(ln for ln in b.output.splitlines() if "busy" in ln) if rb == 4 else "both finished")
            .replace(str(door.dir), "<proj>"),
            "second refused (exit 4, names the holder's PID); the first finished, its output complete"
            if rb == 4 else "both finished, one after the other; output complete")


# ======================================================================================================
# 9. the document
# ======================================================================================================
def _stable(text: str) -> str:
    """Drop what changes from run to run (PIDs and random tags of temporary names)."""
    return re.sub(r"\.tmp-\d+-[0-9a-z_]+", ".tmp-PID-XXXX", text)


def _md(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def test_zz_reliability_doc():
    """docs/RELIABILITY.md from the outcomes above (only when the whole module ran)."""
    wanted = {n for n, f in globals().items() if n.startswith("test_") and callable(f)} - {"test_zz_reliability_doc"}
    missing = sorted(wanted - EXECUTED)
    if missing:
        pytest.skip(f"docs/RELIABILITY.md is written only when the whole module runs (not run: {missing})")
    if FAILED:
        pytest.skip(f"docs/RELIABILITY.md is written only when every case passed (failed: {sorted(FAILED)})")
    table: dict[tuple[str, str], dict] = {}
    for r in ROWS:
        t = table.setdefault((r["area"], r["case"]), {"n": 0, "outcomes": collections.Counter(), "detail": r["detail"]})
        t["n"] += r.get("n", 1)
        t["outcomes"][r["outcome"]] += r.get("n", 1)
    lines = [
        "# Reliability: what was tried and what happened",
        "",
        "GENERATED by `tests/test_reliability.py` from the outcomes it observed - do not edit by hand; run",
        "`pytest tests/test_reliability.py` (the whole module) to regenerate it. Seed "
        f"{SEED}; project: the smoke pipeline reduced to dataset `{D}` (14 synthetic images, 32 px) and model "
        f"`{M}` ({ITERATIONS} iterations), CPU, 1 thread.",
        "",
        "Outcomes: *clear error* = the command stops with a message naming the file or option and what to do "
        "(exit 2 for a bad command line or params, 3 for a stage error); *clean recompute* = a cache or resume "
        "state is discarded, the reason logged, and the result equals an undamaged run's; *same result* = the "
        "damage hit bytes nothing reads, and the result equals the undamaged one; *bit-exact resume* = weights "
        "equal an uninterrupted run's, bit for bit; *refused* = nothing is loaded or written (a lock held by "
        "another process: exit 4, naming it). A wrong result fails the test.",
        "",
        "| Area | What was tried | Cases | Outcome | Notes |",
        "|---|---|---|---|---|",
    ]
    for (area, case), t in table.items():
        outcomes = "; ".join(f"{o} ×{n}" if len(t["outcomes"]) > 1 else o for o, n in t["outcomes"].items())
        lines.append(f"| {_md(area)} | {_md(case)} | {t['n']} | {_md(outcomes)} | {_md(_stable(t['detail']))} |")
    lines += ["", "## Bad inputs of the earlier issue", "",
              "Each run through the commands a user types (`fewgan params --datasets NAME`, `fewgan curate --dataset "
              "NAME`) on a folder source; the message is the command's own (temporary paths shortened).", "",
              "| Input | Exit code | Outcome |", "|---|---|---|"]
    lines += [f"| {_md(b['input'])} | {b['exit']} | {_md(b['outcome'])} |" for b in BAD_INPUTS]
    lines += ["", "## Hostile inputs at the door", "",
              "A hostile pass over the command line (issue 26), in a bare project; each case also checks that nothing "
              "was written outside the run's folder. The message is the command's own (stderr; for skipped images the "
              "skipped rows of manifest.csv; temporary paths shortened).", "",
              "| Input | Door | Exit code | Outcome | Message |", "|---|---|---|---|---|"]
    lines += [f"| {_md(h['input'])} | {_md(h['door'])} | {h['exit']} | {_md(h['outcome'])} | {_md(h['message'])} |"
              for h in HOSTILE]
    lines += ["", "## How", "",
              "- Hard kill: `fewgan <stage>` as a process, SIGKILLed at a seeded time or when a seeded output file is "
              "replaced, then re-run; after each kill every declared output (stage table) is absent or parses, and a "
              "`stage.json` vouches only for files written by the run it records (mtime window).",
              "- Damaged files: seeded truncations and byte flips; the reader every stage uses must raise an error "
              "naming the file or return exactly the undamaged value.",
              "- Malicious checkpoint: a torch file whose pickle creates a marker file when unpickled (checked: plain "
              "`pickle.loads` of its data.pkl does run it); the marker must never appear.",
              "- Two runs at once: a lock held by this test process, and real concurrent processes (fewgan, "
              "Snakemake, DVC).",
              "- Full disk: fewgan.io's file writes fail with ENOSPC half-way through a file.",
              "- Hostile inputs: crafted files (a real 1-bit PNG bomb, symlink loops, names with control characters, "
              "YAML alias bombs, duplicate keys, Python tags, Latin-1 bytes) through the commands a user types, "
              "in-process (an uncaught exception fails the test: no traceback); every entry under the temporary root "
              "is compared before and after.",
              ""]
    fio.atomic_write_text(DOC, "\n".join(lines))
    assert DOC.read_text().count("\n| ") >= len(table) + len(BAD_INPUTS) + len(HOSTILE)
