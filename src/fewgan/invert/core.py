"""Latent optimisation that reconstructs target images through a generator (GAN inversion).

Two recipes:

* ``backtrack`` - FastGAN's official back-tracking script (paper, Table 5): Adam(lr 0.1, betas
  (0.5, 0.999)) on the latent, loss = LPIPS(avgpool2(G(w)), avgpool2(x)) + 0.2 * MSE(G(w), x).
* ``projector`` - stylegan2-ada-pytorch ``projector.py``: Adam(betas (0.9, 0.999)), lr 0.1 with a
  linear warm-up over the first 5 % of steps and a cosine ramp-down over the last 25 %, Gaussian noise
  on the latent whose scale decays quadratically to zero over the first 75 %, LPIPS loss on images
  area-downsampled to at most 256 px. The projector's noise-buffer regulariser is not applied: the
  fewgan model contract (``synthesize``) exposes no noise buffers (recorded in the settings).

Every image in a batch has its own latent and its own loss term; the batch loss is the *sum* of the
per-image losses, so an image's latent trajectory does not depend on which other images share its
batch. Images are float tensors in [-1, 1], NCHW.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from fewgan.images import from_uint8, to_uint8
from fewgan.models.base import GANModel

#: (a, b) -> per-image distance (N,), inputs in [-1, 1] NCHW. fewgan.nets.lpips.build_lpips's module.
Distance = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

BACKTRACK_BETAS = (0.5, 0.999)  # FastGAN back-tracking script: Adam betas
PROJECTOR_BETAS = (0.9, 0.999)  # stylegan2-ada-pytorch projector.py: Adam betas


def per_image_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image (N,), on whatever scale the inputs are in."""
    return (a - b).pow(2).flatten(1).mean(1)


def backtrack_loss(lpips: Distance, synth: torch.Tensor, target: torch.Tensor,
                   mse_weight: float = 0.2, to_pooled_target: Callable | None = None) -> torch.Tensor:
    """Per-image FastGAN back-tracking loss (N,): LPIPS on 2x average-pooled images + w * MSE.

    Both terms on [-1, 1] images (FastGAN script: images normalised to [-1, 1]; 0.2 weight).
    `to_pooled_target`: LPIPS against the pooled target with its features kept (fixed_target), the same
    values without recomputing the target's backbone features every step."""
    pooled = F.avg_pool2d(synth, 2)
    dist = (to_pooled_target(pooled) if to_pooled_target is not None
            else lpips(pooled, F.avg_pool2d(target, 2))).reshape(-1)
    return dist + mse_weight * per_image_mse(synth, target)


def fixed_target(lpips: Distance, target: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """x -> lpips(x, target) with the target's side computed once when the distance can keep it
    (fewgan.nets.lpips.LPIPSDistance.to_target), else a plain closure."""
    keep = getattr(lpips, "to_target", None)
    return keep(target) if keep is not None else (lambda x: lpips(x, target))


def downsample_for_lpips(x: torch.Tensor, max_res: int) -> torch.Tensor:
    """Area-downsample images larger than `max_res` (stylegan2-ada projector: to 256 px)."""
    if x.shape[-1] > max_res:
        return F.interpolate(x, size=(max_res, max_res), mode="area")
    return x


def projector_schedule(step: int, steps: int, *, lr: float, lr_rampup: float, lr_rampdown: float,
                       noise_ramp: float, initial_noise_factor: float, latent_std: float) -> tuple[float, float]:
    """(learning rate, latent-noise std) at `step` (stylegan2-ada-pytorch projector.py)."""
    t = step / steps
    noise = latent_std * initial_noise_factor * max(0.0, 1.0 - t / noise_ramp) ** 2
    ramp = min(1.0, (1.0 - t) / lr_rampdown) if lr_rampdown > 0 else 1.0
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    if lr_rampup > 0:
        ramp *= min(1.0, t / lr_rampup)
    return lr * ramp, noise


@dataclass
class InversionResult:
    latent: torch.Tensor            # final latents (detached)
    images: torch.Tensor            # reconstructions in [-1, 1] from the final latents (detached)
    loss_curve: list[tuple[int, float]] = field(default_factory=list)  # (step, mean per-image loss)
    loss_initial: float = float("nan")
    loss_final: float = float("nan")


def invert(model: GANModel, G: nn.Module, target: torch.Tensor, lpips: Distance, *, recipe: str = "backtrack",
           steps: int = 1000, lr: float = 0.1, mse_weight: float = 0.2, seed: int = 0,
           log_every: int = 50, projector: dict | None = None, latent_std: float | None = None,
           labels: torch.Tensor | None = None) -> InversionResult:
    """Optimise one latent per target image (targets in [-1, 1], (N, 3, R, R)).

    `labels`: the targets' class indices; a class-conditional model starts from latents of those classes
    (`inversion_start(labels=...)`) and keeps them: only z is optimised (the class column gets no gradient,
    and the projector's noise is not added to it). Unconditional models ignore them.

    Deterministic for a given seed: the seed drives `inversion_start`, the projector's noise and (under
    `fork_rng`, so the caller's RNG is untouched) the global RNG that generators with noise inputs draw
    from (FastGAN's and StyleGAN2's per-pixel noise). `latent_std` is the projector's noise reference
    scale (required for recipe 'projector').
    """
    dev = target.device
    devices = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed))
        return _invert(model, G, target, lpips, recipe=recipe, steps=steps, lr=lr, mse_weight=mse_weight, seed=seed,
                       log_every=log_every, projector=projector, latent_std=latent_std, labels=labels)


def _invert(model: GANModel, G: nn.Module, target: torch.Tensor, lpips: Distance, *, recipe: str, steps: int,
            lr: float, mse_weight: float, seed: int, log_every: int, projector: dict | None,
            latent_std: float | None, labels: torch.Tensor | None = None) -> InversionResult:
    if recipe not in ("backtrack", "projector"):
        raise ValueError(f"invert.recipe = {recipe!r}: choose 'backtrack' or 'projector' (params/invert.yaml)")
    device = target.device
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    conditional = bool(getattr(model, "conditional", False))
    if conditional and labels is not None:
        start = model.inversion_start(G, target.shape[0], generator=gen, device=device, labels=labels)
    else:
        start = model.inversion_start(G, target.shape[0], generator=gen, device=device)
    latent = start.detach().clone().to(device).requires_grad_(True)
    betas = BACKTRACK_BETAS if recipe == "backtrack" else PROJECTOR_BETAS
    opt = torch.optim.Adam([latent], lr=lr, betas=betas)
    proj = dict(projector or {})
    if recipe == "projector" and not proj:
        raise ValueError("recipe 'projector' needs its settings (params invert.projector, params/invert.yaml)")
    max_res = int(proj["max_lpips_resolution"]) if recipe == "projector" else 0
    target_small = downsample_for_lpips(target, max_res) if recipe == "projector" else None
    if recipe == "projector" and latent_std is None:
        raise ValueError("recipe 'projector' needs latent_std (the noise reference scale)")

    # the targets never change: their LPIPS features are computed once, not at every step
    against = fixed_target(lpips, F.avg_pool2d(target, 2) if recipe == "backtrack" else target_small)

    def loss_of(images: torch.Tensor) -> torch.Tensor:
        if recipe == "backtrack":
            return backtrack_loss(lpips, images, target, mse_weight, to_pooled_target=against)
        return against(downsample_for_lpips(images, max_res)).reshape(-1)

    curve: list[tuple[int, float]] = []
    result = InversionResult(latent=latent.detach(), images=target)
    for step in range(steps):
        if recipe == "projector":
            cur_lr, noise_std = projector_schedule(
                step, steps, lr=lr, lr_rampup=float(proj["lr_rampup"]), lr_rampdown=float(proj["lr_rampdown"]),
                noise_ramp=float(proj["noise_ramp"]), initial_noise_factor=float(proj["initial_noise_factor"]),
                latent_std=float(latent_std))
            for group in opt.param_groups:
                group["lr"] = cur_lr
            noise = torch.randn(latent.shape, generator=gen).to(device) * noise_std
            if conditional:  # the class travels as the last latent column: never perturb it
                noise[..., -1] = 0
            images = model.synthesize(G, latent + noise)
        else:
            images = model.synthesize(G, latent)
        per_image = loss_of(images)
        loss = per_image.sum()
        if step == 0:
            result.loss_initial = float(per_image.detach().mean())
        if step % log_every == 0:
            curve.append((step, float(per_image.detach().mean())))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        final = model.synthesize(G, latent).detach()
        result.loss_final = float(loss_of(final).mean())
    curve.append((steps, result.loss_final))
    result.latent = latent.detach()
    result.images = final
    result.loss_curve = curve
    return result


@torch.no_grad()
def reconstruction_metrics(lpips: Distance, recon: torch.Tensor, target: torch.Tensor,
                           deep: Distance | None = None) -> dict[str, torch.Tensor]:
    """Per-image LPIPS (full resolution, unpooled), MSE on the [-1, 1] scale, PSNR (dB) and MS-SSIM.

    Reconstructions are quantised to uint8 first (as every generated image fewgan saves), so the numbers
    describe the images one would look at. PSNR uses the [-1, 1] peak-to-peak range 2:
    10*log10(4 / MSE), which equals PSNR on the [0, 1] scale. MS-SSIM (ProGAN's, fewgan.metrics.msssim)
    compares each reconstruction with its target on the 0..255 grid (higher = closer); with PSNR it is
    the pretrained-free measure of inversion quality. `deep`: the EfficientNet-Lite0 deep-feature distance
    (fewgan.nets.perceptual), the perceptual headline when LPIPS's pretrained backbone is missing."""
    from fewgan.metrics.msssim import msssim_pairs

    recon_u8 = to_uint8(recon)
    recon_q = from_uint8(recon_u8)
    lp = lpips(recon_q, target).reshape(-1).float()
    mse = per_image_mse(recon_q, target).float()
    psnr = 10.0 * torch.log10(4.0 / mse.clamp_min(1e-12))
    if min(recon.shape[-2:]) >= 16:  # 5 scales of 2x2 down-sampling need 16 px
        ms = msssim_pairs(recon_u8.cpu(), to_uint8(target).cpu()).float().to(lp.device)
    else:
        ms = torch.full_like(lp, float("nan"))
    out = {"lpips": lp, "mse": mse, "psnr": psnr, "msssim": ms}
    if deep is not None:
        with torch.no_grad():
            out["effnet_deep"] = deep(recon_q, target).reshape(-1).float().to(lp.device)
    return out
