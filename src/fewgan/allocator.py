"""CPU memory allocator setting for the heavy stages (params: resources.cpu_allocator).

On glibc, every block above the mmap threshold (at most 32 MB) is a fresh `mmap`, and freeing it
unmaps it: a 256-px FastGAN step allocates hundreds of activation tensors of 10-130 MB, so each one
is page-faulted in again, zero-filled by the kernel, on every iteration. Measured with
`bench/bench_fastgan.py` on the 2-core CI machine: 8.3 M minor page faults and 27 s of system time
in four iterations; the step took 23.9 s. With `retain` (mmap off, no trimming) the same step takes
16.7 s (1.43x) with 1.5 M faults, at the price of a higher resident set (peak 6.0 vs 5.5 GB),
because freed memory stays in the process for the next iteration.

* ``retain`` (default): glibc `mallopt(M_MMAP_MAX, 0)` and `mallopt(M_TRIM_THRESHOLD, 2 GiB - 1)`,
  applied in-process at stage start. Not glibc, or an allocator preloaded with LD_PRELOAD (jemalloc,
  tcmalloc: they cache by themselves): nothing is changed and the reason is recorded.
* ``system``: leave the C allocator as the system configured it.

Numerics are unaffected (only where memory comes from); the choice and whether it was applied go
into each stage's `stage.json`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import platform

log = logging.getLogger(__name__)

MODES = ("retain", "system")
# glibc malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_TRIM_THRESHOLD = 2**31 - 1  # mallopt takes a C int: the largest threshold it accepts

_applied: dict | None = None


def _glibc():
    if platform.system() != "Linux":
        return None
    libc_name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(libc_name)
    except OSError:
        return None
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
        return None  # musl and others: no glibc mallopt
    return libc


def configure_allocator(mode: str = "retain") -> dict:
    """Apply `mode` once per process; returns what was done (for stage.json and logs)."""
    global _applied
    if mode not in MODES:
        raise ValueError(f"resources.cpu_allocator={mode!r}: unknown; use one of {MODES} (params/resources.yaml)")
    if _applied is not None and _applied["mode"] == mode:
        return dict(_applied)
    info: dict = {"mode": mode, "applied": False}
    if mode == "system":
        if _applied is not None and _applied["applied"]:  # mallopt settings cannot be taken back
            info.update(mode="retain", applied=True,
                        detail=_applied["detail"] + "; 'system' asked later in the same process: kept")
        else:
            info["detail"] = "system allocator settings left unchanged"
    else:
        preload = os.environ.get("LD_PRELOAD", "")
        libc = _glibc()
        if any(name in preload for name in ("jemalloc", "tcmalloc", "mimalloc")):
            info["detail"] = f"not changed: a caching allocator is preloaded (LD_PRELOAD={preload})"
        elif libc is None:
            info["detail"] = "not changed: the C library is not glibc (mallopt unavailable)"
        else:
            ok = libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD) == 1
            info["applied"] = bool(ok)
            info["detail"] = ("glibc mallopt: M_MMAP_MAX=0, M_TRIM_THRESHOLD=2 GiB (freed memory is reused, "
                              "not returned to the kernel)") if ok else "glibc mallopt refused the setting"
        if not info["applied"]:
            log.info("cpu allocator 'retain' %s", info["detail"])
    _applied = info
    return dict(info)
