"""numpy's sort kernels on AMD Zen 4: AVX-512 off for numpy, so np.sort runs its AVX2 kernel (about 3x faster there).

numpy dispatches np.sort to x86-simd-sort's AVX-512 kernel on any CPU with AVX-512. That kernel partitions with
`vpcompressps` to memory, which Zen 4 (AMD family 25 with AVX-512) executes as slow microcode; numpy developers
benchmark that machine with these kernels off (numpy/numpy#32690; numpy/x86-simd-sort#6). Measured by
`python bench/bench_metrics.py --only sort` on an AMD EPYC Zen 4 with 2 cores: np.sort of 512 rows x 11,520
float32 values (one SWD bootstrap level: fewgan.metrics.bootstrap) took 97 ms with AVX-512 and 34 ms with
AVX2. A sort returns the same values whichever kernel runs.

`configure()` runs first thing in the `fewgan` command (fewgan.cli.main), before numpy is imported: on Zen 4 it
sets `NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL AVX512_SPR"` for that process and its children (Snakemake/DVC
jobs start `fewgan` again and decide the same). Importing fewgan as a library changes nothing; call `configure()`
before importing numpy to get the pipeline's kernels (the bench scripts do). Nothing is changed when
- the CPU is not Zen 4 (Intel's AVX-512 sort is its fastest; Zen 5 has a fast compress-store),
- the user set NPY_DISABLE_CPU_FEATURES already (their choice is kept),
- FEWGAN_NUMPY_AVX512=1 (keep numpy's AVX-512 kernels),
- numpy is already imported (too late for numpy to read the variable; `state()` reports the truth).
Every provenance block records `state()` (host.numpy_simd), so an output says which kernels made it.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Mapping, MutableMapping

ENV = "NPY_DISABLE_CPU_FEATURES"
SWITCH = "FEWGAN_NUMPY_AVX512"
ZEN4_DISABLED = "X86_V4 AVX512_ICL AVX512_SPR"
REASON = ("AMD Zen 4: numpy's AVX-512 sort kernel uses vpcompressps to memory (microcoded there, ~3x slower "
          "than its AVX2 kernel); fewgan set NPY_DISABLE_CPU_FEATURES (FEWGAN_NUMPY_AVX512=1 keeps AVX-512)")

_DECISION: dict[str, Any] = {"set_by_fewgan": False, "reason": None}


def is_zen4(cpuinfo: str) -> bool:
    """True for /proc/cpuinfo text of an AMD family-25 CPU with AVX-512 (Zen 4; Zen 3, family 25 too, has none)."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            if fields:
                break  # the first processor's block is enough
            continue
        fields.setdefault(key.strip().lower(), value.strip())
    return (fields.get("vendor_id") == "AuthenticAMD" and fields.get("cpu family") == "25"
            and "avx512f" in fields.get("flags", "").split())


def _read_cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return f.read(65536)
    except OSError:
        return ""


def configure(environ: MutableMapping[str, str] | None = None, modules: Mapping[str, Any] | None = None,
              cpuinfo: str | None = None) -> str | None:
    """Set NPY_DISABLE_CPU_FEATURES on Zen 4 (see the module doc); the reason when set, else None."""
    environ = os.environ if environ is None else environ
    modules = sys.modules if modules is None else modules
    if "numpy" in modules or ENV in environ or environ.get(SWITCH) == "1":
        return None
    if not is_zen4(_read_cpuinfo() if cpuinfo is None else cpuinfo):
        return None
    environ[ENV] = ZEN4_DISABLED
    if environ is os.environ:
        _DECISION.update(set_by_fewgan=True, reason=REASON)
    return REASON


def state() -> dict[str, Any]:
    """Which SIMD kernels numpy dispatches to in this process (provenance: host.numpy_simd)."""
    import numpy as np

    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:  # numpy < 2
        from numpy.core._multiarray_umath import __cpu_features__ as features
    return {"avx512": bool(features.get("AVX512F") and (features.get("X86_V4") or features.get("AVX512_SKX"))),
            "avx2": bool(features.get("AVX2") or features.get("X86_V3")),
            "disabled": os.environ.get(ENV), "set_by_fewgan": _DECISION["set_by_fewgan"],
            "reason": _DECISION["reason"], "numpy": np.__version__}
