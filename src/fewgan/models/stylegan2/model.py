"""StyleGAN2 (+ DiffAugment) baseline as a fewgan GANModel.

Networks: `fewgan.models.stylegan2.nets` (skip G, residual D, equalised lr, modulated convs, noise, mbstd).
Loss: non-saturating logistic loss with R1 on reals and path-length regularisation (StyleGAN2 paper;
stylegan2-ada-pytorch training/loss.py), optionally lazy (R1 every `r1_interval` D steps, path length
every `pl_interval` G steps, each term multiplied by its interval), style mixing, and the
stylegan2-ada EMA schedule (ema_kimg, ema_rampup) plus DiffAugment's ema_start_kimg.

The augmentation (DiffAugment policy `augment_policy` in the cfg, '' = off) is built by the training
loop and passed in as `augment`; it is applied to reals and fakes before D, and R1 is taken w.r.t.
the un-augmented reals through the (differentiable) augmentation, as in DiffAugment-stylegan2's
`ns_DiffAugment_r1` and stylegan2-ada's run_D.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from fewgan.models.base import Augment, GANModel, LossLogs, register_model
from fewgan.models.stylegan2.nets import Discriminator, Generator
from fewgan.models.specs import validate_block
from fewgan.models.stylegan2.spec import SCHEMA

log = logging.getLogger(__name__)

def _unwrap(module: nn.Module) -> nn.Module:
    """The model inside a DDP / DataParallel wrapper (for attribute access only, never for forward)."""
    return getattr(module, "module", module)


@register_model("stylegan2")
class StyleGAN2(GANModel):
    """StyleGAN2 config-f (skip G / resnet D) with non-saturating loss, R1, path length, style mixing."""

    config_schema: dict[str, Any] = SCHEMA
    ema_buffers = True  # w_avg follows G; noise_const/pl_mean are identical or irrelevant in G_ema

    def __init__(self, cfg: Mapping[str, Any], resolution: int, num_classes: int = 0):
        cfg = validate_block("stylegan2", cfg)  # every key required: params/models/stylegan2.yaml
        super().__init__(cfg, resolution, num_classes)
        r = self.resolution
        if r < 4 or r & (r - 1):
            raise ValueError(f"StyleGAN2: resolution must be a power of two >= 4, got {resolution}")
        c = self.cfg
        self.z_dim = int(c["z_dim"])
        self.G = Generator(self.z_dim, int(c["w_dim"]), r, channel_base=int(c["channel_base"]),
                           channel_max=int(c["channel_max"]), mapping_layers=int(c["mapping_layers"]),
                           mapping_lr_multiplier=float(c["mapping_lr_multiplier"]),
                           w_avg_beta=float(c["w_avg_beta"]))
        self.D = Discriminator(r, channel_base=int(c["channel_base"]), channel_max=int(c["channel_max"]),
                               mbstd_group_size=int(c["mbstd_group_size"]),
                               mbstd_num_channels=int(c["mbstd_num_channels"]))
        self.num_ws = self.G.num_ws
        self.w_dim = int(c["w_dim"])

    # ---- sampling -------------------------------------------------------------------------------
    def generate(self, G: nn.Module, z: torch.Tensor) -> torch.Tensor:
        """Untruncated samples (psi = 1, as for FID); per-pixel noise per cfg `sample_noise_mode`
        (random: draws from torch's global RNG, so seed it for reproducible images)."""
        return G(z, noise_mode=self.cfg["sample_noise_mode"])

    truncation_meaning = "StyleGAN's truncation trick: w = w_avg + psi (w - w_avg), const noise"

    def generate_truncated(self, G: nn.Module, z: torch.Tensor, psi: float,
                           cutoff: int | None = None) -> torch.Tensor:
        """Truncation trick (w = w_avg + psi (w - w_avg)) for report figures only; never for metrics.
        Uses const noise so psi = 0 gives one image for every z."""
        return G(z, truncation_psi=float(psi), truncation_cutoff=cutoff, noise_mode="const")

    # ---- training --------------------------------------------------------------------------------
    def _adam(self, params, interval: int, reg_on: bool) -> torch.optim.Adam:
        c = self.cfg
        lr, (b1, b2) = float(c["lr"]), (float(c["betas"][0]), float(c["betas"][1]))
        if c["lazy_lr_adjust"] and reg_on and interval > 1:
            ratio = interval / (interval + 1)  # ada training_loop.py: mb_ratio = reg_interval / (reg_interval + 1)
            lr, b1, b2 = lr * ratio, b1 ** ratio, b2 ** ratio
        return torch.optim.Adam(params, lr=lr, betas=(b1, b2), eps=float(c["eps"]))

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.cfg
        return {"G": self._adam(self.G.parameters(), int(c["pl_interval"]), float(c["pl_weight"]) > 0),
                "D": self._adam(self.D.parameters(), int(c["r1_interval"]), float(c["r1_gamma"]) > 0)}

    def optimizer_settings(self) -> dict[str, dict[str, Any]]:
        """Effective lr/betas per optimiser (for run.json and tests)."""
        out = {}
        for k, opt in self.make_optimizers().items():
            g = opt.param_groups[0]
            out[k] = {"lr": g["lr"], "betas": list(g["betas"]), "eps": g["eps"]}
        return out

    def discriminator_loss(self, G: nn.Module, D: nn.Module, real: torch.Tensor, z: torch.Tensor,
                           step: int, augment: Augment, real_labels: torch.Tensor | None = None) -> tuple[torch.Tensor, LossLogs]:
        c = self.cfg
        with torch.no_grad():
            fake = G(z, style_mixing_prob=float(c["style_mixing_prob"]))
        fake_logits = D(augment(fake)).float()  # losses reduced in float32 (bf16 autocast)
        interval = int(c["r1_interval"])
        do_r1 = float(c["r1_gamma"]) > 0 and step % interval == 0
        real_in = real.detach().requires_grad_(do_r1)
        real_logits = D(augment(real_in)).float()
        loss_fake = F.softplus(fake_logits).mean()   # -log(1 - sigmoid(D(G(z))))
        loss_real = F.softplus(-real_logits).mean()  # -log(sigmoid(D(x)))
        loss = loss_fake + loss_real
        logs: LossLogs = {"loss_D": float(loss.detach()), "loss_D_real": float(loss_real.detach()),
                          "loss_D_fake": float(loss_fake.detach()),
                          "D_real": float(real_logits.detach().mean()), "D_fake": float(fake_logits.detach().mean())}
        if do_r1:
            (grads,) = torch.autograd.grad(real_logits.sum(), real_in, create_graph=True)
            r1 = grads.float().square().sum(dim=[1, 2, 3])  # float32 sum of squares (R1 under bf16)
            # R1 * gamma/2 (loss.py), times the interval when lazy (StyleGAN2 paper, Sec. 3.1 / Appendix B)
            loss_r1 = r1.mean() * (float(c["r1_gamma"]) / 2) * interval
            loss = loss + loss_r1
            logs["r1_penalty"] = float(r1.detach().mean())
            logs["loss_D_r1"] = float(loss_r1.detach())
        return loss, logs

    def cost_key(self, step: int):
        """Lazy regularisation: whether this step runs R1 (D) and the path-length term (G)."""
        c = self.cfg
        return (float(c["r1_gamma"]) > 0 and step % int(c["r1_interval"]) == 0,
                float(c["pl_weight"]) > 0 and step % int(c["pl_interval"]) == 0)

    def generator_loss(self, G: nn.Module, D: nn.Module, z: torch.Tensor, step: int,
                       augment: Augment) -> tuple[torch.Tensor, LossLogs]:
        c = self.cfg
        mix = float(c["style_mixing_prob"])
        fake = G(z, style_mixing_prob=mix)
        loss = F.softplus(-D(augment(fake)).float()).mean()  # -log(sigmoid(D(G(z)))), float32
        logs: LossLogs = {"loss_G": float(loss.detach())}
        interval = int(c["pl_interval"])
        if float(c["pl_weight"]) > 0 and step % interval == 0:
            loss_pl, pl_logs = self._path_length(G, z, mix)
            loss = loss + loss_pl * interval
            logs.update(pl_logs)
        return loss, logs

    def _path_length(self, G: nn.Module, z: torch.Tensor, mix: float) -> tuple[torch.Tensor, LossLogs]:
        """Path-length penalty (StyleGAN2 paper Sec. 3.2; ada loss.py Gpl): E[(|J^T y| - a)^2], y ~ N(0, I)/sqrt(HW)."""
        c = self.cfg
        n = max(1, z.shape[0] // int(c["pl_batch_shrink"]))
        img, ws = G(z[:n], style_mixing_prob=mix, return_ws=True)
        noise = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
        (grads,) = torch.autograd.grad((img.float() * noise.float()).sum(), ws, create_graph=True)
        lengths = grads.float().square().sum(2).mean(1).sqrt()
        buf = _unwrap(G).pl_mean
        pl_mean = buf.lerp(lengths.mean(), float(c["pl_decay"]))
        with torch.no_grad():
            buf.copy_(pl_mean.detach())
        penalty = (lengths - pl_mean).square()
        # `img[:, 0, 0, 0] * 0` keeps every synthesis output in the graph (ada loss.py does the same).
        loss = (penalty * float(c["pl_weight"]) + img[:, 0, 0, 0] * 0).mean()
        return loss, {"pl_penalty": float(penalty.detach().mean()), "pl_mean": float(pl_mean.detach()),
                      "loss_G_pl": float(loss.detach())}

    def ema_beta(self, step: int, batch_size: int) -> float:
        """stylegan2-ada training_loop.py: half-life ema_kimg, optional ramp-up min(ema_nimg, cur_nimg *
        ema_rampup), beta = 0.5 ** (batch / ema_nimg); DiffAugment: beta = 0 (copy G) before ema_start_kimg.
        `step` is the 0-based iteration index, so cur_nimg = step * batch_size images seen before it."""
        c = self.cfg
        cur_nimg = step * batch_size
        if c["ema_start_kimg"] is not None and cur_nimg < float(c["ema_start_kimg"]) * 1000:
            return 0.0
        ema_nimg = float(c["ema_kimg"]) * 1000
        if c["ema_rampup"] is not None:
            ema_nimg = min(ema_nimg, cur_nimg * float(c["ema_rampup"]))
        return 0.5 ** (batch_size / max(ema_nimg, 1e-8))

    # ---- inversion -------------------------------------------------------------------------------
    @torch.no_grad()
    def mean_w(self, G: nn.Module, *, generator: torch.Generator | None = None,
               device: torch.device | str | None = None) -> torch.Tensor:
        """Mean of mapped z over `inversion_w_avg_samples` draws (ada projector.py), shape (w_dim,)."""
        g = _unwrap(G)
        dev = torch.device(device) if device is not None else g.mapping.w_avg.device
        if generator is None:
            generator = torch.Generator(device="cpu").manual_seed(int(self.cfg["inversion_seed"]))
        total, acc, left = int(self.cfg["inversion_w_avg_samples"]), None, int(self.cfg["inversion_w_avg_samples"])
        while left > 0:
            m = min(left, 2048)
            z = torch.randn(m, self.z_dim, generator=generator, device=generator.device).to(dev)
            w = g.mapping(z, update_w_avg=False)[:, 0].to(torch.float64).sum(0)
            acc = w if acc is None else acc + w
            left -= m
        return (acc / total).to(torch.float32)

    def inversion_start(self, G: nn.Module, n: int, *, generator: torch.Generator | None = None,
                        device: torch.device | str | None = None, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Mean w repeated n times: (n, w_dim) in W, or (n, num_ws, w_dim) in W+ (cfg `inversion_space`)."""
        w = self.mean_w(G, generator=generator, device=device)
        if self.cfg["inversion_space"] == "w_plus":
            return w.reshape(1, 1, -1).repeat(n, self.num_ws, 1)
        return w.reshape(1, -1).repeat(n, 1)

    def synthesize(self, G: nn.Module, latent: torch.Tensor) -> torch.Tensor:
        """Images from w (n, w_dim; broadcast to every layer) or ws (n, num_ws, w_dim), const noise."""
        if latent.ndim == 2:
            latent = latent.unsqueeze(1).repeat(1, self.num_ws, 1)
        if latent.ndim != 3 or latent.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"StyleGAN2.synthesize: latent must be (n, {self.w_dim}) or "
                             f"(n, {self.num_ws}, {self.w_dim}), got {tuple(latent.shape)}")
        return G(ws=latent, noise_mode="const")

    # ---- bookkeeping ------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update({"num_ws": self.num_ws, "w_dim": self.w_dim, "z_dim": self.z_dim,
                  "channel_base": self.cfg["channel_base"], "channel_max": self.cfg["channel_max"],
                  "augment_policy": self.cfg["augment_policy"], "optimizers": self.optimizer_settings()})
        return d
