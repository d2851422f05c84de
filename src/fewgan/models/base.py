"""The contract between a GAN and the rest of fewgan.

A model is a `GANModel` subclass registered under a name. It owns its generator `G` and
discriminator `D`, and supplies its losses; the shared training loop (`fewgan.train.loop`) owns
data, augmentation, optimiser steps, EMA, snapshots, logging and resume. Scoring, selection,
inversion and evaluation only ever call `sample_latents`, `generate`, `inversion_start` and
`synthesize` on a model rebuilt from a snapshot (`fewgan.models.load_snapshot`).

Model state that must survive a resume lives in parameters or buffers (state_dict); step-dependent
behaviour is derived from the `step` argument. Losses receive the (possibly DDP-wrapped) networks as arguments instead of using `self.G`/`self.D`,
so that the loop can wrap them for multi-GPU training without the model knowing.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Mapping

import torch
from torch import nn

# A differentiable augmentation applied identically in spirit to reals and fakes (DiffAugment).
Augment = Callable[[torch.Tensor], torch.Tensor]
LossLogs = dict[str, float]

_REGISTRY: dict[str, type["GANModel"]] = {}


def register_model(name: str):
    """Class decorator: make a GANModel subclass buildable by name from params."""

    def deco(cls: type[GANModel]) -> type[GANModel]:
        if name in _REGISTRY:
            raise ValueError(f"model name {name!r} registered twice ({_REGISTRY[name]} and {cls})")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def registered_models() -> dict[str, type["GANModel"]]:
    return dict(_REGISTRY)


class GANModel(nn.Module):
    """Base class of every GAN fewgan can train.

    Subclasses must, in `__init__(cfg, resolution)`, build `self.G` and `self.D` (nn.Modules) and set
    `self.z_dim`. `cfg` is the model's block of `params` (a plain dict: already validated by the params
    schema, hyperparameters such as widths, lr, betas, loss type, parity switches); `resolution` is the
    square image size (power of two). Everything needed to rebuild the model is (name, cfg, resolution).
    """

    name: ClassVar[str] = "?"

    #: Per-step EMA decay of the generator weights (override `ema_beta` for ramps).
    ema_decay: float = 0.999
    #: Whether the EMA generator also averages floating-point buffers (e.g. BatchNorm running stats).
    #: False reproduces FastGAN's official behaviour (parameters only); True is fewgan's default fix.
    ema_buffers: bool = True

    def __init__(self, cfg: Mapping[str, Any], resolution: int):
        super().__init__()
        self.cfg = dict(cfg)
        self.resolution = int(resolution)
        self.z_dim: int = 0
        self.G: nn.Module
        self.D: nn.Module

    # ---- sampling -------------------------------------------------------------------------------
    def sample_latents(self, n: int, *, generator: torch.Generator | None = None,
                       device: torch.device | str | None = None) -> torch.Tensor:
        """Latent inputs for `generate` (default: standard normal, shape (n, z_dim))."""
        return torch.randn(n, self.z_dim, generator=generator, device=device)

    def generate(self, G: nn.Module, z: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1], shape (n, 3, R, R), from latents. G is self.G, the EMA copy or a DDP wrapper.
        Must return the full-resolution image only (models with auxiliary outputs drop them here)."""
        return G(z)

    # ---- training --------------------------------------------------------------------------------
    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """{"G": optimiser over G's parameters, "D": optimiser over D's parameters} from self.cfg."""
        raise NotImplementedError

    def discriminator_loss(self, G: nn.Module, D: nn.Module, real: torch.Tensor, z: torch.Tensor,
                           step: int, augment: Augment) -> tuple[torch.Tensor, LossLogs]:
        """Scalar loss for one D update on a batch of reals (already in [-1, 1], not augmented) and
        latents z. The model generates fakes itself (under no_grad / detached), applies `augment` to
        reals and fakes as its paper does, and adds its regularisers (e.g. lazy R1 when
        `step % interval == 0`). Returns (loss, logs) where logs are python floats for the log file."""
        raise NotImplementedError

    def generator_loss(self, G: nn.Module, D: nn.Module, z: torch.Tensor, step: int,
                       augment: Augment) -> tuple[torch.Tensor, LossLogs]:
        """Scalar loss for one G update (D's parameters receive no update from it)."""
        raise NotImplementedError

    def ema_beta(self, step: int, batch_size: int) -> float:
        """EMA decay for this step (StyleGAN2 overrides with its kimg-based ramp)."""
        return self.ema_decay

    # ---- inversion (FastGAN paper, Table 5) ------------------------------------------------------
    def inversion_start(self, G: nn.Module, n: int, *, generator: torch.Generator | None = None,
                        device: torch.device | str | None = None) -> torch.Tensor:
        """Initial latent for optimising n images towards targets (default: zeros in z space).
        StyleGAN2 returns the mean w (W space) or W+ copies, per cfg."""
        return torch.zeros(n, self.z_dim, device=device)

    def synthesize(self, G: nn.Module, latent: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] from the latent that `inversion_start` returned (differentiable)."""
        return self.generate(G, latent)

    # ---- bookkeeping ------------------------------------------------------------------------------
    #: Whether DDP must look for parameters that a step leaves unused (the loop reads this).
    ddp_find_unused_parameters: bool = False

    def configure(self, params: Mapping[str, Any]) -> None:
        """Called once by the training loop with the whole resolved params, before `fallbacks()`, for
        models that need more than their own block (FastGAN: where the LPIPS-VGG weights are).
        Must not consume random numbers. Default: nothing."""

    def fallbacks(self) -> list[str]:
        """Human-readable fallbacks in force (e.g. 'LPIPS-VGG backbone untrained: ...')."""
        return []

    def describe(self) -> dict[str, Any]:
        """Parameter counts and anything a report should show."""
        count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
        return {"model": self.name, "resolution": self.resolution,
                "params_G": count(self.G), "params_D": count(self.D)}
