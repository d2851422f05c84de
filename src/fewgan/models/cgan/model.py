"""Conditional GAN (Mirza & Osindero 2014) as a fewgan GANModel; networks in `fewgan.models.cgan.nets`.

Classes: a class-conditional model carries the class inside the latent (`fewgan.models.base`): with
num_classes > 1 (a dataset with class sub-folders), `sample_latents` returns (n, z_dim + 1) with the class index as
the last column, the D phase receives the real images' classes (`batch.labels`), and fakes are drawn for uniformly
drawn classes, as BigGAN does in fewgan. With one class (or none) the networks have one learned class (the same
code with n_classes = 1) and latents are (n, z_dim).

Loss: the GAN objective of the paper (eq. 2) on D(x|y) and D(G(z|y)|y); the generator maximises log D(G(z|y)|y)
(`nonsaturating`, the usual practice) or minimises log(1 - D(G(z|y)|y)) (`minimax`, the equation as written).
D's BatchNorm sees reals and fakes in separate batches (DCGAN). Optimisation and initialisation are DCGAN's
(Adam lr 2e-4, beta1 0.5; weights N(0, 0.02), BatchNorm scale N(1, 0.02)), since the convolutional networks are
DCGAN's; the paper's own MNIST MLPs used SGD with momentum and dropout, which do not carry over.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from fewgan.models.base import Augment, GANModel, LossLogs, register_model
from fewgan.models.cgan.nets import Discriminator, Generator
from fewgan.models.specs import validate_block

SUPPORTED_RESOLUTIONS = (32, 64, 128, 256)


def _init_weights(module: nn.Module, std: float) -> None:
    """DCGAN init (Radford et al. Sec. 4): conv / linear weights N(0, std), BatchNorm scale N(1, std), shifts 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)


@register_model("cgan")
class ConditionalGAN(GANModel):
    ema_buffers = True  # average BatchNorm running statistics, so G_ema samples in eval mode

    def __init__(self, cfg: Mapping[str, Any], resolution: int, num_classes: int = 0):
        cfg = validate_block("cgan", cfg)  # every key required: params/models/cgan.yaml
        super().__init__(cfg, resolution, num_classes)
        if self.resolution not in SUPPORTED_RESOLUTIONS:
            raise ValueError(f"cGAN supports resolutions {SUPPORTED_RESOLUTIONS}, got {resolution}; pick one of them "
                             "for this model in params")
        c = self.cfg
        n_embed = self.num_classes if self.conditional else 1
        self.z_dim = int(c["z_dim"])
        self.ema_decay = float(c["ema_decay"])
        k, eps = int(c["kernel_size"]), float(c["bn_eps"])
        self.G = Generator(self.resolution, z_dim=self.z_dim, g_channels=int(c["g_channels"]),
                           embed_dim=int(c["embed_dim"]), n_classes=n_embed, kernel_size=k, bn_eps=eps)
        self.D = Discriminator(self.resolution, d_channels=int(c["d_channels"]), embed_dim=int(c["embed_dim"]),
                               n_classes=n_embed, kernel_size=k, bn_eps=eps)
        _init_weights(self.G, float(c["init_std"]))
        _init_weights(self.D, float(c["init_std"]))

    @property
    def conditional(self) -> bool:
        """Class-conditional iff the dataset has more than one class."""
        return self.num_classes > 1

    # ---- latents -----------------------------------------------------------------------------------
    def _check_labels(self, labels: torch.Tensor, n: int) -> torch.Tensor:
        labels = torch.as_tensor(labels).reshape(-1)
        if labels.shape[0] != n:
            raise ValueError(f"cGAN: {labels.shape[0]} labels for {n} latents")
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise ValueError(f"cGAN: class labels must lie in 0..{self.num_classes - 1}, got "
                             f"{int(labels.min())}..{int(labels.max())}")
        return labels.long()

    def _with_class(self, z: torch.Tensor, n: int, generator: torch.Generator | None,
                    labels: torch.Tensor | None) -> torch.Tensor:
        if not self.conditional:
            return z
        if labels is None:
            dev = generator.device if generator is not None else z.device
            y = torch.randint(self.num_classes, (n,), generator=generator, device=dev).to(z.device)
        else:
            y = self._check_labels(labels, n).to(z.device)
        return torch.cat([z, y.to(z.dtype)[:, None]], dim=1)

    def sample_latents(self, n: int, *, generator: torch.Generator | None = None,
                       device: torch.device | str | None = None, labels: torch.Tensor | None = None) -> torch.Tensor:
        """(n, z_dim) N(0, I); conditional: (n, z_dim + 1), the last column the class (uniform when labels is None,
        drawn with `generator` after z)."""
        return self._with_class(torch.randn(n, self.z_dim, generator=generator, device=device), n, generator, labels)

    def split_latent(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z, class indices); the class column is detached (never optimised)."""
        width = self.z_dim + (1 if self.conditional else 0)
        if latent.ndim != 2 or latent.shape[1] != width:
            raise ValueError(f"cGAN latent must be (n, {width}) ({'z + class column' if self.conditional else 'z'}), "
                             f"got {tuple(latent.shape)}")
        if not self.conditional:
            return latent, torch.zeros(latent.shape[0], dtype=torch.long, device=latent.device)
        return latent[:, : self.z_dim], latent[:, -1].detach().round().long()

    def generate(self, G: nn.Module, latent: torch.Tensor) -> torch.Tensor:
        z, y = self.split_latent(latent)
        return G(z, y)

    def inversion_start(self, G: nn.Module, n: int, *, generator: torch.Generator | None = None,
                        device: torch.device | str | None = None, labels: torch.Tensor | None = None) -> torch.Tensor:
        """A N(0, I) draw of z (with `generator`), the class column fixed to `labels` (uniform draws when None).
        Not zeros: z = 0 gives fc(z) = 0, which BatchNorm maps to its shift, and the ReLU after it passes no
        gradient where the shift is <= 0 (all of it at init), so an optimiser started there may never move."""
        z = torch.randn(n, self.z_dim, generator=generator, device=generator.device if generator is not None else device)
        return self._with_class(z.to(device) if device is not None else z, n, generator, labels)

    # ---- training ------------------------------------------------------------------------------------
    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.cfg
        betas = (float(c["betas"][0]), float(c["betas"][1]))
        return {"G": torch.optim.Adam(self.G.parameters(), lr=float(c["lr"]), betas=betas),
                "D": torch.optim.Adam(self.D.parameters(), lr=float(c["lr"]), betas=betas)}

    def _real_labels(self, real_labels: torch.Tensor | None, n: int, device: torch.device) -> torch.Tensor:
        if not self.conditional:
            return torch.zeros(n, dtype=torch.long, device=device)
        if real_labels is None:
            raise ValueError(f"cGAN is conditional ({self.num_classes} classes): discriminator_loss needs real_labels "
                             "(the real images' class indices)")
        return self._check_labels(real_labels, n).to(device)

    def discriminator_loss(self, G: nn.Module, D: nn.Module, real: torch.Tensor, z: torch.Tensor, step: int,
                           augment: Augment, real_labels: torch.Tensor | None = None) -> tuple[torch.Tensor, LossLogs]:
        zz, y_fake = self.split_latent(z)
        y_real = self._real_labels(real_labels, real.shape[0], real.device)
        with torch.no_grad():
            fake = G(zz, y_fake)
        real_logits = D(augment(real), y_real).float()
        fake_logits = D(augment(fake), y_fake).float()
        loss_real = F.softplus(-real_logits).mean()  # -log D(x|y)
        loss_fake = F.softplus(fake_logits).mean()   # -log(1 - D(G(z|y)|y))
        loss = loss_real + loss_fake
        return loss, {"loss_D": float(loss.detach()), "loss_D_real": float(loss_real.detach()),
                      "loss_D_fake": float(loss_fake.detach()), "D_real": float(real_logits.detach().mean()),
                      "D_fake": float(fake_logits.detach().mean())}

    def generator_loss(self, G: nn.Module, D: nn.Module, z: torch.Tensor, step: int,
                       augment: Augment) -> tuple[torch.Tensor, LossLogs]:
        zz, y = self.split_latent(z)
        logits = D(augment(G(zz, y)), y).float()
        if self.cfg["loss"] == "minimax":
            loss = -F.softplus(logits).mean()  # log(1 - D(G(z|y)|y)), minimised
        else:
            loss = F.softplus(-logits).mean()  # -log D(G(z|y)|y)
        return loss, {"loss_G": float(loss.detach())}

    # ---- bookkeeping -----------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update({"z_dim": self.z_dim, "num_classes": self.num_classes, "conditional": self.conditional,
                  "class_embedding": f"{self.cfg['embed_dim']}-d, one per class" if self.conditional
                  else "one learned class (n_classes = 1)",
                  "loss": self.cfg["loss"], "augment_policy": self.cfg["augment_policy"]})
        return d
