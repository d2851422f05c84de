"""`fewgan preload -- COMMAND ...`: run a pipeline (Snakemake, DVC) with torch & co. imported once, not per stage.

Every `fewgan <stage>` process spends about 3 s importing torch, torchvision (which imports torch._dynamo), timm,
lpips, torch-fidelity and matplotlib before it computes anything; the demo starts about 30 such processes. Under
`fewgan preload -- snakemake --cores 8 all` (or `-- dvc repro`) this process imports them once, starts COMMAND
with FEWGAN_PRELOAD_SOCKET set, and serves it: each `fewgan <stage>` that COMMAND starts sends its command line,
working directory, environment and standard streams over that Unix socket, and this process forks a child that
runs the stage exactly as `fewgan.cli.main` would, in a copy of the already-imported interpreter (the fork-server
of multiprocessing's "forkserver", or a build tool's daemon, scoped to one command: it exits with COMMAND, and
COMMAND's exit status is its own). The stage's outputs are those of a fresh process: same code, same inputs,
the RNGs a fresh interpreter starts with (tests/test_preload.py compares the files).

A job runs in its own process instead - and says why on stderr, nothing silent - when the server cannot vouch
for the copy: another Python executable or fewgan tree, an environment variable read at import time that
differs from the server's (IMPORT_ENV_PREFIXES: thread counts, numpy's CPU features, CUDA, PYTHON*, ...), a
loaded module file changed since the server imported it, or the server is gone. Signals reach the stage:
the job forwards SIGINT/SIGTERM/SIGHUP to it, and a stage whose job vanished (SIGKILL) is terminated.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import selectors
import signal
import socket
import struct
import sys
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)

ENV_SOCKET = "FEWGAN_PRELOAD_SOCKET"
#: imported by the server before it serves, with every stage's entry module (fewgan.stages); a module missing
#: here is imported by the stage itself: slower, never wrong
PRELOAD = ("numpy", "threadpoolctl", "torch", "torchvision", "timm", "lpips", "torch_fidelity", "matplotlib",
           "matplotlib.pyplot", "scipy", "PIL.Image", "pandas", "fewgan.metrics.effnet", "fewgan.nets.lpips",
           "fewgan.models.registry")
#: environment variables that libraries read when they are imported: a job whose values differ from the
#: server's runs in its own process (matplotlib reads HOME/MPL*, huggingface_hub HF_*, numpy NPY_*, ...)
IMPORT_ENV_PREFIXES = ("ATEN_", "ONEDNN_", "DNNL_", "MKLDNN", "OMP_", "KMP_", "GOMP_", "MKL_", "OPENBLAS_", "GOTO",
                       "BLIS_", "NPY_", "NUMPY_", "TORCH", "PYTORCH", "CUDA", "CUBLAS", "CUDNN", "NCCL", "NVIDIA",
                       "HIP", "ROCM", "LD_", "PYTHON", "MALLOC", "GLIBC", "MPL", "MATPLOTLIB", "TRITON", "TIMM",
                       "HF_", "HUGGINGFACE", "XDG_", "FEWGAN_NUMPY", "HOME", "TMPDIR", "TZ", "LANG", "LC_")
#: the thread-count variables Snakemake sets per job (its `threads`): the stage's copy applies them itself (torch's
#: and the BLAS libraries' pools, threadpoolctl), as a fresh process would read them at import
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS")
#: the temporary-file directory Snakemake sets per job (resources.tmpdir; it sets TEMPDIR too, which Python's
#: tempfile does not read): compared as the folder tempfile resolves from them
TMP_VARS = ("TMPDIR", "TEMP", "TMP")
_HEADER = struct.Struct("!Q")
#: in a stage forked by the server: the server's pid (stage.json records it as "preload_server")
SERVER_PID: int | None = None


def _quiet():
    """Ignore what a process or connection that already went away raises."""
    return contextlib.suppress(OSError, KeyError)


def signal_stage(pid: int, signum: int) -> None:
    """Signal a forked stage and what it started (it leads its own process group once it runs)."""
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):  # not yet its own group, or already gone
        with _quiet():
            os.kill(pid, signum)


def _import_env(environ) -> dict[str, str]:
    """The variables read at import that must be equal, with the temporary folder as tempfile resolves it."""
    env = {k: v for k, v in environ.items() if k.startswith(IMPORT_ENV_PREFIXES) and k not in THREAD_VARS + TMP_VARS}
    tmp = next((environ[k] for k in TMP_VARS if environ.get(k)), None)
    env["(temporary folder)"] = os.path.realpath(tmp if tmp and os.path.isdir(tmp) else tempfile.gettempdir())
    return env


def job_threads(environ) -> int | None:
    """The thread count a job's environment asks for (THREAD_VARS), None when it sets none; a ValueError when
    they disagree or are not positive integers."""
    values = {k: environ[k] for k in THREAD_VARS if environ.get(k)}
    counts = set(values.values())
    if not counts:
        return None
    count = counts.pop()
    if counts or not count.isdigit() or int(count) < 1:
        raise ValueError(f"thread variables {values} are not one positive count")
    return int(count)


def apply_job_threads(threads: int) -> dict[str, int]:
    """What OMP_NUM_THREADS & co. = `threads` do when a fresh process loads torch and numpy: torch's pool (libgomp
    takes the count as given) and the BLAS pools (OpenBLAS caps it at the CPUs it may use when it loads; set at
    run time it would start as many as asked: Snakemake's 8 on 2 cores made numpy's matmuls 6x slower).
    Returns {"torch": ..., "blas": ...}."""
    import threadpoolctl
    import torch

    torch.set_num_threads(threads)
    blas = min(threads, len(os.sched_getaffinity(0)))
    threadpoolctl.threadpool_limits(limits=blas, user_api="blas")
    return {"torch": threads, "blas": blas}


def _python() -> list[str]:
    """The interpreter and environment: `python` and `python3` of one venv are the same, two venvs are not."""
    return [os.path.realpath(sys.executable), sys.prefix, sys.version]


def _fewgan_root() -> str:
    return str(Path(__file__).resolve().parent)


# --------------------------------------------------------------------------------------------------
# the job side: `fewgan <stage>` with FEWGAN_PRELOAD_SOCKET set
# --------------------------------------------------------------------------------------------------
def delegate(argv: list[str]) -> int | None:
    """Run `fewgan argv` in the preload server named by FEWGAN_PRELOAD_SOCKET; its exit code, or None when it
    must run in this process (the reason is printed)."""
    path = os.environ.get(ENV_SOCKET)
    if not path:
        return None
    request = {"argv": list(argv), "argv0": sys.argv[0], "cwd": os.getcwd(), "env": dict(os.environ),
               "python": _python(), "fewgan": _fewgan_root()}
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        body = json.dumps(request).encode()
        socket.send_fds(sock, [_HEADER.pack(len(body)) + body], [0, 1, 2])
        reader = sock.makefile("rb")
        reply = json.loads(reader.readline() or b"{}")
    except OSError as exc:
        print(f"fewgan: preload server {path} unreachable ({exc}): running in this process", file=sys.stderr)
        return None
    if "refused" in reply or "pid" not in reply:
        print(f"fewgan: preload server: {reply.get('refused', 'no answer')}: running in this process",
              file=sys.stderr)
        return None
    pid = int(reply["pid"])

    def forward(signum, _frame):
        signal_stage(pid, signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, forward)
    line = reader.readline()  # the stage's exit status (PEP 475: signals do not interrupt the wait)
    status = json.loads(line or b'{"exit": 1, "lost": true}')
    if status.get("lost"):
        print(f"fewgan: preload server {path} closed the connection before the stage {pid} reported an exit "
              "status", file=sys.stderr)
    return int(status["exit"])


# --------------------------------------------------------------------------------------------------
# the server side: `fewgan preload -- COMMAND ...`
# --------------------------------------------------------------------------------------------------
def _loaded_files() -> dict[str, tuple[int, int]]:
    out = {}
    for mod in list(sys.modules.values()):
        f = getattr(mod, "__file__", None)
        if f:
            try:
                st = os.stat(f)
            except OSError:
                continue
            out[f] = (st.st_mtime_ns, st.st_size)
    return out


class _Server:
    def __init__(self, sock_path: str):
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(sock_path)
        self.listener.listen(64)
        self.children: dict[int, socket.socket] = {}  # stage pid -> its job's connection
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.listener, selectors.EVENT_READ)
        self.files: dict[str, tuple[int, int]] = {}
        self.env = _import_env(os.environ)  # as the server was started (what a job's environment is compared with)
        self.added: dict[str, str] = {}  # variables the imports themselves set (torch: TORCHINDUCTOR_CACHE_DIR)
        self.served = self.refused = 0
        self.cuda: str | None = None  # why no fork may run, when the preload touched CUDA

    def preload(self) -> float:
        import importlib

        from fewgan.stages import STAGES

        t0 = time.perf_counter()
        before = dict(os.environ)
        for name in PRELOAD + tuple(s.entry.split(":")[0] for s in STAGES):
            try:
                importlib.import_module(name)
            except ImportError as exc:  # an optional package: the stage imports what it needs itself
                log.info("preload: %s not imported (%s)", name, exc)
        self.files = _loaded_files()
        self.added = {k: v for k, v in os.environ.items() if before.get(k) != v}
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_initialized():  # a fork could not use the GPU any more
            self.cuda = "an import initialised CUDA in the server; a forked stage could not use the GPU"
            log.warning("preload: %s: every job runs in its own process", self.cuda)
        return time.perf_counter() - t0

    def why_not(self, req: dict) -> str | None:
        """None when a fork of this server runs `req` as a fresh process would, else the reason."""
        if self.cuda:
            return self.cuda
        if req.get("python") != _python():
            return f"job's Python {req.get('python')} is not the server's {_python()}"
        if req.get("fewgan") != _fewgan_root():
            return f"job's fewgan {req.get('fewgan')} is not the server's {_fewgan_root()}"
        try:
            threads = job_threads(req.get("env", {}))
        except ValueError as exc:
            return str(exc)
        if threads is None and job_threads(os.environ) is not None:
            return f"the server runs with {', '.join(k for k in THREAD_VARS if os.environ.get(k))} set, the job without"
        env = _import_env(req.get("env", {}))
        diff = sorted(k for k in set(env) | set(self.env) if env.get(k) != self.env.get(k))
        if diff:
            return f"environment read at import differs from the server's: {', '.join(diff[:5])}"
        for f, stamp in self.files.items():
            try:
                st = os.stat(f)
            except OSError:
                return f"{f} is gone since the server imported it"
            if (st.st_mtime_ns, st.st_size) != stamp:
                return f"{f} changed since the server imported it"
        return None

    def handle(self, conn: socket.socket) -> None:
        fds: list[int] = []
        try:
            conn.settimeout(10.0)  # a connection that sends nothing must not stall the jobs behind it
            data, fds, _flags, _addr = socket.recv_fds(conn, 1 << 16, 3)
            if len(data) < _HEADER.size or len(fds) != 3:
                raise ValueError("malformed request")
            size = _HEADER.unpack_from(data)[0]
            body = bytearray(data[_HEADER.size:])
            while len(body) < size:
                more = conn.recv(size - len(body))
                if not more:
                    raise ValueError("truncated request")
                body += more
            req = json.loads(bytes(body))
        except (OSError, ValueError) as exc:
            log.warning("preload: bad request (%s)", exc)
            for fd in fds:
                os.close(fd)
            conn.close()
            return
        why = self.why_not(req)
        if why:
            self.refused += 1
            log.warning("preload: %s runs in its own process: %s", " ".join(req["argv"][:1]), why)
            for fd in fds:
                os.close(fd)
            with _quiet():
                conn.sendall(json.dumps({"refused": why}).encode() + b"\n")
            conn.close()
            return
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the stage: never returns into the server's code
            self.sel.close()
            self.listener.close()
            for other in [conn, *self.children.values()]:
                other.close()
            _run_child(req, fds, self.added)
        for fd in fds:
            os.close(fd)
        self.served += 1
        self.children[pid] = conn
        self.sel.register(conn, selectors.EVENT_READ)  # readable only when the job goes away
        with _quiet():
            conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")

    def serve_once(self, timeout: float) -> None:
        for key, _ in self.sel.select(timeout=timeout):
            if key.fileobj is self.listener:
                self.handle(self.listener.accept()[0])
            else:  # a job closed its connection before its stage ended (killed): end the stage too
                self.sel.unregister(key.fileobj)
                for pid, c in self.children.items():
                    if c is key.fileobj:
                        signal_stage(pid, signal.SIGTERM)
        self.reap()

    def reap(self) -> None:
        for pid in list(self.children):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                conn = self.children.pop(pid)
                with _quiet():
                    self.sel.unregister(conn)
                code = os.waitstatus_to_exitcode(status)
                with _quiet():
                    conn.sendall(json.dumps({"exit": code if code >= 0 else 128 - code}).encode() + b"\n")
                conn.close()

    def stop_children(self, grace: float = 10.0) -> None:
        for pid in self.children:
            signal_stage(pid, signal.SIGTERM)
        end = time.monotonic() + grace
        while self.children and time.monotonic() < end:
            self.reap()
            time.sleep(0.05)
        for pid in self.children:
            signal_stage(pid, signal.SIGKILL)
        self.reap()


def _run_child(req: dict, fds: list[int], added: dict[str, str]) -> None:
    """In the forked stage: become the job (streams, directory, environment, fresh RNGs) and run the CLI."""
    import atexit
    import random
    import threading

    global SERVER_PID
    SERVER_PID = os.getppid()
    code = 1
    try:
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.setpgid(0, 0)  # the terminal's Ctrl-C reaches the stage once, forwarded by its job (not twice)
        os.chdir(req["cwd"])
        os.environ.clear()
        os.environ.update(req["env"])
        os.environ.update(added)  # what the imports set in a fresh process too
        os.environ.pop(ENV_SOCKET, None)  # the stage's own children (git, torchrun) start fresh
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        sys.argv = [req.get("argv0") or "fewgan", *req["argv"]]
        tempfile.tempdir = None  # resolved again from the job's TMPDIR (the same folder: why_not)
        threads = job_threads(os.environ)
        if threads is not None:
            apply_job_threads(threads)
        random.seed()  # a fresh interpreter seeds these from the OS; the fork would share the server's
        if "numpy" in sys.modules:
            sys.modules["numpy"].random.seed()
        if "torch" in sys.modules:  # torch's default generator as a fresh interpreter has it
            import torch

            torch.manual_seed(torch.initial_seed())
        from fewgan import cli

        code = cli.main(req["argv"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        code = 128 + signal.SIGINT
    except BaseException:  # noqa: BLE001 - the traceback a fresh interpreter would print
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        try:  # what interpreter shutdown does: join worker threads, run atexit, flush
            threading._shutdown()  # noqa: SLF001 - as multiprocessing's forked children do
            atexit._run_exitfuncs()  # noqa: SLF001
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(int(code) & 0xFF)


def run(command: list[str]) -> int:
    """`fewgan preload -- COMMAND ...`: COMMAND's exit status."""
    import subprocess

    if not command:
        raise ValueError("fewgan preload: give the command to run after '--', e.g. "
                         "`fewgan preload -- snakemake --cores 8 all`")
    tmp = tempfile.mkdtemp(prefix="fewgan-preload-")
    path = os.path.join(tmp, "socket")
    server = _Server(path)
    env = dict(os.environ, **{ENV_SOCKET: path})
    try:
        proc = subprocess.Popen(command, env=env)
    except OSError as exc:
        server.listener.close()
        os.unlink(path)
        os.rmdir(tmp)
        raise FileNotFoundError(f"cannot start {command[0]!r}: {exc}") from None

    def on_signal(signum, _frame):  # the command decides how to wind down; its stages get it from it
        with _quiet():
            proc.send_signal(signum)

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the terminal's Ctrl-C reaches COMMAND, its jobs forward it
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    seconds = server.preload()
    log.info("preload: imported %d modules in %.1f s; serving %s", len(server.files), seconds, " ".join(command))
    try:
        while proc.poll() is None:
            server.serve_once(0.1)
    finally:
        server.stop_children()
        server.sel.close()
        server.listener.close()
        with _quiet():
            os.unlink(path)
        with _quiet():
            os.rmdir(tmp)
    log.info("preload: %d stages served, %d ran in their own process", server.served, server.refused)
    return proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
