"""DCGAN baseline (Radford, Metz & Chintala, ICLR 2016) as a fewgan GANModel.

G: z -> 4x4 transposed conv -> [transposed conv 4/2/1 -> BatchNorm -> ReLU] x k -> transposed conv -> tanh.
D: conv 4/2/1 -> LeakyReLU(0.2) (no BatchNorm on the first layer) -> [conv 4/2/1 -> BN -> LReLU] x k ->
   conv 4x4 valid -> one logit. The number of blocks follows the resolution (32..256 px), channels double
   per block as in the paper's 64-px figure (ngf*8 at 4x4 for 64 px), capped at `channel_max`.
Init N(0, 0.02) for conv weights (paper, Sec. 4), BatchNorm weight N(1, 0.02), bias 0 (pytorch/examples dcgan).
Adam lr 2e-4, beta1 0.5 (paper, Sec. 4), beta2 0.999 (Adam default, as in pytorch/examples dcgan).
Loss: non-saturating (the paper's GAN objective with the -log D(G(z)) generator loss) or hinge.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from fewgan.models.base import Augment, GANModel, LossLogs, register_model
from fewgan.models.specs import validate_block
from fewgan.models.dcgan.spec import SCHEMA

SUPPORTED_RESOLUTIONS = (32, 64, 128, 256)


def _widths(resolution: int, base: int, cap: int) -> list[int]:
    """Channels at 4, 8, ..., resolution/2: base * 2**(k-1-i) for the i-th of k levels, capped."""
    k = int(math.log2(resolution)) - 2  # number of feature levels from 4 px to resolution/2
    return [min(base * 2 ** (k - 1 - i), cap) for i in range(k)]


class DCGANGenerator(nn.Module):
    def __init__(self, z_dim: int, resolution: int, ngf: int, channel_max: int):
        super().__init__()
        self.z_dim = z_dim
        ch = _widths(resolution, ngf, channel_max)
        layers: list[nn.Module] = [nn.ConvTranspose2d(z_dim, ch[0], 4, 1, 0, bias=False),
                                   nn.BatchNorm2d(ch[0]), nn.ReLU(True)]
        for cin, cout in zip(ch[:-1], ch[1:]):
            layers += [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(ch[-1], 3, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"DCGAN generator expects z of shape (n, {self.z_dim}), got {tuple(z.shape)}")
        return self.net(z[:, :, None, None])


class DCGANDiscriminator(nn.Module):
    def __init__(self, resolution: int, ndf: int, channel_max: int):
        super().__init__()
        self.resolution = resolution
        ch = _widths(resolution, ndf, channel_max)[::-1]  # resolution/2 ... 4
        layers: list[nn.Module] = [nn.Conv2d(3, ch[0], 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        for cin, cout in zip(ch[:-1], ch[1:]):
            layers += [nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, True)]
        layers += [nn.Conv2d(ch[-1], 1, 4, 1, 0, bias=False)]
        self.net = nn.Sequential(*layers)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        r = self.resolution
        if img.ndim != 4 or img.shape[1:] != (3, r, r):
            raise ValueError(f"DCGAN discriminator expects images (n, 3, {r}, {r}), got {tuple(img.shape)}")
        return self.net(img).flatten(1)  # (n, 1) logits


def _init_weights(module: nn.Module, std: float) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)


@register_model("dcgan")
class DCGAN(GANModel):
    config_schema: dict[str, Any] = SCHEMA
    ema_buffers = True  # average BatchNorm running stats too, so G_ema can sample in eval mode

    def __init__(self, cfg: Mapping[str, Any], resolution: int, num_classes: int = 0):
        cfg = validate_block("dcgan", cfg)  # every key required: params/models/dcgan.yaml
        super().__init__(cfg, resolution, num_classes)
        if self.resolution not in SUPPORTED_RESOLUTIONS:
            raise ValueError(f"DCGAN supports resolutions {SUPPORTED_RESOLUTIONS}, got {resolution}; "
                             "pick one of them for this model in params")
        c = self.cfg
        self.z_dim = int(c["z_dim"])
        self.ema_decay = float(c["ema_decay"])
        self.G = DCGANGenerator(self.z_dim, self.resolution, int(c["ngf"]), int(c["channel_max"]))
        self.D = DCGANDiscriminator(self.resolution, int(c["ndf"]), int(c["channel_max"]))
        _init_weights(self.G, float(c["init_std"]))
        _init_weights(self.D, float(c["init_std"]))

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.cfg
        betas = (float(c["betas"][0]), float(c["betas"][1]))
        return {"G": torch.optim.Adam(self.G.parameters(), lr=float(c["lr"]), betas=betas),
                "D": torch.optim.Adam(self.D.parameters(), lr=float(c["lr"]), betas=betas)}

    def discriminator_loss(self, G: nn.Module, D: nn.Module, real: torch.Tensor, z: torch.Tensor,
                           step: int, augment: Augment, real_labels: torch.Tensor | None = None) -> tuple[torch.Tensor, LossLogs]:
        with torch.no_grad():
            fake = G(z)
        # separate real and fake minibatches through D (BatchNorm statistics per batch, as in the paper)
        real_logits = D(augment(real)).float()  # losses reduced in float32 (bf16 autocast)
        fake_logits = D(augment(fake.detach())).float()
        if self.cfg["loss"] == "hinge":
            loss_real = F.relu(1.0 - real_logits).mean()
            loss_fake = F.relu(1.0 + fake_logits).mean()
        else:
            loss_real = F.softplus(-real_logits).mean()  # -log sigmoid(D(x))
            loss_fake = F.softplus(fake_logits).mean()   # -log(1 - sigmoid(D(G(z))))
        loss = loss_real + loss_fake
        return loss, {"loss_D": float(loss.detach()), "loss_D_real": float(loss_real.detach()),
                      "loss_D_fake": float(loss_fake.detach()), "D_real": float(real_logits.detach().mean()),
                      "D_fake": float(fake_logits.detach().mean())}

    def generator_loss(self, G: nn.Module, D: nn.Module, z: torch.Tensor, step: int,
                       augment: Augment) -> tuple[torch.Tensor, LossLogs]:
        logits = D(augment(G(z))).float()
        if self.cfg["loss"] == "hinge":
            loss = -logits.mean()
        else:
            loss = F.softplus(-logits).mean()  # non-saturating: -log sigmoid(D(G(z)))
        return loss, {"loss_G": float(loss.detach())}

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update({"z_dim": self.z_dim, "loss": self.cfg["loss"], "augment_policy": self.cfg["augment_policy"]})
        return d
