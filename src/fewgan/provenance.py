"""What produced an artifact: code version, library versions, params, machine.

Every JSON a stage writes embeds `collect()` under the key `provenance`.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from fewgan import numpy_simd
from fewgan.io import sha256_file

ACTIVE_PARAMS = Path("params/active.yaml")
_PACKAGES = ("fewgan", "torch", "torchvision", "torch-fidelity", "lpips", "numpy", "pillow", "pandas",
             "snakemake", "dvc")


@functools.lru_cache(maxsize=1)
def _git_state() -> dict[str, Any]:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, timeout=10).stdout.strip())
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def format_overrides(overrides: dict[str, Any]) -> list[str]:
    """{dotted key: value} -> sorted `key=value` strings (non-string values as JSON: 800, true, ["a", "b"])."""
    return [f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in sorted(overrides.items())]


def experiment_overrides(params: dict) -> list[str] | None:
    """The values an experiment edited in params/active.yaml (`dvc exp run -S`), as `key=value` strings, as
    fewgan.params.load_active recorded them in params["_meta"]["overrides"]: [] = none, None = unknown (params
    not loaded by load_active, or loaded with the stale check off while the sources had changed)."""
    overrides = (params.get("_meta") or {}).get("overrides")
    return None if overrides is None else format_overrides(overrides)


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo; platform.processor() elsewhere): every timing names its machine."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def collect(params: dict | None = None, device: str | None = None) -> dict[str, Any]:
    """A provenance block: git commit, package versions, params profile, hash and experiment overrides, host,
    time."""
    import torch

    info: dict[str, Any] = {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git": _git_state(),
        "versions": {p: _version(p) for p in _PACKAGES},
        "python": platform.python_version(),
        "host": {"platform": platform.platform(), "cpu": cpu_name(), "cpu_count": os.cpu_count(),
                 "torch_threads": torch.get_num_threads(), "numpy_simd": numpy_simd.state(),
                 "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
    }
    if device is not None:
        info["device"] = str(device)
    if params is not None:
        info["profile"] = params.get("profile")
        info["params_sha256"] = params.get("_meta", {}).get("sha256")
        info["experiment_overrides"] = experiment_overrides(params)
    elif ACTIVE_PARAMS.exists():
        info["params_sha256"] = sha256_file(ACTIVE_PARAMS)
    return info
