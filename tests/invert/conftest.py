"""A tiny deterministic generator model and stand-ins for the inversion tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fewgan.models
from fewgan.io import atomic_torch_save, read_yaml
from fewgan.models.base import registered_models
from fewgan.models.registry import SNAPSHOT_FORMAT
from fewgan.models.base import GANModel, register_model

TINY = "invert_tiny"
RES = 16
Z_DIM = 8


class _TinyG(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(Z_DIM, 3 * RES * RES)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.fc(z)).view(-1, 3, RES, RES)


if TINY not in registered_models():
    @register_model(TINY)
    class TinyInvertModel(GANModel):
        """z (8) -> linear -> tanh -> 3x16x16. Inversion starts from a seeded random z (to test seeding)."""

        def __init__(self, cfg, resolution, num_classes=0):
            super().__init__(cfg, resolution, num_classes)
            self.z_dim = int(cfg.get("z_dim", Z_DIM))
            self.G = _TinyG()
            self.D = nn.Linear(1, 1)

        def inversion_start(self, G, n, *, generator=None, device=None, labels=None):
            return 0.1 * torch.randn(n, self.z_dim, generator=generator).to(device or "cpu")


def make_G(seed: int) -> _TinyG:
    torch.manual_seed(seed)
    return _TinyG().eval().requires_grad_(False)


def write_snapshot(train_dir: Path, iteration: int, G: nn.Module, dataset: str = "toy") -> Path:
    path = train_dir / "snapshots" / f"snapshot_{iteration:07d}.pt"
    atomic_torch_save(path, {"format": SNAPSHOT_FORMAT, "model": TINY, "model_cfg": {"z_dim": Z_DIM},
                             "resolution": RES, "iteration": iteration, "dataset": dataset,
                             "G_ema": G.state_dict(), "fallbacks": []})
    return path


def standin_lpips(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Differentiable LPIPS stand-in: mean |difference| after a 2x2 average pool, per image."""
    return (F.avg_pool2d(a, 2) - F.avg_pool2d(b, 2)).abs().flatten(1).mean(1)


@pytest.fixture(autouse=True)
def _one_thread(_small_torch):
    """These models are tiny: one thread is several times faster than two on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def no_builtins(monkeypatch):
    """Build only the tiny test model (built-in models may not exist yet / are slow to import)."""


@pytest.fixture
def tiny_run(tmp_path, monkeypatch, no_builtins):
    """runs/toy/invert_tiny/train with snapshots at 0, 100, 200; test images = last G's own outputs."""
    import fewgan.invert.stage as stage

    train_dir = tmp_path / "runs" / "toy" / TINY / "train"
    gens = {0: make_G(1), 100: make_G(2), 200: make_G(3)}
    for it, G in gens.items():
        write_snapshot(train_dir, it, G)
    z_test = torch.randn(6, Z_DIM, generator=torch.Generator().manual_seed(7))
    z_train = torch.randn(10, Z_DIM, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        test = ((gens[200](z_test) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
        train = ((gens[200](z_train) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    images = {"test": (test, [f"t{i}.png" for i in range(6)]), "train": (train, [f"r{i}.png" for i in range(10)])}
    calls = []

    def fake_load(curated_dir, split_dir, which, resolution):
        calls.append((which, resolution))
        return images[which]

    monkeypatch.setattr(stage, "_load_images", fake_load)
    monkeypatch.setattr(stage, "_build_lpips",
                        lambda net, params, device: (standin_lpips, {"fallback": "test stand-in, not LPIPS",
                                                                      "note": "test stand-in, not LPIPS"}))
    invert = read_yaml(Path(__file__).resolve().parents[2] / "params" / "invert.yaml")
    invert.update({"recipe": "backtrack", "steps": 40, "lr": 0.1, "mse_weight": 0.2, "snapshots": "all",
                   "batch_size": 100, "seed": 0, "log_every": 10})
    weights = read_yaml(Path(__file__).resolve().parents[2] / "params" / "evaluation.yaml")["weights"]
    params = {"profile": "smoke", "seed": 0, "device": "cpu", "invert": invert, "evaluation": {"weights": weights}}
    return {"params": params, "train_dir": train_dir, "out_dir": tmp_path / "runs" / "toy" / TINY / "invert",
            "curated": tmp_path / "data" / "curated" / "toy", "split": tmp_path / "data" / "splits" / "toy",
            "gens": gens, "test": test, "calls": calls}
