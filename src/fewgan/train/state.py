"""Seeds, RNG state capture/restore and the params hash that guards resuming.

Everything captured here is tensors and plain Python types, so the resume file loads with
`torch.load(..., weights_only=True)` (numpy's state array becomes a list of ints).
"""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any

import torch

RESUME_FORMAT = "fewgan.resume/1"


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed from the master seed and labels (stable across runs, platforms and Python versions)."""
    text = json.dumps([str(p) for p in parts])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def generator(*parts: Any, device: str | torch.device = "cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(*parts))
    return g


def params_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def capture_rng(generators: dict[str, torch.Generator]) -> dict:
    """The state of every random number generator training draws from."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else [],
        "python": _python_state(),
        "generators": {name: g.get_state() for name, g in generators.items()},
    }
    try:
        import numpy as np

        kind, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)
        state["numpy"] = {"kind": str(kind), "keys": [int(k) for k in keys], "pos": int(pos),
                          "has_gauss": int(has_gauss), "gauss": float(gauss)}
    except ImportError:  # pragma: no cover - numpy is a dependency
        state["numpy"] = None
    return state


def restore_rng(state: dict, generators: dict[str, torch.Generator]) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) != torch.cuda.device_count():
            raise RuntimeError(f"resume state holds {len(cuda_states)} CUDA RNG states but this machine has "
                               f"{torch.cuda.device_count()} GPUs; delete the resume file to start fresh")
        torch.cuda.set_rng_state_all(cuda_states)
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if state.get("numpy") is not None:
        import numpy as np

        n = state["numpy"]
        np.random.set_state((n["kind"], np.array(n["keys"], dtype=np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    missing = set(generators) - set(state["generators"])
    if missing:
        raise RuntimeError(f"resume state lacks generator state(s) {sorted(missing)}; delete it to start fresh")
    for name, g in generators.items():
        g.set_state(state["generators"][name])


def _python_state() -> list:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]
