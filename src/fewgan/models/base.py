"""The contract between a GAN and the rest of fewgan (docs/DESIGN.md, "Add a model").

A model is a `GANModel` subclass in `src/fewgan/models/<name>/model.py`, registered with
`@register_model("<name>")`; its `spec.py` beside it declares its params schema and capabilities as plain
data (`fewgan.models.specs`). The model declares, as data:

- `networks`: the names of its nn.Module attributes (`("G", "D")`; CycleGAN: `("G_AB", "G_BA", "D_A", "D_B")`);
- `phases()`: the steps of one training iteration, in order: which loss, which optimiser group, how many
  times, whether each repeat draws a fresh batch of reals and fresh latents (BigGAN's two D steps are
  `Phase("D", ..., repeats=2)`);
- `make_optimizers()`: one optimiser per group named by the phases;
- `ema_networks`: the networks whose moving average is kept (and saved in snapshots as `<name>_ema`);
  `snapshot_networks`: networks saved as they are (e.g. an encoder that sampling needs); `primary`: the
  network `load_snapshot` returns (the one `generate` takes);
- `capabilities` (from spec.py): generates from latents, translates, conditional, invertible, truncation.

The shared loop (`fewgan.train.trainer` / `fewgan.train.loop`) owns data, augmentation, optimiser steps, EMA,
snapshots, logging and resume. Before training it calls `setup(TrainContext)`: the typed facts of the run a
model may need beyond its own params block (global batch, length, device, precision, how pretrained
weights resolve). A model never reads params outside its own block.

Losses receive the networks as arguments (`nets`: name -> module, possibly DDP-wrapped) instead of using
`self.G`/`self.D`, so the loop can wrap them for multi-GPU training without the model knowing. Model
state that must survive a resume lives in parameters or buffers (state_dict); step-dependent behaviour
is derived from the `step` argument.

Latent models (one G, one D: every model so far) implement `discriminator_loss` and `generator_loss`; the
default phases call them. Scoring, selection, inversion and evaluation call `sample_latents`,
`generate`, `inversion_start` and `synthesize` on a model rebuilt from a snapshot
(`fewgan.models.load_snapshot`).

Class-conditional models (`num_classes > 1`, e.g. BigGAN on AFHQ's cat/dog/wild) carry the class
*inside the latent*: `sample_latents` returns (n, z_dim + 1) with the class index as the last column,
so every stage that only passes latents from `sample_latents`/`inversion_start` to `generate`/
`synthesize` works unchanged. The loop gives the real images' classes to the D phase (`batch.labels`);
the inversion stage gives the target's class to `inversion_start(labels=...)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping

import torch
from torch import nn

# A differentiable augmentation applied identically in spirit to reals and fakes (DiffAugment).
Augment = Callable[[torch.Tensor], torch.Tensor]
LossLogs = dict[str, float]
#: name -> network as a phase's loss sees it (the module itself or its DDP wrapper)
Nets = Mapping[str, nn.Module]

_REGISTRY: dict[str, type["GANModel"]] = {}


def register_model(name: str):
    """Class decorator: make a GANModel subclass buildable by name. Built-in models are found by
    discovery (`fewgan.models.specs`); the decorator is their only registration."""

    def deco(cls: type[GANModel]) -> type[GANModel]:
        if name in _REGISTRY:
            raise ValueError(f"model name {name!r} registered twice ({_REGISTRY[name]} and {cls})")
        cls.name = name
        module, _, leaf = cls.__module__.rpartition(".")
        if leaf == "model":  # a model folder: its spec.py declares the capabilities
            import importlib

            try:
                spec = importlib.import_module(f"{module}.spec")
            except ModuleNotFoundError:
                spec = None
            if spec is not None and hasattr(spec, "CAPABILITIES"):
                cls.capabilities = frozenset(spec.CAPABILITIES)
        _REGISTRY[name] = cls
        return cls

    return deco


def registered_models() -> dict[str, type["GANModel"]]:
    return dict(_REGISTRY)


@dataclass(frozen=True)
class Phase:
    """One step of a training iteration: `repeats` updates of optimiser group `optimizer` with the loss
    method `loss` (called as `loss(nets, batch, step, augment) -> (scalar, logs)`).

    `reals`: each repeat draws the next batch of real images; `latents`: "new" draws fresh latents for each
    repeat, "reuse" keeps the previous phase's (FastGAN and DCGAN reuse the D step's z in the G step, as
    their official loops do), "none" draws none. Log keys: `loss_<name>` and `<name>/<key>`."""

    name: str
    loss: str
    optimizer: str
    repeats: int = 1
    reals: bool = True
    latents: str = "new"

    def __post_init__(self):
        if self.latents not in ("new", "reuse", "none"):
            raise ValueError(f"Phase {self.name!r}: latents must be new, reuse or none, got {self.latents!r}")
        if self.repeats < 1:
            raise ValueError(f"Phase {self.name!r}: repeats must be >= 1, got {self.repeats}")


@dataclass
class Batch:
    """What one phase repeat trains on: reals in [-1, 1] (not augmented) with their class indices when the
    dataset has classes, and latents on the training device.

    Translation models (fewgan.models.translation) get both domains: `reals` is a batch of domain A and
    `reals_b` one of domain B (unpaired: independent draws; paired data: `reals_b[i]` is the target of
    `reals[i]`). For every other model `reals_b` is None."""

    reals: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    z: torch.Tensor | None = None
    reals_b: torch.Tensor | None = None


@dataclass(frozen=True)
class TrainContext:
    """The facts of a training run a model may need beyond its own params block (`GANModel.setup`).

    `weights`: params `evaluation.weights`, for models that build a pretrained network (FastGAN's LPIPS-VGG
    reconstruction loss); resolve files with `resolve_weights_params()`."""

    batch_size: int            # global batch (all processes)
    iterations: int            # length of the run
    device: str = "cpu"
    precision: str = "fp32"    # fp32 | bf16 (autocast)
    world_size: int = 1
    weights: Mapping[str, Any] = field(default_factory=dict)

    def resolve_weights_params(self) -> dict:
        """The minimal params tree `fewgan.weights.resolve` reads (evaluation.weights only)."""
        return {"evaluation": {"weights": dict(self.weights)}}


class GANModel(nn.Module):
    """Base class of every GAN fewgan can train.

    Subclasses build, in `__init__(cfg, resolution, num_classes)`, one nn.Module attribute per name in
    `networks` and set `self.z_dim` (latent models). `cfg` is the model's block of params (a plain dict,
    validated by its spec's schema: widths, lr, betas, loss type, parity switches); `resolution` is the
    square image size (power of two). Everything needed to rebuild the model is (name, cfg, resolution,
    num_classes).
    """

    name: ClassVar[str] = "?"

    #: attribute names of the model's networks (each an nn.Module); the order of parameter counts in describe()
    networks: ClassVar[tuple[str, ...]] = ("G", "D")
    #: networks whose moving average is kept by the loop and saved in snapshots (`<name>_ema`)
    ema_networks: ClassVar[tuple[str, ...]] = ("G",)
    #: networks saved in snapshots as they are (not averaged), for models whose sampling needs them
    snapshot_networks: ClassVar[tuple[str, ...]] = ()
    #: the network `load_snapshot` returns and `generate` takes
    primary: ClassVar[str] = "G"
    #: set at registration from spec.py (fewgan.models.specs.CAPABILITIES)
    capabilities: ClassVar[frozenset[str]] = frozenset({"latents", "invertible"})

    #: Per-step EMA decay of the averaged networks (override `ema_beta` for ramps).
    ema_decay: float = 0.999
    #: Whether the EMA also averages floating-point buffers (e.g. BatchNorm running stats).
    #: False reproduces FastGAN's official behaviour (parameters only); True is fewgan's default fix.
    ema_buffers: bool = True

    #: D steps per G step in one training iteration (BigGAN: 2), for the default `phases()`.
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
        self.context: TrainContext | None = None

    def network(self, name: str) -> nn.Module:
        if name not in self.networks:
            raise KeyError(f"{type(self).__name__} has no network {name!r}; it declares {self.networks}")
        return getattr(self, name)

    def set_memory_format(self, channels_last: bool) -> None:
        """The loop's train.channels_last: every network (and the model's own tensors) in NHWC or NCHW."""
        self.channels_last = bool(channels_last)
        if self.channels_last:
            for n in self.networks:
                self.network(n).to(memory_format=torch.channels_last)

    # ---- the training contract -------------------------------------------------------------------
    def setup(self, ctx: TrainContext) -> None:
        """Called once by the trainer before `fallbacks()` and the first step. Must not consume random
        numbers. Default: keep the context (`self.context`)."""
        self.context = ctx

    def phases(self) -> tuple[Phase, ...]:
        """One iteration of a latent GAN: `d_steps` D updates (each on its own reals and latents), then one
        G update; with one D step the G step reuses its latents."""
        return (Phase("D", "discriminator_phase", "D", repeats=self.d_steps, reals=True, latents="new"),
                Phase("G", "generator_phase", "G", reals=False, latents="reuse" if self.d_steps == 1 else "new"))

    def phase_loss(self, phase: Phase, nets: Nets, batch: Batch, step: int,
                   augment: Augment) -> tuple[torch.Tensor, LossLogs]:
        return getattr(self, phase.loss)(nets, batch, step, augment)

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """One optimiser per group that `phases()` names (latent GANs: {"G": ..., "D": ...}) from self.cfg."""
        raise NotImplementedError

    def learning_rate(self, group: str, step: int) -> float | None:
        """The learning rate of optimiser group `group` in iteration `step`, set by the trainer before the
        group's update; None (default) keeps the optimiser's own. A schedule derived from `step` alone keeps
        resume bit-exact (CycleGAN's and NICE-GAN's linear decay, fewgan.models.translation)."""
        return None

    def ema_beta(self, step: int, batch_size: int) -> float:
        """EMA decay for this step (StyleGAN2 overrides with its kimg-based ramp)."""
        return self.ema_decay

    def cost_key(self, step: int):
        """The cost class of iteration `step` (fewgan.train.flops): steps with equal keys do the same
        arithmetic. None (default): every step costs the same. Models with lazy regularisers or growing
        networks return what changes the work (StyleGAN2: whether R1 / path length run; ProGAN: the level)."""
        return None

    # ---- latent GANs: the two losses the default phases call ------------------------------------------
    def discriminator_phase(self, nets: Nets, batch: Batch, step: int, augment: Augment):
        return self.discriminator_loss(nets["G"], nets["D"], batch.reals, batch.z, step, augment,
                                       real_labels=batch.labels)

    def generator_phase(self, nets: Nets, batch: Batch, step: int, augment: Augment):
        return self.generator_loss(nets["G"], nets["D"], batch.z, step, augment)

    def discriminator_loss(self, G: nn.Module, D: nn.Module, real: torch.Tensor, z: torch.Tensor,
                           step: int, augment: Augment,
                           real_labels: torch.Tensor | None = None) -> tuple[torch.Tensor, LossLogs]:
        """Scalar loss for one D update on a batch of reals (in [-1, 1], not augmented, with their class
        indices `real_labels` when the dataset has classes) and latents z. The model generates fakes itself
        (under no_grad / detached), applies `augment` to reals and fakes as its paper does, and adds its
        regularisers (e.g. lazy R1 when `step % interval == 0`). Returns (loss, logs), logs as floats."""
        raise NotImplementedError

    def generator_loss(self, G: nn.Module, D: nn.Module, z: torch.Tensor, step: int,
                       augment: Augment) -> tuple[torch.Tensor, LossLogs]:
        """Scalar loss for one G update (D's parameters receive no update from it)."""
        raise NotImplementedError

    # ---- sampling -------------------------------------------------------------------------------
    def sample_latents(self, n: int, *, generator: torch.Generator | None = None,
                       device: torch.device | str | None = None,
                       labels: torch.Tensor | None = None) -> torch.Tensor:
        """Latent inputs for `generate` (default: standard normal, shape (n, z_dim)). Conditional models
        append the class column (drawn uniformly with `generator` when `labels` is None)."""
        return torch.randn(n, self.z_dim, generator=generator, device=device)

    def generate(self, G: nn.Module, z: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1], shape (n, 3, R, R), from latents. G is the primary network, its EMA copy or a
        DDP wrapper. Must return the full-resolution image only (auxiliary outputs are dropped here)."""
        return G(z)

    # ---- sampling extras (`fewgan sample`) -------------------------------------------------------
    #: what psi means for `generate_truncated` (capability "truncation"); the sample outputs record it
    truncation_meaning: str | None = None

    def truncated_latents(self, n: int, psi: float, *, generator: torch.Generator | None = None,
                          device: torch.device | str | None = None,
                          labels: torch.Tensor | None = None) -> torch.Tensor:
        """Latents for `generate_truncated` with truncation psi. Default: the plain draw (models that truncate
        in latent space, e.g. BigGAN's truncated normal, draw here; StyleGAN truncates in W instead)."""
        return self.sample_latents(n, generator=generator, device=device, labels=labels)

    def generate_truncated(self, G: nn.Module, z: torch.Tensor, psi: float) -> torch.Tensor:
        """Images with the truncation trick (capability "truncation"); never used for metrics of the benchmark."""
        raise ValueError(f"model {self.name!r} has no truncation trick (its spec.py does not declare the "
                         "'truncation' capability)")

    def generate_mixed(self, G: nn.Module, z_content: torch.Tensor, z_style: torch.Tensor) -> torch.Tensor:
        """Images whose content comes from `z_content` and style from `z_style` (capability "mixing")."""
        raise ValueError(f"model {self.name!r} has no style mixing (its spec.py does not declare the 'mixing' "
                         "capability)")

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
    def fallbacks(self) -> list[str]:
        """Human-readable fallbacks in force (e.g. 'LPIPS-VGG backbone untrained: ...')."""
        return []

    def snapshot_note(self) -> str | None:
        """How this snapshot's samples are made when that differs from a plain full-resolution generator
        (ProGAN before its final resolution: generated smaller and upsampled). Score and evaluate record it
        per snapshot and the report prints it. Default: None."""
        return None

    def describe(self) -> dict[str, Any]:
        """Parameter counts (`params_<network>`) and anything a report should show."""
        count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
        return {"model": self.name, "resolution": self.resolution, "num_classes": self.num_classes,
                "conditional": self.conditional,
                **{f"params_{n}": count(self.network(n)) for n in self.networks}}
