"""Build a GAN by name; rebuild one from a snapshot.

Models are found by discovery (`fewgan.models.specs.model_specs`: every folder with a spec.py);
`build_model` imports the model's module on demand, and its `@register_model` registers it. Models
registered in-process (tests, notebooks) are built the same way.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from fewgan.io import CheckpointError, torch_load
from fewgan.models.base import GANModel, registered_models
from fewgan.models.specs import SNAPSHOT_FORMAT, model_specs
SNAPSHOT_RE = re.compile(r"^snapshot_(\d{7})\.pt$")


def import_model(name: str) -> type[GANModel]:
    """The registered class of model `name` (importing its folder's model.py if it is not loaded yet)."""
    models = registered_models()
    if name not in models:
        specs = model_specs()
        if name in specs:
            importlib.import_module(specs[name].module)
            models = registered_models()
        if name not in models:
            raise KeyError(f"unknown model {name!r}; models: {sorted(set(specs) | set(models))} (a model is a "
                           "folder src/fewgan/models/<name>/ with spec.py and model.py; see docs/DESIGN.md)")
    return models[name]


def build_model(name: str, cfg: Mapping[str, Any], resolution: int, num_classes: int = 0) -> GANModel:
    """The model `name` with its params block `cfg` (complete: every key of params/models/<name>.yaml)."""
    return import_model(name)(cfg, resolution, num_classes=int(num_classes))


def load_snapshot(path: str | Path, device: torch.device | str = "cpu") -> tuple[GANModel, nn.Module, dict]:
    """Rebuild (model, its primary network in eval mode, metadata) from a snapshot written by training.

    A snapshot is a dict of plain types and tensors (read with weights_only=True):
    {"format", "model", "model_cfg", "resolution", "num_classes", "iteration", "<net>_ema": state_dict for
    each of the model's `ema_networks`, "<net>": state_dict for each of its `snapshot_networks`, ...}.
    Every saved network is loaded into the model (the averaged weights where the loop kept an average), and
    the whole model is put in eval mode (models that sample differently for evaluation, e.g. BigGAN's
    truncation, read `self.training`).
    """
    snap = torch_load(path, map_location="cpu")  # CheckpointError (names the file) when damaged or unsafe
    if not isinstance(snap, dict) or snap.get("format") != SNAPSHOT_FORMAT:
        raise CheckpointError(f"{path}: not a fewgan snapshot (expected format {SNAPSHOT_FORMAT!r}); "
                              "pass a file from runs/<dataset>/<model>/train/snapshots/")
    model = build_model(snap["model"], snap["model_cfg"], snap["resolution"], int(snap.get("num_classes", 0)))
    model.eval()
    saved = {f"{n}_ema": n for n in model.ema_networks} | {n: n for n in model.snapshot_networks}
    missing = sorted(k for k in saved if k not in snap)
    if missing:
        raise CheckpointError(f"{path}: snapshot lacks {missing} for model {snap['model']!r}; it was written by "
                              "another version of the model - re-run `fewgan train`")
    for key, net in saved.items():
        model.network(net).load_state_dict(snap[key])
        model.network(net).to(device).eval().requires_grad_(False)
    meta = {k: v for k, v in snap.items() if k not in saved and k not in model.networks}
    return model, model.network(model.primary), meta


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


def import_all_models() -> dict[str, type[GANModel]]:
    """Import every discovered model (each registers itself); returns the registry."""
    for spec in model_specs().values():
        importlib.import_module(spec.module)
    return registered_models()
