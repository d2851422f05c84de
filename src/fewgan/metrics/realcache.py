"""Statistics of the real images alone, kept across stages and runs (issue 24 item 1: "real ... MS-SSIM pairs
cached across stages").

Every `fewgan evaluate` computes two numbers that depend on the real train images only: the SWD real-vs-real
floor and the real MS-SSIM pairs (about 0.3 s each per cell of the demo on 2 cores). They are the same for every
model and seed of a dataset, so the first evaluate writes them under `evaluation.feature_cache_dir` (beside the
real-feature cache, fewgan.metrics.fid.real_features) and the later ones read them back: the same values, not
recomputed. The key covers the images (sha256 of the uint8 tensor), the settings the caller passes, the
source files of the modules that compute them (editing that code invalidates the entries), the torch and
numpy versions, numpy's SIMD kernels (fewgan.numpy_simd) and torch's thread count (a reduction may round
differently with other kernels or another split of the work), so a value read back is the one this process would
compute. An entry that is unreadable or does not match its key is recomputed, and a log line says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import torch

from fewgan.io import atomic_torch_save, torch_load
from fewgan.metrics.fid import images_sha256

log = logging.getLogger(__name__)

FORMAT = "fewgan.realstats/1"


def _code_digest(modules: tuple[ModuleType, ...]) -> str:
    h = hashlib.sha256()
    for m in modules:
        h.update(m.__name__.encode())
        h.update(Path(m.__file__).read_bytes())
    return h.hexdigest()


def cache_key(kind: str, images: torch.Tensor, settings: dict, modules: tuple[ModuleType, ...]) -> str:
    """sha256 of what decides the value: the format, `kind`, the images, `settings` (JSON), the code, the torch
    and numpy versions, numpy's SIMD kernels and torch's thread count (the kernels round as they do)."""
    from fewgan.numpy_simd import state

    simd = state()
    text = json.dumps({"format": FORMAT, "kind": kind, "images": images_sha256(images), "settings": settings,
                       "code": _code_digest(modules), "torch": torch.__version__, "numpy": simd["numpy"],
                       "numpy_simd": [simd["avx512"], simd["avx2"], simd["disabled"]],
                       "threads": torch.get_num_threads()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def cached(cache_dir: str | Path | None, kind: str, images: torch.Tensor, settings: dict,
           compute: Callable[[], Any], modules: tuple[ModuleType, ...]) -> Any:
    """compute() (plain values and tensors), read from `cache_dir` when this exact (kind, images, settings, code)
    was computed before, else computed and written there. No cache_dir: computed every time."""
    if not kind.isidentifier():
        raise ValueError(f"real-statistics cache: kind {kind!r} must be a plain name")
    if cache_dir is None:
        return compute()
    key = cache_key(kind, images, settings, modules)
    path = Path(cache_dir) / f"real-{kind}-{key[:40]}.pt"
    if path.is_file():
        try:
            blob = torch_load(path)
            if isinstance(blob, dict) and blob.get("format") == FORMAT and blob.get("key") == key:
                log.info("%s of the real images read from %s", kind, path)
                return blob["value"]
            log.warning("real-statistics cache %s does not match its key; recomputing", path)
        except Exception as exc:  # a damaged entry: recompute, say so
            log.warning("real-statistics cache %s unreadable (%s); recomputing", path, exc)
    value = compute()
    atomic_torch_save(path, {"format": FORMAT, "key": key, "kind": kind, "value": value})
    return value
