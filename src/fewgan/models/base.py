"""The contract between a GAN and the rest of fewgan.

A model is a `GANModel` subclass registered under a name. It owns its generator `G` and
discriminator `D`, and supplies its losses; the shared training loop (`fewgan.train.loop`) owns
data, augmentation, optimiser steps, EMA, snapshots, logging and resume. Scoring, selection,
inversion and evaluation only ever call `sample_latents`, `generate`, `inversion_start` and
`synthesize` on a model rebuilt from a snapshot (`fewgan.models.load_snapshot`).

Model state that must survive a resume lives in parameters or buffers (state_dict); step-dependent
behaviour is derived from the `step` argument. Losses receive the (possibly DDP-wrapped) networks as
arguments instead of using `self.G`/`self.D`, so that the loop can wrap them for multi-GPU training
without the model knowing.

Class-conditional models (`num_classes > 1`, e.g. BigGAN on AFHQ's cat/dog/wild) carry the class
*inside the latent*: `sample_latents` returns (n, z_dim + 1) with the class index as the last column,
so every stage that only passes latents from `sample_latents`/`inversion_start` to `generate`/
`synthesize` works unchanged. The loop gives the real images' classes to `discriminator_loss` as
`real_labels`; the inversion stage gives the target's class to `inversion_start(labels=...)`.
Unconditional models ignore `labels` and `real_labels`.
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

    #: D steps per G step in one training iteration (BigGAN: 2); each D step gets its own batch of reals.
    d_steps: int = 1
    #: True when the model uses class labels (set by conditional models; unconditional models ignore labels
    #: even on a dataset with classes)
    conditional: bool = False

    def __init__(self, cfg: Mapping[str, Any], resolution: int, num_classes: int = 0):
        super().__init__()
        self.cfg = dict(cfg)
        self.resolution = int(resolution)
        self.num_classes = int(num_classes)
        self.z_dim: int = 0
        self.channels_last = False
        self.G: nn.Module
        self.D: nn.Module

    def set_memory_format(self, channels_last: bool) -> None:
        """The loop's train.channels_last: G and D (and the model's own tensors) in NHWC or NCHW."""
        self.channels_last = bool(channels_last)
        if self.channels_last:
            self.G.to(memory_format=torch.channels_last)
            self.D.to(memory_format=torch.channels_last)

    # ---- sampling -------------------------------------------------------------------------------
    def sample_latents(self, n: int, *, generator: torch.Generator | None = None,
                       device: torch.device | str | None = None,
                       labels: torch.Tensor | None = None) -> torch.Tensor:
        """Latent inputs for `generate` (default: standard normal, shape (n, z_dim)). Conditional models
        append the class column (drawn uniformly with `generator` when `labels` is None)."""
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
                           step: int, augment: Augment,
                           real_labels: torch.Tensor | None = None) -> tuple[torch.Tensor, LossLogs]:
        """Scalar loss for one D update on a batch of reals (already in [-1, 1], not augmented, with
        their class indices `real_labels` when the dataset has classes) and latents z. The model generates fakes itself (under no_grad / detached), applies `augment` to
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
                        device: torch.device | str | None = None,
                        labels: torch.Tensor | None = None) -> torch.Tensor:
        """Initial latent for optimising n images towards targets (default: zeros in z space).
        StyleGAN2 returns the mean w (W space) or W+ copies, per cfg. Conditional models fix the class
        column to `labels` (the targets' classes); `synthesize` must not let the optimiser change it."""
        return torch.zeros(n, self.z_dim, device=device)

    def synthesize(self, G: nn.Module, latent: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] from the latent that `inversion_start` returned (differentiable)."""
        return self.generate(G, latent)

    # ---- bookkeeping ------------------------------------------------------------------------------
    def configure(self, params: Mapping[str, Any]) -> None:
        """Called once by the training loop with the whole resolved params, before `fallbacks()`, for
        models that need more than their own block (FastGAN: where the LPIPS-VGG weights are).
        Must not consume random numbers. Default: nothing."""

    def fallbacks(self) -> list[str]:
        """Human-readable fallbacks in force (e.g. 'LPIPS-VGG backbone untrained: ...')."""
        return []

    def snapshot_note(self) -> str | None:
        """How this snapshot's samples are made when that differs from a plain full-resolution generator
        (ProGAN before its final resolution: generated smaller and upsampled). Score and evaluate record it
        per snapshot and the report prints it. Default: None."""
        return None

    def describe(self) -> dict[str, Any]:
        """Parameter counts and anything a report should show."""
        count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
        return {"model": self.name, "resolution": self.resolution, "num_classes": self.num_classes,
                "conditional": self.conditional, "params_G": count(self.G), "params_D": count(self.D)}
