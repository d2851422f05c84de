"""A toy GAN: a linear generator and a one-conv discriminator, non-saturating loss. It declares its phases
(D `d_steps` times, then G) instead of inheriting the latent-GAN default, to show the contract."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fewgan.models.base import GANModel, Phase, register_model
from fewgan.models.specs import validate_block


@register_model("toy")
class ToyGAN(GANModel):
    networks = ("G", "D")
    ema_networks = ("G",)

    def __init__(self, cfg, resolution, num_classes=0):
        super().__init__(validate_block("toy", cfg), resolution, num_classes)
        c, r = self.cfg, self.resolution
        self.z_dim, self.ema_decay = int(c["z_dim"]), float(c["ema_decay"])
        self.G = nn.Sequential(nn.Linear(self.z_dim, 3 * r * r), nn.Tanh(), nn.Unflatten(1, (3, r, r)))
        self.D = nn.Sequential(nn.Conv2d(3, c["width"], 4, 4), nn.LeakyReLU(0.2), nn.Flatten(),
                               nn.Linear(c["width"] * (r // 4) ** 2, 1))

    def phases(self):
        return (Phase("D", "d_loss", "D", repeats=self.cfg["d_steps"], reals=True, latents="new"),
                Phase("G", "g_loss", "G", reals=False, latents="new"))

    def make_optimizers(self):
        kw = {"lr": self.cfg["lr"], "betas": tuple(self.cfg["betas"])}
        return {"G": torch.optim.Adam(self.G.parameters(), **kw), "D": torch.optim.Adam(self.D.parameters(), **kw)}

    def d_loss(self, nets, batch, step, augment):
        with torch.no_grad():
            fake = nets["G"](batch.z)
        real_logits, fake_logits = nets["D"](augment(batch.reals)), nets["D"](augment(fake))
        loss = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
        return loss, {"real": real_logits.mean().item(), "fake": fake_logits.mean().item()}

    def g_loss(self, nets, batch, step, augment):
        loss = F.softplus(-nets["D"](augment(nets["G"](batch.z)))).mean()
        return loss, {}
