"""fewgan.numpy_simd: numpy's AVX-512 kernels are turned off on AMD Zen 4 only, before numpy is imported, never
over the user's own setting, and the provenance says which kernels ran."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from fewgan import numpy_simd
from fewgan.numpy_simd import ENV, SWITCH, ZEN4_DISABLED, configure, is_zen4

SRC = Path(__file__).resolve().parents[1] / "src"


def cpuinfo(vendor: str, family: int, flags: str) -> str:
    block = (f"processor\t: {{i}}\nvendor_id\t: {vendor}\ncpu family\t: {family}\nmodel\t\t: 17\n"
             f"model name\t: test CPU\nflags\t\t: fpu sse2 avx2 {flags}\n\n")
    return block.format(i=0) + block.format(i=1)


ZEN4 = cpuinfo("AuthenticAMD", 25, "avx512f avx512bw avx512_bf16")
ZEN3 = cpuinfo("AuthenticAMD", 25, "")
ZEN5 = cpuinfo("AuthenticAMD", 26, "avx512f avx512bw")
XEON = cpuinfo("GenuineIntel", 6, "avx512f avx512bw amx_bf16 amx_tile")


def test_only_zen4_is_zen4():
    assert is_zen4(ZEN4)
    assert not is_zen4(ZEN3)  # family 25 without AVX-512: numpy never uses its AVX-512 sort there
    assert not is_zen4(ZEN5)  # fast compress-store
    assert not is_zen4(XEON)  # Intel: AVX-512 is x86-simd-sort's fastest path
    assert not is_zen4("")
    # a flag name that merely contains avx512f is not avx512f
    assert not is_zen4(cpuinfo("AuthenticAMD", 25, "xavx512fx"))


def test_configure_sets_the_variable_on_zen4_only():
    env: dict[str, str] = {}
    assert configure(env, modules={}, cpuinfo=ZEN4) == numpy_simd.REASON
    assert env == {ENV: ZEN4_DISABLED}
    for other in (ZEN3, ZEN5, XEON):
        env = {}
        assert configure(env, modules={}, cpuinfo=other) is None and env == {}


def test_configure_keeps_the_users_choice_and_respects_the_switch_and_a_late_call():
    env = {ENV: "AVX512_SKX"}
    assert configure(env, modules={}, cpuinfo=ZEN4) is None and env == {ENV: "AVX512_SKX"}
    env = {SWITCH: "1"}
    assert configure(env, modules={}, cpuinfo=ZEN4) is None and ENV not in env
    env = {}
    assert configure(env, modules={"numpy": object()}, cpuinfo=ZEN4) is None and env == {}


def _state_in_child(env: dict[str, str], how: str = "cli") -> dict:
    # what `fewgan <stage>` does first (fewgan.cli.main), then numpy; a plain `import fewgan` changes nothing
    code = ("import json, sys, fewgan.numpy_simd as s; s.configure() if sys.argv[1] == 'cli' else None; "
            "import numpy; print(json.dumps(s.state()))")
    out = subprocess.run([sys.executable, "-c", code, how], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_fresh_process_decides_by_its_cpu_and_records_it():
    base = {k: v for k, v in os.environ.items() if k not in (ENV, SWITCH)}
    base["PYTHONPATH"] = str(SRC) + os.pathsep + base.get("PYTHONPATH", "")
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        zen4 = is_zen4(f.read())
    st = _state_in_child(base)
    assert st["set_by_fewgan"] is zen4
    assert st["disabled"] == (ZEN4_DISABLED if zen4 else None)
    if zen4:
        assert st["avx512"] is False and st["avx2"] is True and "Zen 4" in st["reason"]
    kept = _state_in_child(base | {SWITCH: "1"})
    assert kept["set_by_fewgan"] is False and kept["disabled"] is None
    library = _state_in_child(base, how="library")  # importing fewgan's modules alone leaves numpy as it is
    assert library["set_by_fewgan"] is False and library["disabled"] is None


def test_the_cli_configures_numpy_before_it_is_imported():
    """`fewgan` (fewgan.cli.main) calls configure() before anything imports numpy; importing fewgan.cli does not
    import numpy, so the call is never too late."""
    code = "import sys, fewgan.cli; print('numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", "")))
    assert out.stdout.strip() == "False"
    import inspect

    from fewgan import cli

    body = inspect.getsource(cli.main)
    assert body.index("configure()") < body.index("parse_args")


def test_both_kernels_sort_to_the_same_values():
    """A sort is exact: the AVX2 and AVX-512 kernels (or whatever this CPU dispatches to) agree bit for bit (up to
    the order of -0.0 and 0.0, which compare equal and are not drawn here)."""
    code = ("import numpy as np, hashlib; x = np.random.default_rng(3).standard_normal((64, 11520))"
            ".astype(np.float32); x[0, :6] = [0.0, np.inf, -np.inf, 1e-45, -1e-45, 0.0]; "
            "print(hashlib.sha256(np.sort(x, axis=-1).tobytes()).hexdigest())")
    env = {k: v for k, v in os.environ.items() if k not in (ENV, SWITCH)}
    hashes = {subprocess.run([sys.executable, "-c", code], env=env | extra, capture_output=True, text=True,
                             check=True).stdout.strip() for extra in ({}, {ENV: ZEN4_DISABLED})}
    assert len(hashes) == 1
    x = np.random.default_rng(3).standard_normal((64, 11520)).astype(np.float32)
    assert np.all(np.diff(np.sort(x, axis=-1), axis=-1) >= 0)
