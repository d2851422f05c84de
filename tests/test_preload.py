"""`fewgan preload -- COMMAND`: stages forked from a preloaded server write what fresh processes write."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from fewgan import preload

REPO = Path(__file__).resolve().parents[1]
FEWGAN = [sys.executable, "-m", "fewgan.cli"]
CELL = ["--dataset", "demo_faces", "--model", "dcgan", "--seed", "0"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != preload.ENV_SOCKET}
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _sh(*commands: list[str]) -> str:
    import shlex

    return " && ".join(" ".join(shlex.quote(c) for c in cmd) for cmd in commands)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("preload")
    shutil.copytree(REPO / "params", root / "params")
    for cmd in (["params", "--profile", "smoke"], ["curate", "--dataset", "demo_faces"],
                ["split", "--dataset", "demo_faces"]):
        subprocess.run(FEWGAN + cmd, cwd=root, env=_env(), check=True, capture_output=True)
    return root


#: what Snakemake puts in a job's environment (its threads, resources.tmpdir): a fork applies them itself
JOB_ENV = ["env", "OMP_NUM_THREADS=1", "MKL_NUM_THREADS=1", "OPENBLAS_NUM_THREADS=1", "GOTO_NUM_THREADS=1",
           "TMPDIR=" + os.path.realpath(__import__("tempfile").gettempdir())]


def _stages(out: str) -> list[list[str]]:
    train = f"runs/{out}/train"
    return [JOB_ENV + FEWGAN + ["train", *CELL, "--out", train, "--threads", "1"],
            JOB_ENV + FEWGAN + ["score", *CELL, "--train-dir", train, "--out", f"runs/{out}/score", "--threads", "1"]]


@pytest.mark.slow
def test_preloaded_stages_write_what_fresh_processes_write(project):
    plain = subprocess.run(["sh", "-c", _sh(*_stages("plain"))], cwd=project, env=_env(), capture_output=True,
                           text=True)
    assert plain.returncode == 0, plain.stderr[-2000:]
    pre = subprocess.run(FEWGAN + ["preload", "--", "sh", "-c", _sh(*_stages("pre"))], cwd=project, env=_env(),
                         capture_output=True, text=True)
    assert pre.returncode == 0, pre.stderr[-2000:]
    assert "2 stages served, 0 ran in their own process" in pre.stderr
    assert "train finished" in pre.stderr and "score finished" in pre.stderr  # the stages' logs reach the job
    a, b = project / "runs/plain", project / "runs/pre"
    snaps = sorted(p.relative_to(a / "train") for p in (a / "train/snapshots").glob("*.pt"))
    assert snaps and snaps == sorted(p.relative_to(b / "train") for p in (b / "train/snapshots").glob("*.pt"))
    for rel in snaps:  # the RNG-driven training is bit for bit the same
        sa = torch.load(a / "train" / rel, map_location="cpu", weights_only=True)
        sb = torch.load(b / "train" / rel, map_location="cpu", weights_only=True)
        ta = {k: v for k, v in _tensors(sa)}
        tb = {k: v for k, v in _tensors(sb)}
        assert ta.keys() == tb.keys() and ta
        assert all(torch.equal(ta[k], tb[k]) for k in ta), rel
    sa, sb = pd.read_csv(a / "score/scores.csv"), pd.read_csv(b / "score/scores.csv")
    cols = [c for c in sa.columns if c != "seconds"]
    pd.testing.assert_frame_equal(sa[cols], sb[cols], check_exact=True)
    ja, jb = (json.loads((d / "score/scores.json").read_text())["provenance"]["host"] for d in (a, b))
    assert ja.get("numpy_simd") == jb.get("numpy_simd")  # numpy's kernels recorded the same way
    rec = json.loads((b / "train/stage.json").read_text())
    assert rec["argv"][:2] == ["train", "--dataset"] and isinstance(rec["preload_server"], int)
    assert json.loads((a / "train/stage.json").read_text())["preload_server"] is None


def _tensors(obj, prefix=""):
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _tensors(v, f"{prefix}.{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _tensors(v, f"{prefix}[{i}]")


@pytest.mark.slow
def test_exit_codes_errors_and_refusals_reach_the_job(project):
    # one server: a stage's error (its message and exit code reach the job), a job whose import-time variable
    # differs from the server's (runs in its own process and says why), then COMMAND's own exit status
    split = (["env", "ATEN_CPU_CAPABILITY=default"] + FEWGAN
             + ["split", "--dataset", "demo_faces", "--out", "data/splits/again"])
    script = (_sh(FEWGAN + ["curate", "--dataset", "nope"]) + "; echo curate-exit=$?; " + _sh(split)
              + " && echo split-ok; exit 7")
    r = subprocess.run(FEWGAN + ["preload", "--", "sh", "-c", script], cwd=project, env=_env(), capture_output=True,
                       text=True)
    assert r.returncode == 7, r.stderr[-2000:]
    assert "curate-exit=2" in r.stdout and "'nope'" in r.stderr
    assert "split-ok" in r.stdout and "ATEN_CPU_CAPABILITY" in r.stderr and "running in this process" in r.stderr
    assert "1 stages served, 1 ran in their own process" in r.stderr
    assert (project / "data/splits/again/stage.json").is_file()
    r = subprocess.run(FEWGAN + ["preload"], cwd=project, env=_env(), capture_output=True, text=True)
    assert r.returncode == 2 and "give the command to run" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(FEWGAN + ["preload", "--", "no-such-command-xyz"], cwd=project, env=_env(),
                       capture_output=True, text=True)
    assert r.returncode == 2 and "cannot start 'no-such-command-xyz'" in r.stderr and "Traceback" not in r.stderr


def test_no_server_means_a_fresh_process_and_a_message(project, tmp_path):
    env = _env() | {preload.ENV_SOCKET: str(tmp_path / "gone.sock")}
    r = subprocess.run(FEWGAN + ["split", "--dataset", "demo_faces", "--out", "data/splits/nosrv"], cwd=project,
                       env=env, capture_output=True, text=True)
    assert r.returncode == 0 and "unreachable" in r.stderr and "running in this process" in r.stderr


def test_refusal_reasons(tmp_path, monkeypatch):
    server = preload._Server(str(tmp_path / "s"))
    try:
        f = tmp_path / "mod.py"
        f.write_text("x = 1\n")
        st = f.stat()
        server.files = {str(f): (st.st_mtime_ns, st.st_size)}
        req = {"python": preload._python(), "fewgan": preload._fewgan_root(), "env": dict(os.environ)}
        assert server.why_not(req) is None
        assert "Python" in server.why_not(req | {"python": ["/usr/bin/python0", sys.prefix, sys.version]})
        assert "Python" in server.why_not(req | {"python": [os.path.realpath(sys.executable), "/other/venv",
                                                            sys.version]})
        assert "fewgan" in server.why_not(req | {"fewgan": "/elsewhere/fewgan"})
        assert "CUDA_VISIBLE_DEVICES" in server.why_not(req | {"env": req["env"] | {"CUDA_VISIBLE_DEVICES": "7"}})
        assert server.why_not(req | {"env": req["env"] | {"SNAKEMAKE_JOB": "x"}}) is None  # not read at import
        # Snakemake's per-job threads and temporary folder: applied by the fork, not a reason to refuse
        job = req["env"] | {"OMP_NUM_THREADS": "8", "MKL_NUM_THREADS": "8", "OPENBLAS_NUM_THREADS": "8",
                            "GOTO_NUM_THREADS": "8", "TMPDIR": tempfile.gettempdir(), "TEMP": tempfile.gettempdir(),
                            "TMP": tempfile.gettempdir(), "TEMPDIR": tempfile.gettempdir()}  # Snakemake 9's job
        assert server.why_not(req | {"env": job}) is None and preload.job_threads(job) == 8
        assert "not one positive count" in server.why_not(req | {"env": job | {"MKL_NUM_THREADS": "2"}})
        assert "not one positive count" in server.why_not(req | {"env": job | {"OMP_NUM_THREADS": "0"}})
        assert "temporary folder" in server.why_not(req | {"env": job | {"TMPDIR": str(tmp_path)}})
        assert preload.job_threads({"PATH": "/bin"}) is None
        server.cuda = "an import initialised CUDA in the server"
        assert "CUDA" in server.why_not(req)
        server.cuda = None
        time.sleep(0.01)
        f.write_text("x = 22\n")
        assert "changed since the server imported it" in server.why_not(req)
    finally:
        server.sel.close()
        server.listener.close()


def test_a_stage_whose_job_vanished_is_terminated(tmp_path):
    server = preload._Server(str(tmp_path / "s"))
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # stands in for a forked stage that would run for a long time
        try:
            ours.close()
            theirs.close()
            time.sleep(60)
        finally:
            os._exit(0)
    try:
        server.children[pid] = ours
        server.sel.register(ours, 1)
        theirs.close()  # the job was killed (SIGKILL): its end of the connection closes
        deadline = time.monotonic() + 10
        while pid in server.children and time.monotonic() < deadline:
            server.serve_once(0.05)
        assert pid not in server.children
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reaped by the server
    finally:
        if pid in server.children:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        server.sel.close()
        server.listener.close()


_FAKE_SERVER = """
import os, signal, sys, time
from fewgan import preload

def long_stage(req, fds, added):  # stands in for _run_child: a stage that runs until it is signalled
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.setpgid(0, 0)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    print("stage running", flush=True)
    time.sleep(60)
    os._exit(0)

preload._run_child = long_stage
server = preload._Server(sys.argv[1])
while True:
    server.serve_once(0.05)
"""


def test_a_signal_to_the_job_reaches_its_stage_and_its_status_comes_back(tmp_path):
    sock = str(tmp_path / "s")
    server = subprocess.Popen([sys.executable, "-c", _FAKE_SERVER, sock], env=_env())
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(sock) and time.monotonic() < deadline:
            time.sleep(0.05)
        job = subprocess.Popen([sys.executable, "-c", "import sys; from fewgan.preload import delegate; "
                                "sys.exit(delegate(['split']))"], env=_env() | {preload.ENV_SOCKET: sock},
                               stdout=subprocess.PIPE, text=True)
        assert job.stdout.readline().strip() == "stage running"  # the stage writes to the job's stdout
        job.send_signal(signal.SIGTERM)
        assert job.wait(timeout=30) == 128 + signal.SIGTERM  # forwarded; the stage's fate is the job's status
    finally:
        server.kill()
        server.wait()


def test_job_threads_are_applied_as_a_fresh_process_reads_them():
    """Snakemake's OMP_NUM_THREADS=8 on a 2-core machine: torch takes 8, OpenBLAS at most the CPUs (as it does
    when it loads), never 8 threads spinning on 2 cores."""
    code = ("import json, os, numpy, threadpoolctl, torch; from fewgan import preload; "
            "print(json.dumps([preload.apply_job_threads(int(os.environ['N'])), torch.get_num_threads(), "
            "[p['num_threads'] for p in threadpoolctl.threadpool_info() if p['user_api'] == 'blas']]))")
    cpus = len(os.sched_getaffinity(0))
    for n in (1, cpus + 6):
        out = subprocess.run([sys.executable, "-c", code], env=_env() | {"N": str(n)}, capture_output=True, text=True,
                             check=True).stdout
        applied, torch_threads, blas = json.loads(out)
        assert applied == {"torch": n, "blas": min(n, cpus)} and torch_threads == n
        assert blas and all(b == min(n, cpus) for b in blas)


@pytest.mark.slow
def test_make_demo_path_snakemake_under_preload(tmp_path):
    """What `make demo` runs, on the smoke profile cut to one model: every job served by the fork server,
    each stage.json naming it, the report written, and Snakemake finding nothing left to do."""
    for name in ("workflow", "params", "src"):  # src: the stages' declared code dependencies
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copy(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    env = _env() | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    subprocess.run(FEWGAN + ["params", "--profile", "smoke", "--models", "dcgan"], cwd=tmp_path, env=env, check=True,
                   capture_output=True)
    r = subprocess.run(FEWGAN + ["preload", "--", "snakemake", "--cores", "2", "all"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-4000:]
    served = [line for line in r.stderr.splitlines() if "stages served" in line]
    assert served and served[-1].rstrip().endswith("0 ran in their own process"), served
    records = list(tmp_path.glob("runs/*/*/*/*/stage.json")) + list(tmp_path.glob("data/*/*/stage.json"))
    assert len(records) >= 7  # curate, split, train, score, select, invert, evaluate
    assert all(isinstance(json.loads(p.read_text())["preload_server"], int) for p in records)
    assert (tmp_path / "reports/benchmark/index.html").is_file()
    again = subprocess.run(["snakemake", "--cores", "1", "-n", "all"], cwd=tmp_path, env=env, capture_output=True,
                           text=True)
    assert "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.slow
def test_ctrl_c_stops_a_forked_training_with_its_resume_state_saved(project, tmp_path):
    """The terminal's Ctrl-C (SIGINT to the foreground process group: the server and the job) reaches a forked
    `fewgan train`: it finishes the iteration, saves its resume state and says so, and the job's status is the
    stage's (3: an interruption that explains itself)."""
    import psutil
    import yaml

    here = tmp_path / "p"
    shutil.copytree(project, here, ignore=shutil.ignore_patterns("runs", "work", "logs", ".fewgan"))
    active = here / "params" / "active.yaml"
    p = yaml.safe_load(active.read_text())
    p["train"]["iterations"] = 100000  # long enough to be interrupted
    active.write_text(yaml.safe_dump(p, sort_keys=False))
    proc = subprocess.Popen(FEWGAN + ["preload", "--", *FEWGAN, "train", *CELL, "--threads", "1"], cwd=here,
                            env=_env(), stderr=subprocess.PIPE, text=True, start_new_session=True)
    lines = []
    try:
        for line in proc.stderr:  # the stage's log reaches the job's stderr, then this pipe
            lines.append(line)
            if "starting demo_faces/dcgan" in line:
                break
        time.sleep(1.0)
        assert psutil.Process(proc.pid).children()  # COMMAND here is the `fewgan train` job itself
        os.killpg(proc.pid, signal.SIGINT)  # as the terminal's Ctrl-C: to the foreground group (server and job)
        _, rest = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = "".join(lines) + rest
    assert proc.returncode == 3, err[-3000:]  # TrainingInterrupted: a stage error that explains itself
    assert err.count("received SIGINT") == 1 and "aborting without saving" not in err
    assert "resume state saved to" in err and "1 stages served" in err
    assert (here / "work/demo_faces/dcgan/s0/resume.pt").is_file()
