"""Test helpers for tests/train: a tiny registered GAN, toy data, params (also imported by ddp_worker.py)."""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from fewgan.models.base import GANModel, register_model, registered_models

REPO = Path(__file__).resolve().parents[2]
RES = 16
MODEL = "tiny_test"
DATASET = "toy"


class TinyGAN(GANModel):
    """2-layer conv G (with BatchNorm, so EMA buffers matter) and D; non-saturating loss. Draws from the
    global torch, Python and numpy RNGs on purpose, so resume tests cover all of them.

    `TinyGAN.hooks` (class-level, not in cfg, so they do not change the params hash) injects faults:
    {"crash": step} raises, {"nan": step} returns a NaN loss, {"signal": step} sends SIGINT to itself."""

    ema_decay = 0.9
    hooks: dict[str, int] = {}

    def __init__(self, cfg, resolution, num_classes=0):
        super().__init__(cfg, resolution, num_classes)
        self.z_dim = int(cfg.get("z_dim", 8))
        ch = int(cfg.get("channels", 8))
        self.ema_buffers = bool(cfg.get("ema_buffers", True))
        self._cache = None
        self.G = nn.Sequential(
            nn.Linear(self.z_dim, ch * 4 * 4), nn.Unflatten(1, (ch, 4, 4)), nn.BatchNorm2d(ch), nn.ReLU(),
            nn.Upsample(scale_factor=resolution // 4), nn.Conv2d(ch, 3, 3, padding=1), nn.Tanh())
        self.D = nn.Sequential(
            nn.Conv2d(3, ch, 4, 2, 1), nn.BatchNorm2d(ch), nn.LeakyReLU(0.2),
            nn.Conv2d(ch, ch, 4, 2, 1), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(ch * (resolution // 4) ** 2, 1))

    def make_optimizers(self):
        lr = float(self.cfg.get("lr", 2e-3))
        return {"G": torch.optim.Adam(self.G.parameters(), lr=lr, betas=(0.5, 0.999)),
                "D": torch.optim.Adam(self.D.parameters(), lr=lr, betas=(0.5, 0.999))}

    def _hook(self, step: int) -> None:
        if self.hooks.get("crash") == step:
            raise RuntimeError(f"injected crash at step {step}")
        if self.hooks.get("signal") == step:
            os.kill(os.getpid(), signal.SIGINT)

    def _share(self, step: int) -> bool:
        # cfg share_fakes: FastGAN's pattern (fakes made with a graph in the D step, reused by the G step);
        # "alternate" switches between that and no_grad generation + a fresh G forward every other step
        mode = self.cfg.get("share_fakes", False)
        return mode is True or (mode == "alternate" and step % 2 == 0)

    def discriminator_loss(self, G, D, real, z, step, augment, real_labels=None):
        self._hook(step)
        self._cache = None
        if self._share(step):
            fake = self.generate(G, z)
            self._cache = fake
            fake = fake.detach()
        else:
            with torch.no_grad():
                fake = self.generate(G, z)
        real = real + 0.01 * torch.randn_like(real)  # global torch RNG
        scale = 1.0 + 0.01 * random.random() + 0.01 * float(np.random.rand())  # python + numpy RNGs
        lr_, lf = D(augment(real)), D(augment(fake))
        loss = scale * (F.softplus(-lr_).mean() + F.softplus(lf).mean())
        if self.hooks.get("nan") == step:
            loss = loss * float("nan")
        return loss, {"real": lr_.mean().item(), "fake": lf.mean().item()}

    def generator_loss(self, G, D, z, step, augment):
        fake = self._cache if self._cache is not None else self.generate(G, z)
        self._cache = None
        loss = F.softplus(-D(augment(fake))).mean()
        if self.cfg.get("second_g_forward") and not self._share(step):  # e.g. StyleGAN2's path-length pass
            loss = loss + 1e-3 * self.generate(G, z[: max(1, z.shape[0] // 2)]).square().mean()
        return loss, {"g": loss.item()}


if MODEL not in registered_models():
    register_model(MODEL)(TinyGAN)


def toy_images(n: int = 12, res: int = RES, seed: int = 123) -> tuple[torch.Tensor, list[str]]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, res, res), generator=g, dtype=torch.uint8), [f"img{i:03d}.png" for i in range(n)]


def make_params(model_cfg: dict | None = None, **train) -> dict:
    base = yaml.safe_load((REPO / "params" / "train.yaml").read_text())
    base.update(iterations=6, batch_size=4, snapshot_every=3, sample_every=3, log_every=1, grid_size=2,
                interpolation_steps=3, augment_policy="color,translation,cutout")
    base.update(train)
    weights = yaml.safe_load((REPO / "params" / "evaluation.yaml").read_text())["weights"]
    return {"seed": 0, "device": "cpu", "datasets": {DATASET: {"resolution": RES}},
            "models": {MODEL: dict(model_cfg or {})}, "train": base, "evaluation": {"weights": weights}}
