"""Training compute in FLOPs: the machine-independent axis of "equal compute" (Lucic et al. 2018).

FLOPs are counted with the formulas of `torch.utils.flop_counter.FlopCounterMode` on one real iteration of the model (every
phase: all D steps, the G step, their regularisers), forward and backward: the matrix products and
convolutions (mm, addmm, bmm, convolution and its backward, attention), 2 FLOPs per multiply-add.
Elementwise work, normalisation and the optimiser are not counted (they are memory-bound and a few per
cent of a GAN's FLOPs); neither is the loop's EMA.

An iteration's cost can change during training: StyleGAN2's lazy R1 / path length run every k-th step,
ProGAN grows. A model names its cost class with `GANModel.cost_key(step)` (None: every step costs the same);
`StepFlops` measures each class once, on a deep copy of the trainer with random inputs of the training
shapes under `fork_rng`, so counting never changes the training trajectory, and sums the classes' costs
over the steps actually run.
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Hashable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

#: what the count covers, recorded next to every number
CONVENTION = ("torch.utils.flop_counter formulas (FlopCounterMode's) on one iteration (all phases, forward and backward; "
              "matmuls, convolutions, attention; 2 FLOPs per multiply-add; optimiser, EMA and elementwise ops "
              "not counted)")


class _FlopCount(TorchDispatchMode):
    """FlopCounterMode's per-op formulas (torch.utils.flop_counter.flop_registry) without its module tracker:
    the tracker's backward hooks break `torch.autograd.grad` on leaf inputs (ProGAN's gradient penalty, R1)."""

    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += int(formula(*args, **kwargs, out_val=out))
        return out


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of running `fn()`, by FlopCounterMode's formulas (matmuls, convolutions, attention)."""
    with _FlopCount() as counter:
        fn()
    return counter.total


class StepFlops:
    """FLOPs of training iteration `step` (this process's share times `world_size`), by cost class."""

    def __init__(self, trainer, local_batch: int, resolution: int, augment: Callable[[torch.Tensor], torch.Tensor],
                 world_size: int = 1):
        self.trainer, self.local_batch, self.resolution = trainer, local_batch, resolution
        self.augment, self.world_size = augment, world_size
        self.by_class: dict[Hashable, int] = {}

    def __call__(self, step: int) -> int:
        key = self.trainer.gan.cost_key(step)
        if key not in self.by_class:
            self.by_class[key] = self.measure(step) * self.world_size
        return self.by_class[key]

    def measure(self, step: int) -> int:
        from fewgan.train.trainer import Trainer

        import random

        import numpy as np

        live = self.trainer
        device = torch.device(live.ctx.device)
        devices = [device.index or 0] if device.type == "cuda" else []
        py_state, np_state = random.getstate(), np.random.get_state()  # models may draw from these too
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(step)
            twin = Trainer(copy.deepcopy(live.gan), live.ctx)
            twin.train_mode()
            n, r, gan = self.local_batch, self.resolution, twin.gan
            labels = torch.zeros(n, dtype=torch.long, device=device) if gan.num_classes > 1 else None

            def reals(_: int):
                if "translates" in gan.capabilities:  # both domains (Batch.reals_b)
                    return torch.rand(n, 3, r, r, device=device) * 2 - 1, None, torch.rand(n, 3, r, r, device=device) * 2 - 1
                return torch.rand(n, 3, r, r, device=device) * 2 - 1, labels

            flops = count_flops(lambda: twin.step(step, reals=reals, augment=self.augment,
                                                  latents=lambda: gan.sample_latents(n, device="cpu").to(device)))
        random.setstate(py_state)
        np.random.set_state(np_state)
        del twin
        return flops

    def classes(self) -> dict[str, int]:
        """{cost class: FLOPs per iteration} as measured so far (run.json)."""
        return {str(k): v for k, v in self.by_class.items()}
