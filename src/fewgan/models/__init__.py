"""Model registry: build a GAN by name, rebuild one from a snapshot.

Built-in models register themselves on import (`@register_model`); `build_model` imports them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from fewgan.io import CheckpointError, torch_load
from fewgan.models.base import GANModel, register_model, registered_models

__all__ = ["GANModel", "register_model", "registered_models", "build_model", "load_snapshot",
           "list_snapshots", "SNAPSHOT_FORMAT"]

SNAPSHOT_FORMAT = "fewgan.snapshot/1"
SNAPSHOT_RE = re.compile(r"^snapshot_(\d{7})\.pt$")


def _import_builtin() -> None:
    """Import the built-in models (each registers itself). Plain imports, so that the stage table's
    code dependencies (fewgan.stages.code_deps) see every model module."""
    from fewgan.models import biggan, dcgan, fastgan, progan, stylegan2  # noqa: F401


def build_model(name: str, cfg: Mapping[str, Any], resolution: int, num_classes: int = 0) -> GANModel:
    """The model `name` with its params block `cfg` (complete: every key of params/models/<name>.yaml)."""
    _import_builtin()
    models = registered_models()
    if name not in models:
        raise KeyError(f"unknown model {name!r}; registered models: {sorted(models)}")
    return models[name](cfg, resolution, num_classes=int(num_classes))


def load_snapshot(path: str | Path, device: torch.device | str = "cpu") -> tuple[GANModel, nn.Module, dict]:
    """Rebuild (model, EMA generator in eval mode, metadata) from a snapshot written by training.

    A snapshot is a dict of plain types and tensors (read with weights_only=True):
    {"format", "model", "model_cfg", "resolution", "num_classes", "iteration", "G_ema": state_dict, ...}.
    The whole model is put in eval mode (models that sample differently for evaluation, e.g. BigGAN's
    truncation, read `self.training`).
    """
    snap = torch_load(path, map_location="cpu")  # CheckpointError (names the file) when damaged or unsafe
    if not isinstance(snap, dict) or snap.get("format") != SNAPSHOT_FORMAT:
        raise CheckpointError(f"{path}: not a fewgan snapshot (expected format {SNAPSHOT_FORMAT!r}); "
                              "pass a file from runs/<dataset>/<model>/train/snapshots/")
    model = build_model(snap["model"], snap["model_cfg"], snap["resolution"], int(snap.get("num_classes", 0)))
    model.eval()
    G = model.G
    G.load_state_dict(snap["G_ema"])
    G.to(device).eval().requires_grad_(False)
    meta = {k: v for k, v in snap.items() if k not in ("G_ema", "G", "D")}
    return model, G, meta


def list_snapshots(train_dir: str | Path) -> list[tuple[int, Path]]:
    """(iteration, path) of every runs/D/M/train/snapshots/snapshot_XXXXXXX.pt, by iteration."""
    snap_dir = Path(train_dir) / "snapshots"
    if not snap_dir.is_dir():
        raise FileNotFoundError(f"{snap_dir}: no snapshots folder; run `fewgan train` for this dataset/model first")
    found = sorted((int(m.group(1)), p) for p in snap_dir.iterdir() if (m := SNAPSHOT_RE.match(p.name)))
    if not found:
        raise FileNotFoundError(f"{snap_dir}: no snapshot_XXXXXXX.pt files; training wrote none - "
                                "check train.snapshot_every and re-run `fewgan train`")
    return found
