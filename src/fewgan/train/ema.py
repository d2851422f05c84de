"""Exponential moving average of the generator.

ema <- beta * ema + (1 - beta) * live, computed in place as `ema.lerp_(live, 1 - beta)`; torch's lerp
returns its end point exactly for weight 1 and its start point for weight 0, so beta = 0 copies the live
weights bit for bit and beta = 1 leaves the EMA unchanged.

Buffers (BatchNorm running statistics, spectral-norm power-iteration vectors, ...):
- `average_buffers=True` (fewgan default, `GANModel.ema_buffers`): normalisation statistics
  (`running_mean`, `running_var` of BatchNorm/InstanceNorm layers) are averaged like parameters, so
  the EMA generator samples correctly in eval mode. Every other buffer is copied from the live
  generator: spectral-norm power-iteration vectors (`_u`, `_v`, `weight_u`, ...) must stay unit
  vectors (an average of unit vectors is not one, and eval-mode spectral norm divides by u^T W v
  with the stored vectors), integer counters are not averageable, and model-level running values
  (StyleGAN2's w_avg) are copied as stylegan2-ada's EMA does.
- `average_buffers=False` (FastGAN official, REFERENCE.md section 1: "EMA of G parameters only"): every
  buffer is copied from the live generator at each update. This emulates the official code, which
  loads the averaged parameters into the live G for sampling/saving and so keeps G's *current*
  BatchNorm statistics next to averaged weights.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


#: buffer names (last component) that the EMA averages when average_buffers is True
AVERAGED_BUFFERS = frozenset({"running_mean", "running_var"})


class EMA:
    """Holds `self.module`, an eval-mode, no-grad copy of a generator that tracks its moving average."""

    def __init__(self, G: nn.Module, average_buffers: bool = True):
        self.module = copy.deepcopy(G).eval().requires_grad_(False)
        self.average_buffers = bool(average_buffers)
        self._check_names(G)

    def _check_names(self, G: nn.Module) -> None:
        live = [n for n, _ in G.named_parameters()]
        mine = [n for n, _ in self.module.named_parameters()]
        if live != mine:
            raise ValueError("EMA: the generator's parameters differ from the EMA copy's "
                             f"({len(live)} vs {len(mine)} tensors); build the EMA from the same module")

    @torch.no_grad()
    def update(self, G: nn.Module, beta: float) -> None:
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"EMA beta must lie in [0, 1], got {beta} (check the model's ema_beta)")
        for p_ema, p in zip(self.module.parameters(), G.parameters()):
            p_ema.lerp_(p.detach(), 1.0 - beta)
        for (name, b_ema), b in zip(self.module.named_buffers(), G.buffers()):
            if self.average_buffers and b.is_floating_point() and name.rsplit(".", 1)[-1] in AVERAGED_BUFFERS:
                b_ema.lerp_(b, 1.0 - beta)
            else:
                b_ema.copy_(b)

    def state_dict(self) -> dict:
        return self.module.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state)
