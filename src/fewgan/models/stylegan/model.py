"""StyleGAN (Karras, Laine & Aila, CVPR 2019) as a fewgan GANModel.

Networks: `fewgan.models.stylegan.nets`. Hyperparameters: params/models/stylegan.yaml (schema
`fewgan.models.stylegan.spec`), the FFHQ configuration of NVlabs/stylegan train.py.

Progressive growing reuses ProGAN's machinery (`fewgan.models.progan.model`), as StyleGAN's training loop is
ProGAN's: `growth_at` (training_loop.py training_schedule: lod_initial_resolution 8, 600k images per stage and
per fade), the real images' cross-fade (process_reals FadeLOD), and `GrowthResetAdam` (reset_opt_for_new_lod).
StyleGAN adds a learning rate per resolution (train.py G_lrate_dict = D_lrate_dict = {128: 0.0015, 256: 0.002,
512: 0.003, 1024: 0.003}, 0.001 elsewhere): the Adam groups' lr is set from the current level before every
update, so it is a function of the step and a resumed run uses the same rates.

Loss (loss.py G_logistic_nonsaturating, D_logistic_simplegp): D = softplus(D(G(z))) + softplus(-D(x)) +
gamma/2 |grad_x D(x)|^2 on reals every step (gamma 10); G = softplus(-D(G(z))). Both G passes run with style
mixing (probability 0.9; G_style is_training=True in both losses). The reference feeds D full-resolution images
(reals and fakes nearest-upscaled by 2**floor(lod), which D box-downscales again); here D runs at the current
resolution, which gives the same scores, and R1 is divided by 4**floor(lod): the squared gradient norm with
respect to an image nearest-upscaled by f is |grad|^2 / f^2 of the one at the current resolution.

EMA: training_loop G_smoothing_kimg 10: beta = 0.5 ** (batch / 10,000) per step.
Sampling: like ProGAN, before the final resolution `generate` upsamples the current resolution's images
(nearest, as the reference's recursive structure does); noise per `sample_noise_mode`. Inversion optimises one w
(or W+), starting at the mean of mapped z (as fewgan's StyleGAN2). Unconditional only (labels ignored).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from fewgan.models.base import Augment, GANModel, LossLogs, TrainContext, register_model
from fewgan.models.progan.model import (GrowthResetAdam, ProGAN, growth_at, growth_key, validate_cfg)
from fewgan.models.progan.nets import downsample, nf, upsample
from fewgan.models.stylegan.nets import Discriminator, Generator
from fewgan.models.stylegan.spec import SCHEMA

SCORING_RULE = "generated at the current resolution and nearest-upsampled to the dataset resolution"


def _unwrap(module: nn.Module) -> nn.Module:
    return getattr(module, "module", module)


class ScheduledAdam(GrowthResetAdam):
    """ProGAN's GrowthResetAdam (state cleared when a fade starts and ends, if `reset`) whose lr follows the
    current resolution (train.py G_lrate_dict / D_lrate_dict)."""

    def __init__(self, params, key: Callable[[], int], lr_now: Callable[[], float], reset: bool, **kwargs):
        super().__init__(params, key=key if reset else (lambda: 0), lr=lr_now(), **kwargs)
        self._lr_now = lr_now

    def step(self, closure=None):
        lr = float(self._lr_now())
        for group in self.param_groups:
            group["lr"] = lr
        return super().step(closure)


@register_model("stylegan")
class StyleGAN(ProGAN):
    """Style-based G (mapping, AdaIN, noise, mixing), ProGAN-style D with blur, progressive growing, R1."""

    config_schema: dict[str, Any] = SCHEMA
    ema_buffers = True  # dlatent_avg, noise buffers and the growth state are copied into G_ema
    ddp_find_unused_parameters = True
    d_steps: int = 1  # training_loop D_repeats=1
    truncation_meaning = "StyleGAN's truncation trick: w = w_avg + psi (w - w_avg) on the first `truncation_cutoff` layers, const noise"

    def __init__(self, cfg: Mapping[str, Any], resolution: int, num_classes: int = 0):
        cfg = validate_cfg(cfg, SCHEMA, "stylegan")
        GANModel.__init__(self, cfg, resolution, num_classes)
        r, c = self.resolution, self.cfg
        if r < 8 or r > 1024 or r & (r - 1):
            raise ValueError(f"StyleGAN: resolution must be a power of two in 8..1024, got {resolution}")
        if c["start_resolution"] > r:
            raise ValueError(f"params models.stylegan.start_resolution: {c['start_resolution']} exceeds the dataset "
                             f"resolution {r} (fix it in params/models/stylegan.yaml or the active profile)")
        if c["stabilize_images"] + c["fade_images"] <= 0:
            raise ValueError("params models.stylegan.stabilize_images/fade_images: both are 0 (the resolution would "
                             "never grow); set start_resolution to the dataset resolution to train without growing")
        if nf(int(math.log2(r)) - 1, c["fmap_base"], c["fmap_decay"], c["fmap_max"]) < 1:
            raise ValueError(f"params models.stylegan.fmap_base: {c['fmap_base']} leaves no feature maps at {r} px")
        self.z_dim = int(c["latent_size"])
        self.w_dim = int(c["dlatent_size"])
        level, alpha = growth_at(0, r, c["start_resolution"], c["stabilize_images"], c["fade_images"])
        fm = {"fmap_base": int(c["fmap_base"]), "fmap_decay": float(c["fmap_decay"]), "fmap_max": int(c["fmap_max"])}
        self.G = Generator(r, latent_size=self.z_dim, dlatent_size=self.w_dim, mapping_layers=int(c["mapping_layers"]),
                           mapping_lrmul=float(c["mapping_lrmul"]), dlatent_avg_beta=float(c["dlatent_avg_beta"]),
                           pixelnorm_epsilon=float(c["pixelnorm_epsilon"]), level=level, alpha=alpha, **fm)
        self.D = Discriminator(r, mbstd_group_size=int(c["mbstd_group_size"]), level=level, alpha=alpha, **fm)
        self.num_ws = self.G.num_ws
        self.batch_size: int | None = None
        self.iterations: int | None = None

    # ---- learning rate per resolution ---------------------------------------------------------------------
    def lr_at_level(self, level: int) -> float:
        table = {int(res): float(lr) for res, lr in self.cfg["lr_per_resolution"]}
        return table.get(2 ** int(level), float(self.cfg["lr"]))

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.cfg
        kw = {"betas": (float(c["betas"][0]), float(c["betas"][1])), "eps": float(c["eps"])}
        reset = bool(c["reset_optimizer"])
        G, D = self.G, self.D
        return {"G": ScheduledAdam(G.parameters(), key=lambda: growth_key(*G.growth()),
                                   lr_now=lambda: self.lr_at_level(G.growth()[0]), reset=reset, **kw),
                "D": ScheduledAdam(D.parameters(), key=lambda: growth_key(*D.growth()),
                                   lr_now=lambda: self.lr_at_level(D.growth()[0]), reset=reset, **kw)}

    def ema_beta(self, step: int, batch_size: int) -> float:
        """training_loop.py Gs_beta = 0.5 ** (minibatch / (G_smoothing_kimg * 1000))."""
        kimg = float(self.cfg["ema_kimg"])
        return 0.5 ** (batch_size / (kimg * 1000)) if kimg > 0 else 0.0

    # ---- losses ------------------------------------------------------------------------------------------
    def discriminator_loss(self, G: nn.Module, D: nn.Module, real: torch.Tensor, z: torch.Tensor, step: int,
                           augment: Augment, real_labels: torch.Tensor | None = None) -> tuple[torch.Tensor, LossLogs]:
        c = self.cfg
        level, alpha = self.set_growth(G, D, step)
        with torch.no_grad():
            fake = G(z, style_mixing_prob=float(c["style_mixing_prob"]))
        fake_logits = D(augment(fake)).float()
        do_r1 = float(c["r1_gamma"]) > 0
        real_in = self.real_images_at(real, level, alpha).detach().requires_grad_(do_r1)
        real_logits = D(augment(real_in)).float()
        loss_fake = F.softplus(fake_logits).mean()   # -log(1 - sigmoid(D(G(z))))
        loss_real = F.softplus(-real_logits).mean()  # -log(sigmoid(D(x)))
        loss = loss_fake + loss_real
        logs: LossLogs = {"level": float(level), "alpha": float(alpha), "loss_D": float(loss.detach()),
                          "loss_D_real": float(loss_real.detach()), "loss_D_fake": float(loss_fake.detach()),
                          "D_real": float(real_logits.detach().mean()), "D_fake": float(fake_logits.detach().mean())}
        if do_r1:
            (grads,) = torch.autograd.grad(real_logits.sum(), real_in, create_graph=True)
            # R1 w.r.t. the reference's full-resolution input (nearest-upscaled by f = 2**floor(lod)): / f^2
            f2 = 4 ** (self.G.max_level - level)
            r1 = grads.float().square().sum(dim=[1, 2, 3]) / f2
            loss_r1 = r1.mean() * (float(c["r1_gamma"]) * 0.5)
            loss = loss + loss_r1
            logs.update({"r1_penalty": float(r1.detach().mean()), "loss_D_r1": float(loss_r1.detach())})
        return loss, logs

    def generator_loss(self, G: nn.Module, D: nn.Module, z: torch.Tensor, step: int,
                       augment: Augment) -> tuple[torch.Tensor, LossLogs]:
        self.set_growth(G, D, step)
        fake = G(z, style_mixing_prob=float(self.cfg["style_mixing_prob"]))
        loss = F.softplus(-D(augment(fake)).float()).mean()  # -log(sigmoid(D(G(z))))
        return loss, {"loss_G": float(loss.detach())}

    # ---- sampling ----------------------------------------------------------------------------------------
    def generate(self, G: nn.Module, z: torch.Tensor) -> torch.Tensor:
        img = G(z, noise_mode=self.cfg["sample_noise_mode"])
        return upsample(img, self.resolution // img.shape[-1]).clamp(-1.0, 1.0)

    def generate_truncated(self, G: nn.Module, z: torch.Tensor, psi: float) -> torch.Tensor:
        """G_style's truncation trick (psi, cutoff `truncation_cutoff` = 8 layers), const noise; figures only."""
        img = G(z, truncation_psi=float(psi), truncation_cutoff=int(self.cfg["truncation_cutoff"]), noise_mode="const")
        return upsample(img, self.resolution // img.shape[-1]).clamp(-1.0, 1.0)

    @torch.no_grad()
    def mean_w(self, G: nn.Module, *, generator: torch.Generator | None = None,
               device: torch.device | str | None = None) -> torch.Tensor:
        g = _unwrap(G)
        dev = torch.device(device) if device is not None else g.dlatent_avg.device
        if generator is None:
            generator = torch.Generator(device="cpu").manual_seed(int(self.cfg["inversion_seed"]))
        total = left = int(self.cfg["inversion_w_avg_samples"])
        acc = None
        while left > 0:
            m = min(left, 2048)
            z = torch.randn(m, self.z_dim, generator=generator, device=generator.device).to(dev)
            w = g.mapping(z).to(torch.float64).sum(0)
            acc = w if acc is None else acc + w
            left -= m
        return (acc / total).to(torch.float32)

    @torch.no_grad()
    def inversion_latent_std(self, G: nn.Module) -> float:
        """The projector's latent-noise scale (stylegan2-ada projector.py w_std): the RMS distance of the
        `inversion_w_avg_samples` seeded w draws to their mean (the draws `mean_w` averages)."""
        g = _unwrap(G)
        w_avg = self.mean_w(G).to(torch.float64).cpu()
        gen = torch.Generator(device="cpu").manual_seed(int(self.cfg["inversion_seed"]))
        total = left = int(self.cfg["inversion_w_avg_samples"])
        acc = 0.0
        while left > 0:
            m = min(left, 2048)
            z = torch.randn(m, self.z_dim, generator=gen).to(g.dlatent_avg.device)
            acc += float((g.mapping(z).to(torch.float64).cpu() - w_avg).square().sum())
            left -= m
        return (acc / total) ** 0.5

    def inversion_start(self, G: nn.Module, n: int, *, generator: torch.Generator | None = None,
                        device: torch.device | str | None = None, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Mean w repeated n times: (n, w_dim) in W, or (n, num_ws, w_dim) in W+ (cfg `inversion_space`)."""
        w = self.mean_w(G, generator=generator, device=device)
        if self.cfg["inversion_space"] == "w_plus":
            return w.reshape(1, 1, -1).repeat(n, self.num_ws, 1)
        return w.reshape(1, -1).repeat(n, 1)

    def synthesize(self, G: nn.Module, latent: torch.Tensor) -> torch.Tensor:
        if latent.ndim == 2:
            latent = latent.unsqueeze(1).repeat(1, self.num_ws, 1)
        if latent.ndim != 3 or latent.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"StyleGAN.synthesize: latent must be (n, {self.w_dim}) or (n, {self.num_ws}, "
                             f"{self.w_dim}), got {tuple(latent.shape)}")
        img = G(ws=latent, noise_mode="const")
        return upsample(img, self.resolution // img.shape[-1]).clamp(-1.0, 1.0)

    # ---- bookkeeping -------------------------------------------------------------------------------------
    def fallbacks(self) -> list[str]:
        return [f.replace("ProGAN", "StyleGAN") for f in super().fallbacks()]

    def snapshot_note(self) -> str | None:
        note = super().snapshot_note()
        return None if note is None else note.replace("ProGAN", "StyleGAN")

    def describe(self) -> dict[str, Any]:
        d = GANModel.describe(self)
        c = self.cfg
        level, _ = self.G.growth()
        d.update({"z_dim": self.z_dim, "w_dim": self.w_dim, "num_ws": self.num_ws, "conditional": False,
                  "growth": self.growth_info(), "lr_now": self.lr_at_level(level),
                  "schedule": {"start_resolution": c["start_resolution"], "stabilize_images": c["stabilize_images"],
                               "fade_images": c["fade_images"], "batch_size": self.batch_size,
                               "reset_optimizer": c["reset_optimizer"], "lr_per_resolution": c["lr_per_resolution"]},
                  "augment_policy": c["augment_policy"]})
        return d
