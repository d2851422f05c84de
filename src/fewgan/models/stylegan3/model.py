"""StyleGAN3-T / StyleGAN3-R as a fewgan GANModel.

Networks: G = `fewgan.models.stylegan3.nets.Generator` (alias-free synthesis, StyleGAN2's mapping network);
D = StyleGAN2's residual discriminator (`fewgan.models.stylegan2.nets.Discriminator`, as NVlabs/stylegan3
train.py builds `training.networks_stylegan2.Discriminator` for every config).

Training follows NVlabs/stylegan3 train.py / training/loss.py (StyleGAN2Loss) / training_loop.py:
- non-saturating logistic loss, R1 on reals every `r1_interval` D steps (lazy, x interval; D's Adam lr and
  betas adjusted by interval/(interval+1)), no path-length regularisation and no style mixing for T and R
  (StyleGAN2's loss methods are reused through inheritance, so the terms and logs are those of fewgan's
  StyleGAN2);
- G lr 0.0025, D lr 0.002, Adam betas (0, 0.99), eps 1e-8;
- EMA half-life batch * ema_kimg_at_batch32 / 32 kimg with ramp-up 0.05 (train.py c.ema_kimg, training_loop
  ema_rampup), so beta = 0.5 ** (32 / (1000 ema_kimg_at_batch32)) per step after the ramp-up;
- magnitude EMA decay 0.5 ** (batch / (1000 magnitude_ema_kimg)) (train.py G_kwargs.magnitude_ema_beta), set from
  the global batch in `setup`; the input magnitudes and w_avg are updated by the G forward of the D step only
  (loss.py Dgen: update_emas=True);
- config R: 1x1 convolutions, twice channel_base and channel_max in G (not in D), radial down-sampling filters,
  and D sees blurred images: Gaussian sigma = r_blur_sigma * max(1 - nimg / (batch * fade / 32 * 1000), 0)
  (loss.py run_D, train.py blur_fade_kimg = batch * 200 / 32); nimg = step * batch, so the blur is a pure
  function of the step and a resumed run blurs exactly as an uninterrupted one.

The augmentation (`augment_policy`, DiffAugment; '' = off) is the mechanism of fewgan's StyleGAN2: built by the
loop, applied to reals and fakes after the blur (the reference's order: blur, then its ADA pipe), R1 taken
through it. The official runs use ADA instead, which fewgan does not implement (say so in reports).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from fewgan.models.base import Augment, GANModel, LossLogs, TrainContext, register_model
from fewgan.models.specs import validate_block
from fewgan.models.stylegan2.model import StyleGAN2
from fewgan.models.stylegan2.nets import Discriminator
from fewgan.models.stylegan3.nets import Generator, gaussian_blur
from fewgan.models.stylegan3.spec import SCHEMA

#: train.py for --cfg=stylegan3-r: conv_kernel 1, channel_base *= 2, channel_max *= 2, use_radial_filters
R_CHANNEL_FACTOR = 2


@register_model("stylegan3")
class StyleGAN3(StyleGAN2):
    """Alias-free generator (T: translation, R: translation and rotation equivariant) with StyleGAN2's D and loss."""

    config_schema: dict[str, Any] = SCHEMA
    ema_buffers = True  # w_avg and magnitude_ema are copied into G_ema (training_loop copies every buffer)

    def __init__(self, cfg: Mapping[str, Any], resolution: int, num_classes: int = 0):
        cfg = validate_block("stylegan3", cfg)  # every key required: params/models/stylegan3.yaml
        GANModel.__init__(self, cfg, resolution, num_classes)
        r = self.resolution
        if r < 16 or r & (r - 1):
            raise ValueError(f"StyleGAN3: resolution must be a power of two >= 16, got {resolution}")
        c = self.cfg
        if c["num_critical"] >= c["num_layers"]:
            raise ValueError("params/models/stylegan3.yaml: num_critical must be smaller than num_layers")
        is_r = c["config"] == "r"
        k = R_CHANNEL_FACTOR if is_r else 1
        self.z_dim = int(c["z_dim"])
        self.w_dim = int(c["w_dim"])
        self.G = Generator(
            self.z_dim, self.w_dim, r, mapping_layers=int(c["mapping_layers"]),
            mapping_lr_multiplier=float(c["mapping_lr_multiplier"]), w_avg_beta=float(c["w_avg_beta"]),
            channel_base=int(c["channel_base"]) * k, channel_max=int(c["channel_max"]) * k,
            num_layers=int(c["num_layers"]), num_critical=int(c["num_critical"]),
            first_cutoff=float(c["first_cutoff"]), first_stopband=float(c["first_stopband"]),
            last_stopband_rel=float(c["last_stopband_rel"]), margin_size=int(c["margin_size"]),
            output_scale=float(c["output_scale"]), conv_kernel=1 if is_r else 3, filter_size=int(c["filter_size"]),
            lrelu_upsampling=int(c["lrelu_upsampling"]), use_radial_filters=is_r,
            conv_clamp=None if c["conv_clamp"] is None else float(c["conv_clamp"]))
        self.D = Discriminator(r, channel_base=int(c["channel_base"]), channel_max=int(c["channel_max"]),
                               mbstd_group_size=int(c["mbstd_group_size"]),
                               mbstd_num_channels=int(c["mbstd_num_channels"]))
        self.num_ws = self.G.num_ws
        self.batch_size: int | None = None

    # ---- run facts ---------------------------------------------------------------------------------
    def setup(self, ctx: TrainContext) -> None:
        """The magnitude EMA decay, the EMA half-life and R's blur fade are in images: they need the global batch."""
        super().setup(ctx)
        self.batch_size = int(ctx.batch_size)
        self.G.set_magnitude_ema_beta(0.5 ** (self.batch_size / (float(self.cfg["magnitude_ema_kimg"]) * 1000)))

    def _batch(self) -> int:
        if self.batch_size is None:
            raise RuntimeError("StyleGAN3: call model.setup(TrainContext(...)) before training: the magnitude EMA, "
                               "the EMA half-life and R's blur fade are defined in images and need the global batch")
        return self.batch_size

    def blur_sigma(self, step: int) -> float:
        """D's input blur at iteration `step` (loss.py accumulate_gradients): R only, 0 for T."""
        c = self.cfg
        if c["config"] != "r" or float(c["r_blur_sigma"]) <= 0 or float(c["r_blur_fade_kimg_at_batch32"]) <= 0:
            return 0.0
        batch = self._batch()
        fade_nimg = batch * float(c["r_blur_fade_kimg_at_batch32"]) / 32 * 1000
        return max(1.0 - step * batch / fade_nimg, 0.0) * float(c["r_blur_sigma"])

    # ---- sampling ---------------------------------------------------------------------------------
    def generate(self, G: nn.Module, z: torch.Tensor) -> torch.Tensor:
        """Untruncated samples (psi = 1, as for FID). StyleGAN3 has no noise inputs: deterministic in z."""
        return G(z)

    # ---- training ---------------------------------------------------------------------------------
    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Adam for G (lr g_lr, no lazy G regulariser: G_reg_interval None) and D (d_lr, lazy R1 adjustment)."""
        c = self.cfg
        betas, eps = (float(c["betas"][0]), float(c["betas"][1])), float(c["eps"])
        d_lr, d_betas = float(c["d_lr"]), betas
        interval = int(c["r1_interval"])
        if c["lazy_lr_adjust"] and float(c["r1_gamma"]) > 0 and interval > 1:
            ratio = interval / (interval + 1)  # training_loop.py mb_ratio
            d_lr, d_betas = d_lr * ratio, (betas[0] ** ratio, betas[1] ** ratio)
        return {"G": torch.optim.Adam(self.G.parameters(), lr=float(c["g_lr"]), betas=betas, eps=eps),
                "D": torch.optim.Adam(self.D.parameters(), lr=d_lr, betas=d_betas, eps=eps)}

    def discriminator_loss(self, G: nn.Module, D: nn.Module, real: torch.Tensor, z: torch.Tensor, step: int,
                           augment: Augment, real_labels: torch.Tensor | None = None) -> tuple[torch.Tensor, LossLogs]:
        c = self.cfg
        sigma = self.blur_sigma(step)
        with torch.no_grad():
            fake = G(z, style_mixing_prob=float(c["style_mixing_prob"]), update_emas=True)
        fake_logits = D(augment(gaussian_blur(fake, sigma))).float()
        interval = int(c["r1_interval"])
        do_r1 = float(c["r1_gamma"]) > 0 and step % interval == 0
        real_in = real.detach().requires_grad_(do_r1)
        real_logits = D(augment(gaussian_blur(real_in, sigma))).float()
        loss_fake = F.softplus(fake_logits).mean()   # -log(1 - sigmoid(D(G(z))))
        loss_real = F.softplus(-real_logits).mean()  # -log(sigmoid(D(x)))
        loss = loss_fake + loss_real
        logs: LossLogs = {"loss_D": float(loss.detach()), "loss_D_real": float(loss_real.detach()),
                          "loss_D_fake": float(loss_fake.detach()), "D_real": float(real_logits.detach().mean()),
                          "D_fake": float(fake_logits.detach().mean()), "blur_sigma": sigma}
        if do_r1:
            (grads,) = torch.autograd.grad(real_logits.sum(), real_in, create_graph=True)
            r1 = grads.float().square().sum(dim=[1, 2, 3])
            loss_r1 = r1.mean() * (float(c["r1_gamma"]) / 2) * interval  # loss.py gamma/2; lazy: x interval (gain)
            loss = loss + loss_r1
            logs["r1_penalty"] = float(r1.detach().mean())
            logs["loss_D_r1"] = float(loss_r1.detach())
        return loss, logs

    def generator_loss(self, G: nn.Module, D: nn.Module, z: torch.Tensor, step: int,
                       augment: Augment) -> tuple[torch.Tensor, LossLogs]:
        fake = G(z, style_mixing_prob=float(self.cfg["style_mixing_prob"]))
        loss = F.softplus(-D(augment(gaussian_blur(fake, self.blur_sigma(step)))).float()).mean()
        return loss, {"loss_G": float(loss.detach())}

    def cost_key(self, step: int):
        """Lazy R1 (D) and whether R's blur still runs (its cost depends on sigma's support)."""
        c = self.cfg
        return (float(c["r1_gamma"]) > 0 and step % int(c["r1_interval"]) == 0,
                math.floor(3 * self.blur_sigma(step)) if self.batch_size is not None else 0)

    def ema_beta(self, step: int, batch_size: int) -> float:
        """training_loop.py: ema_nimg = ema_kimg * 1000 with ema_kimg = batch * ema_kimg_at_batch32 / 32 (train.py),
        ramp-up min(ema_nimg, cur_nimg * ema_rampup); beta = 0.5 ** (batch / ema_nimg)."""
        c = self.cfg
        cur_nimg = step * batch_size
        ema_nimg = batch_size * float(c["ema_kimg_at_batch32"]) / 32 * 1000
        if c["ema_rampup"] is not None:
            ema_nimg = min(ema_nimg, cur_nimg * float(c["ema_rampup"]))
        return 0.5 ** (batch_size / max(ema_nimg, 1e-8))

    @torch.no_grad()
    def inversion_latent_std(self, G: nn.Module) -> float:
        """The projector's latent-noise scale (stylegan2-ada/stylegan3 projector.py w_std): the RMS distance of the
        `inversion_w_avg_samples` seeded w draws to their mean (the draws `mean_w` averages)."""
        g = getattr(G, "module", G)
        w_avg = self.mean_w(G).to(torch.float64)
        gen = torch.Generator(device="cpu").manual_seed(int(self.cfg["inversion_seed"]))
        total = left = int(self.cfg["inversion_w_avg_samples"])
        acc = 0.0
        while left > 0:
            m = min(left, 2048)
            z = torch.randn(m, self.z_dim, generator=gen).to(g.mapping.w_avg.device)
            w = g.mapping(z, update_w_avg=False)[:, 0].to(torch.float64).cpu()
            acc += float((w - w_avg.cpu()).square().sum())
            left -= m
        return (acc / total) ** 0.5

    # ---- bookkeeping --------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        d = GANModel.describe(self)
        c = self.cfg
        syn = self.G.synthesis
        d.update({"config": c["config"], "num_ws": self.num_ws, "w_dim": self.w_dim, "z_dim": self.z_dim,
                  "layers": [{"size": L.out_size, "channels": L.out_channels, "up": L.up_factor, "down": L.down_factor,
                              "radial": L.down_radial, "critical": L.is_critically_sampled}
                             for L in syn.layers],
                  "augment_policy": c["augment_policy"], "optimizers": self.optimizer_settings(),
                  "fp32_only": "no fp16 layers (the reference runs its 4 highest-rate layers in fp16)"})
        return d
