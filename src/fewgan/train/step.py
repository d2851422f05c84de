"""One training iteration, the same for every model: `train_step`.

The training loop, `fewgan bench` and bench/bench_fastgan.py all call this function, so the benchmarks
time the step that training runs. An iteration is `gan.d_steps` discriminator updates (each on its own
batch of reals), one generator update, then the EMA update of G. With one D step the G step reuses the
D step's latents, as FastGAN's and DCGAN's official loops do (FastGAN then reuses the fakes themselves);
with several, each step draws its own latents (BigGAN).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from fewgan.models.base import Augment, GANModel
from fewgan.train.ema import EMA

#: (index of the D step within the iteration) -> (reals in [-1, 1], class indices or None)
Reals = Callable[[int], "tuple[torch.Tensor, torch.Tensor | None]"]
#: () -> latents for one batch, on the training device
Latents = Callable[[], torch.Tensor]


@dataclass
class Nets:
    """The networks a step trains. `G`, `D`: what the losses call (DDP wrappers in multi-process runs);
    `D_gphase`: D as the G step sees it (unwrapped under DDP, so its gradients are never all-reduced)."""

    G: nn.Module
    D: nn.Module
    D_gphase: nn.Module


@dataclass
class StepResult:
    loss_D: float  # the last D step's loss
    loss_G: float
    logs_D: dict[str, float] = field(default_factory=dict)
    logs_G: dict[str, float] = field(default_factory=dict)


def train_step(gan: GANModel, nets: Nets, opts: dict[str, torch.optim.Optimizer], ema: EMA, *, step: int,
               reals: Reals, latents: Latents, augment: Augment, batch_size: int,
               autocast: contextlib.AbstractContextManager | None = None) -> StepResult:
    """Run iteration `step` (0-based; the model's losses receive it). `batch_size` is the global batch
    (the EMA ramps of StyleGAN2 count images). Losses come back as Python floats."""
    amp = autocast if autocast is not None else contextlib.nullcontext()
    z = None
    for j in range(gan.d_steps):
        real, labels = reals(j)
        z = latents()
        opts["D"].zero_grad(set_to_none=True)
        with amp:
            loss_D, logs_D = gan.discriminator_loss(nets.G, nets.D, real, z, step, augment, real_labels=labels)
        loss_D.backward()
        opts["D"].step()
    if gan.d_steps > 1:
        z = latents()
    opts["G"].zero_grad(set_to_none=True)
    with amp:
        loss_G, logs_G = gan.generator_loss(nets.G, nets.D_gphase, z, step, augment)
    loss_G.backward()
    opts["G"].step()
    ema.update(gan.G, gan.ema_beta(step, batch_size))
    return StepResult(float(loss_D.detach()), float(loss_G.detach()),
                      {k: float(v) for k, v in logs_D.items()}, {k: float(v) for k, v in logs_G.items()})
