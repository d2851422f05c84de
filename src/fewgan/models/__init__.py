"""Model registry: build a GAN by name, rebuild one from a snapshot.

Built-in models register themselves on import (`@register_model`); `build_model` imports them.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from fewgan.io import torch_load
from fewgan.models.base import GANModel, register_model, registered_models

__all__ = ["GANModel", "register_model", "registered_models", "build_model", "load_snapshot",
           "BUILTIN_MODELS", "SNAPSHOT_FORMAT"]

#: module (under fewgan.models) of every built-in model, by registry name.
BUILTIN_MODELS = {"fastgan": "fastgan", "stylegan2": "stylegan2", "dcgan": "dcgan", "progan": "progan", "biggan": "biggan"}
SNAPSHOT_FORMAT = "fewgan.snapshot/1"


def _import_builtin() -> None:
    for module in BUILTIN_MODELS.values():
        importlib.import_module(f"fewgan.models.{module}")


def build_model(name: str, cfg: Mapping[str, Any], resolution: int) -> GANModel:
    _import_builtin()
    models = registered_models()
    if name not in models:
        raise KeyError(f"unknown model {name!r}; registered models: {sorted(models)}")
    return models[name](cfg, resolution)


def load_snapshot(path: str | Path, device: torch.device | str = "cpu") -> tuple[GANModel, nn.Module, dict]:
    """Rebuild (model, EMA generator in eval mode, metadata) from a snapshot written by training.

    A snapshot is a dict of plain types and tensors (read with weights_only=True):
    {"format", "model", "model_cfg", "resolution", "iteration", "G_ema": state_dict, ...}.
    """
    snap = torch_load(path, map_location="cpu")
    if not isinstance(snap, dict) or snap.get("format") != SNAPSHOT_FORMAT:
        raise ValueError(f"{path}: not a fewgan snapshot (expected format {SNAPSHOT_FORMAT!r}); "
                         "pass a file from runs/<dataset>/<model>/train/snapshots/")
    model = build_model(snap["model"], snap["model_cfg"], snap["resolution"])
    G = model.G
    G.load_state_dict(snap["G_ema"])
    G.to(device).eval().requires_grad_(False)
    meta = {k: v for k, v in snap.items() if k not in ("G_ema", "G", "D")}
    return model, G, meta
