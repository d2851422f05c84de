"""ProGAN (Karras, Aila, Laine & Lehtinen, "Progressive Growing of GANs", ICLR 2018) as a fewgan GANModel.

Networks: `fewgan.models.progan.nets`. Hyperparameters: params/models/progan.yaml (the only source of
defaults; schema `fewgan.models.progan.spec`).

Growth schedule (train.py TrainingSchedule, in images, not iterations): with S = stabilize_images and
F = fade_images, the networks train S images at start_resolution, then alternate a fade-in of the next
level over F images (alpha ramps linearly 0 -> 1) and a stabilisation over S images, until the dataset
resolution is reached; it stays there. Images shown before step s = s * train.batch_size (the global batch,
from `setup(TrainContext)`). The state (level, alpha) is recomputed from `step` at the start of each loss call
and written into buffers of G and D, so snapshots, the EMA copy (which copies non-statistics buffers) and
resume all carry it.

Reals (train.py process_reals): box-downsampled to the current resolution; during a fade they are
lerp(nearest-upsampled half-resolution version, current version, alpha), matching what G produces.

Loss: WGAN-GP (loss.py D_wgangp_acgan/G_wgan_acgan): D = mean(D(fake) - D(real) + lambda/target^2 *
(|grad D(mix)| - target)^2 + eps_drift * D(real)^2), mix = lerp(real, fake, u), u ~ U(0,1) per image;
G = -mean(D(fake)). Per-image terms are averaged over the batch (the reference sums per-GPU; Adam
is insensitive to that scale). Option `lsgan`: least squares (Mao et al.; paper App. B) with D =
mean(0.5 (D(real) - 1)^2 + 0.5 D(fake)^2), G = mean(0.5 (D(fake) - 1)^2); the paper's adaptive
multiplicative-noise hack for LSGAN is not implemented.

Optimiser: Adam(lr, betas (0, 0.99), eps 1e-8). With `reset_optimizer` (train.py reset_opt_for_new_lod=True)
each Adam's state (moments and step counts) is cleared when a fade starts and when it ends, i.e. when
floor(lod) or ceil(lod) changes, before the first update at the new state. The last state seen is kept in
the optimiser's param_groups (key `growth_key`), so it is in the optimiser's state_dict and a resumed
run resets at exactly the same steps (bit-exact resume).

Sampling: `generate` returns full-resolution images: before the final resolution it generates at the
current resolution (with the current alpha) and upsamples nearest-neighbour; images are clipped to
[-1, 1] (the reference clips when exporting images; G's output is linear). Unconditional only: class
labels are ignored (recorded in `fallbacks()`).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import torch
from torch import nn

from fewgan.models.base import TrainContext, Augment, GANModel, LossLogs, register_model
from fewgan.models.progan.nets import Discriminator, Generator, downsample, nf, upsample
from fewgan.models.progan.spec import SCHEMA

MIN_RESOLUTION, MAX_RESOLUTION = 4, 1024
SCORING_RULE = "generated at the current resolution and nearest-upsampled to the dataset resolution"


def validate_cfg(cfg: Mapping[str, Any], schema: Mapping[str, Any], model: str) -> dict[str, Any]:
    """Validate a model block against its schema; the error names the YAML file and the key."""
    import jsonschema

    cfg = dict(cfg)
    where_file = f"params/models/{model}.yaml"
    props = schema["properties"]
    unknown = sorted(set(cfg) - set(props))
    if unknown:
        raise ValueError(f"params models.{model}: unknown key(s) {unknown} (allowed keys: {sorted(props)}; "
                         f"see {where_file})")
    missing = sorted(set(schema.get("required", [])) - set(cfg))
    if missing:
        raise ValueError(f"params models.{model}: missing key(s) {missing} (every key of {where_file} is required; "
                         "the YAML is the only source of defaults)")
    try:
        jsonschema.validate(cfg, schema)
    except jsonschema.ValidationError as err:
        key = ".".join(str(p) for p in err.absolute_path) or "(block)"
        raise ValueError(f"params models.{model}.{key}: {err.message} (fix it in {where_file} or the active "
                         "profile)") from None
    return cfg


def growth_at(nimg: int, resolution: int, start_resolution: int, stabilize_images: int,
              fade_images: int) -> tuple[int, float]:
    """(level, alpha) after `nimg` real images, as train.py TrainingSchedule computes lod:
    lod = log2(R) - log2(start) - phase_idx - max(phase_img - S, 0) / F, clipped at 0; level = log2(R) - floor(lod),
    alpha = 1 - frac(lod)."""
    L, k0 = int(math.log2(resolution)), int(math.log2(start_resolution))
    S, Fd = int(stabilize_images), int(fade_images)
    phase_dur = S + Fd
    phase_idx, phase_img = divmod(int(nimg), phase_dur)
    t = max(phase_img - S, 0) / Fd if Fd > 0 else 0.0  # fade progress in [0, 1)
    level = k0 + phase_idx + (1 if t > 0 else 0)
    if level > L or (level == L and t == 0):
        return L, 1.0
    return level, (t if t > 0 else 1.0)


def growth_key(level: int, alpha: float) -> int:
    """An integer that changes exactly when floor(lod) or ceil(lod) does: 2*level + (1 while fading)."""
    return 2 * int(level) + (1 if alpha < 1.0 else 0)


class GrowthResetAdam(torch.optim.Adam):
    """Adam whose state is cleared whenever `key()` changes (train.py reset_opt_for_new_lod). The last key
    is stored in param_groups, hence in state_dict(), so a resumed run resets at the same steps."""

    def __init__(self, params, key: Callable[[], int], **kwargs):
        super().__init__(params, **kwargs)
        self._key = key
        for group in self.param_groups:
            group["growth_key"] = -1

    def step(self, closure=None):
        key = int(self._key())
        if any(group["growth_key"] != key for group in self.param_groups):
            self.state.clear()  # moments and step counts of every parameter
            for group in self.param_groups:
                group["growth_key"] = key
        return super().step(closure)


def _unwrap(module: nn.Module) -> nn.Module:
    """The model inside a DDP / DataParallel wrapper (for attribute access only, never for forward)."""
    return getattr(module, "module", module)


@register_model("progan")
class ProGAN(GANModel):
    """Progressive growing, equalised lr, pixel norm, minibatch stddev, WGAN-GP (or LSGAN)."""

    config_schema: dict[str, Any] = SCHEMA
    ema_buffers = True  # no normalisation statistics; level/alpha buffers are copied (train/ema.py)
    #: layers of levels not reached yet get no gradient: DDP must look for unused parameters
    ddp_find_unused_parameters = True
    d_steps: int = 1  # train.py D_repeats=1; paper App. A.1: n_critic = 1

    def __init__(self, cfg: Mapping[str, Any], resolution: int, num_classes: int = 0):
        cfg = validate_cfg(cfg, SCHEMA, "progan")
        super().__init__(cfg, resolution)
        self.num_classes = int(num_classes)
        r, c = self.resolution, self.cfg
        if r < MIN_RESOLUTION or r > MAX_RESOLUTION or r & (r - 1):
            raise ValueError(f"ProGAN: resolution must be a power of two in {MIN_RESOLUTION}..{MAX_RESOLUTION}, "
                             f"got {resolution}")
        if c["start_resolution"] > r:
            raise ValueError(f"params models.progan.start_resolution: {c['start_resolution']} exceeds the dataset "
                             f"resolution {r} (fix it in params/models/progan.yaml or the active profile)")
        if c["stabilize_images"] + c["fade_images"] <= 0:
            raise ValueError("params models.progan.stabilize_images/fade_images: both are 0, so the resolution would "
                             "never grow; set start_resolution to the dataset resolution to train without growing "
                             "(params/models/progan.yaml)")
        if nf(int(math.log2(r)) - 1, c["fmap_base"], c["fmap_decay"], c["fmap_max"]) < 1:
            raise ValueError(f"params models.progan.fmap_base: {c['fmap_base']} leaves no feature maps at {r} px "
                             "(nf = fmap_base / 2**stage rounds to 0); raise it in params/models/progan.yaml or the "
                             "active profile")
        self.z_dim = int(c["latent_size"])
        self.ema_decay = float(c["ema_decay"])
        level, alpha = growth_at(0, r, c["start_resolution"], c["stabilize_images"], c["fade_images"])
        nets = {"fmap_base": int(c["fmap_base"]), "fmap_decay": float(c["fmap_decay"]), "fmap_max": int(c["fmap_max"])}
        self.G = Generator(r, latent_size=self.z_dim, normalize_latents=bool(c["normalize_latents"]),
                           pixelnorm_epsilon=float(c["pixelnorm_epsilon"]), level=level, alpha=alpha, **nets)
        self.D = Discriminator(r, mbstd_group_size=int(c["mbstd_group_size"]), level=level, alpha=alpha, **nets)
        self.batch_size: int | None = None  # global batch, from setup(TrainContext)
        self.iterations: int | None = None

    # ---- growth ----------------------------------------------------------------------------------
    def growth_at_step(self, step: int) -> tuple[int, float]:
        if self.batch_size is None:
            raise RuntimeError("ProGAN: call model.setup(TrainContext(...)) before training: the growth schedule is "
                               "in images and needs the global batch size")
        c = self.cfg
        return growth_at(step * self.batch_size, self.resolution, c["start_resolution"], c["stabilize_images"],
                         c["fade_images"])

    def set_growth(self, G: nn.Module, D: nn.Module, step: int) -> tuple[int, float]:
        level, alpha = self.growth_at_step(step)
        for net in (_unwrap(G), _unwrap(D)):
            net.set_growth(level, alpha)
        return level, alpha

    def cost_key(self, step: int):
        """The networks' current level, and whether a fade runs both the old and the new output path."""
        level, alpha = self.growth_at_step(step)
        return (level, 0.0 < alpha < 1.0)

    def real_images_at(self, real: torch.Tensor, level: int, alpha: float) -> torch.Tensor:
        """Reals at the current resolution, blended during a fade (train.py process_reals)."""
        x = downsample(real, self.resolution // 2 ** level)
        if alpha < 1.0:
            x = torch.lerp(upsample(downsample(x)), x, alpha)
        return x

    def setup(self, ctx: TrainContext) -> None:
        """The growth schedule counts images: it needs the global batch (and the run's length, for the
        fallback that says how far growth gets)."""
        super().setup(ctx)
        self.batch_size = int(ctx.batch_size)
        self.iterations = int(ctx.iterations)

    # ---- sampling -------------------------------------------------------------------------------
    def sample_latents(self, n: int, *, generator: torch.Generator | None = None,
                       device: torch.device | str | None = None, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Standard normal (n, latent_size); G normalises them onto the hypersphere. Labels are ignored."""
        return torch.randn(n, self.z_dim, generator=generator, device=device)

    def generate(self, G: nn.Module, z: torch.Tensor) -> torch.Tensor:
        img = G(z)
        factor = self.resolution // img.shape[-1]
        return upsample(img, factor).clamp(-1.0, 1.0)

    def inversion_start(self, G: nn.Module, n: int, *, generator: torch.Generator | None = None,
                        device: torch.device | str | None = None, labels: torch.Tensor | None = None) -> torch.Tensor:
        """A random latent (not zeros: pixel norm maps z to the unit sphere, where 0 has no direction)."""
        return self.sample_latents(n, generator=generator, device=device)

    # ---- training --------------------------------------------------------------------------------
    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.cfg
        kw = {"lr": float(c["lr"]), "betas": (float(c["betas"][0]), float(c["betas"][1])), "eps": float(c["eps"])}
        if not c["reset_optimizer"]:
            return {"G": torch.optim.Adam(self.G.parameters(), **kw), "D": torch.optim.Adam(self.D.parameters(), **kw)}
        G, D = self.G, self.D
        return {"G": GrowthResetAdam(G.parameters(), key=lambda: growth_key(*G.growth()), **kw),
                "D": GrowthResetAdam(D.parameters(), key=lambda: growth_key(*D.growth()), **kw)}

    def discriminator_loss(self, G: nn.Module, D: nn.Module, real: torch.Tensor, z: torch.Tensor, step: int,
                           augment: Augment, real_labels: torch.Tensor | None = None) -> tuple[torch.Tensor, LossLogs]:
        c = self.cfg
        level, alpha = self.set_growth(G, D, step)
        with torch.no_grad():
            fake = G(z)
        real_x = augment(self.real_images_at(real, level, alpha))
        fake_x = augment(fake)
        real_s = D(real_x)
        fake_s = D(fake_x)
        logs: LossLogs = {"level": float(level), "alpha": float(alpha),
                          "D_real": float(real_s.detach().mean()), "D_fake": float(fake_s.detach().mean())}
        if c["loss"] == "lsgan":
            loss_real = 0.5 * (real_s - 1.0).square().mean()
            loss_fake = 0.5 * fake_s.square().mean()
            loss = loss_real + loss_fake
            logs.update({"loss_D": float(loss.detach()), "loss_D_real": float(loss_real.detach()),
                         "loss_D_fake": float(loss_fake.detach())})
            return loss, logs
        # WGAN-GP with drift term (loss.py D_wgangp_acgan)
        u = torch.rand(real_x.shape[0], 1, 1, 1, device=real_x.device, dtype=real_x.dtype)
        mixed = torch.lerp(real_x.detach(), fake_x.detach(), u).requires_grad_(True)
        mixed_s = D(mixed)
        (grads,) = torch.autograd.grad(mixed_s.sum(), mixed, create_graph=True)
        norms = grads.square().sum(dim=[1, 2, 3]).sqrt()
        target = float(c["wgan_target"])
        penalty = (norms - target).square() * (float(c["wgan_lambda"]) / target ** 2)
        drift = real_s.square().flatten() * float(c["wgan_epsilon"])
        wdist = (fake_s - real_s).flatten()
        loss = (wdist + penalty + drift).mean()
        logs.update({"loss_D": float(loss.detach()), "wgan_distance": float(-wdist.detach().mean()),
                     "gradient_penalty": float(penalty.detach().mean()), "grad_norm": float(norms.detach().mean()),
                     "drift_penalty": float(drift.detach().mean())})
        return loss, logs

    def generator_loss(self, G: nn.Module, D: nn.Module, z: torch.Tensor, step: int,
                       augment: Augment) -> tuple[torch.Tensor, LossLogs]:
        self.set_growth(G, D, step)
        scores = D(augment(G(z)))
        if self.cfg["loss"] == "lsgan":
            loss = 0.5 * (scores - 1.0).square().mean()
        else:
            loss = -scores.mean()  # loss.py G_wgan_acgan
        return loss, {"loss_G": float(loss.detach())}

    # ---- bookkeeping ------------------------------------------------------------------------------
    def growth_info(self) -> dict[str, Any]:
        level, alpha = self.G.growth()
        return {"resolution": 2 ** level, "alpha": alpha,
                "final": level == self.G.max_level and alpha == 1.0, "scoring_rule": SCORING_RULE}

    def snapshot_note(self) -> str | None:
        g = self.growth_info()
        if g["final"]:
            return None
        return (f"ProGAN snapshot taken at {g['resolution']} px (alpha {g['alpha']:.3f}) of {self.resolution} px: "
                f"{SCORING_RULE}")

    def fallbacks(self) -> list[str]:
        out = []
        if self.num_classes > 1:
            out.append(f"ProGAN is trained unconditionally: the dataset's {self.num_classes} class labels are ignored")
        if self.batch_size is not None and self.iterations:
            level, alpha = self.growth_at_step(self.iterations - 1)
            if level < self.G.max_level or alpha < 1.0:
                out.append(f"ProGAN's growth schedule reaches only {2 ** level} px (alpha {alpha:.3f}) of "
                           f"{self.resolution} px within train.iterations={self.iterations} at batch "
                           f"{self.batch_size}: snapshots are {SCORING_RULE}")
        return out

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        c = self.cfg
        d.update({"z_dim": self.z_dim, "num_classes": self.num_classes, "conditional": False, "loss": c["loss"],
                  "growth": self.growth_info(),
                  "schedule": {"start_resolution": c["start_resolution"], "stabilize_images": c["stabilize_images"],
                               "fade_images": c["fade_images"], "batch_size": self.batch_size,
                               "reset_optimizer": c["reset_optimizer"]},
                  "augment_policy": c["augment_policy"]})
        return d
