"""The one trainer assembly: a model, its optimisers, its EMAs and its phases, and one training iteration.

`build_trainer` is used by the training loop (`fewgan.train.loop`), `fewgan bench`, `fewgan.train.bench` and
bench/bench_fastgan.py, so the benchmarks time the step that training runs. An iteration runs the model's
phases in order (`GANModel.phases()`: e.g. D then G, BigGAN's D twice): each repeat draws its reals and
latents as the phase declares, zeroes its optimiser group, runs the phase's loss under autocast, backpropagates
and steps; then every EMA network is updated with the model's `ema_beta`.

Multi-process runs (DDP): in phase k a network is given DDP-wrapped when phase k or a later phase of the
iteration trains it, unwrapped otherwise. So D's updates in the D phase are all-reduced, G is wrapped in the
D phase too (a D-phase G forward under no_grad does not arm DDP's reducer, and one with a graph - FastGAN
reuses the D step's fakes in the G step - is reduced when the G step back-propagates through it), and the G
phase sees D unwrapped, so D's G-phase gradients (local, cleared by the next zero_grad) are never all-reduced.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from fewgan.models.registry import build_model
from fewgan.models.base import Augment, Batch, GANModel, Phase, TrainContext
from fewgan.train.ema import EMA

#: (index of the reals batch within the iteration) -> (reals in [-1, 1], class indices or None), and for
#: translation data a third item, the domain-B batch (fewgan.train.data.PairBatches; Batch.reals_b)
Reals = Callable[[int], "tuple[torch.Tensor, torch.Tensor | None] | tuple[torch.Tensor, None, torch.Tensor]"]
#: () -> latents for one batch, on the training device
Latents = Callable[[], torch.Tensor]


@dataclass
class StepResult:
    losses: dict[str, float]            # phase name -> its last repeat's loss
    logs: dict[str, dict[str, float]] = field(default_factory=dict)  # phase name -> its last repeat's logs

    def finite(self) -> bool:
        return all(math.isfinite(v) for v in self.losses.values())

    def row(self) -> dict[str, float]:
        """log.jsonl columns: loss_<phase> for every phase, then <phase>/<key> for every phase's logs."""
        return {**{f"loss_{p}": v for p, v in self.losses.items()},
                **{f"{p}/{k}": v for p, logs in self.logs.items() for k, v in logs.items()}}


class Trainer:
    """`gan` with its optimisers (`opts`, by group), EMA copies (`emas`, by network) and phases; `step()`
    runs one iteration. `wrap` turns each trained network into what the losses call (DDP, torch.compile)."""

    def __init__(self, gan: GANModel, ctx: TrainContext, *, wrap: Callable[[nn.Module], nn.Module] | None = None):
        self.gan, self.ctx = gan, ctx
        self.phases: tuple[Phase, ...] = tuple(gan.phases())
        self.opts = gan.make_optimizers()
        groups = {p.optimizer for p in self.phases}
        if not isinstance(self.opts, dict) or set(self.opts) != groups:
            got = sorted(self.opts) if isinstance(self.opts, dict) else type(self.opts).__name__
            raise TypeError(f"{type(gan).__name__}.make_optimizers() must return one optimiser per group its "
                            f"phases name ({sorted(groups)}), got {got}")
        self.emas = {n: EMA(gan.network(n), gan.ema_buffers) for n in gan.ema_networks}
        gan.setup(ctx)
        # phase k sees a network wrapped when phase k or a later phase trains it (module doc)
        trained_from = [{n for q in self.phases[k:] for n in self._trains(q)} for k in range(len(self.phases))]
        wrapped = {n: (wrap(gan.network(n)) if wrap else gan.network(n))
                   for n in gan.networks if any(n in t for t in trained_from)}
        self.nets = [{n: (wrapped[n] if n in trained_from[k] else gan.network(n)) for n in gan.networks}
                     for k in range(len(self.phases))]
        self.autocast = torch.autocast(device_type=torch.device(ctx.device).type, dtype=torch.bfloat16,
                                       enabled=ctx.precision == "bf16")

    def _trains(self, phase: Phase) -> set[str]:
        """The networks whose parameters phase's optimiser updates."""
        params = {id(p) for g in self.opts[phase.optimizer].param_groups for p in g["params"]}
        return {n for n in self.gan.networks if any(id(p) in params for p in self.gan.network(n).parameters())}

    @property
    def reals_per_iteration(self) -> int:
        """Batches of reals one iteration draws (the data order's unit)."""
        return sum(p.repeats for p in self.phases if p.reals)

    def sampling_network(self) -> nn.Module:
        """What sample grids use: the EMA copy of the primary network (the live one if it is not averaged)."""
        p = self.gan.primary
        return self.emas[p].module if p in self.emas else self.gan.network(p)

    def snapshot_networks(self) -> dict[str, dict]:
        """A snapshot's weights: `<net>_ema` for every averaged network, `<net>` for the snapshot networks."""
        return {**{f"{n}_ema": e.state_dict() for n, e in self.emas.items()},
                **{n: self.gan.network(n).state_dict() for n in self.gan.snapshot_networks}}

    def train_mode(self) -> None:
        for n in self.gan.networks:
            self.gan.network(n).train()

    def step(self, step: int, *, reals: Reals, latents: Latents, augment: Augment) -> StepResult:
        """Run iteration `step` (0-based; the model's losses receive it). Losses come back as floats."""
        losses, logs = {}, {}
        drawn, z = 0, None
        for phase, nets in zip(self.phases, self.nets):
            opt = self.opts[phase.optimizer]
            lr = self.gan.learning_rate(phase.optimizer, step)  # a schedule derived from the step (or None)
            for group in opt.param_groups if lr is not None else ():
                group["lr"] = lr
            for _ in range(phase.repeats):
                batch = Batch()
                if phase.reals:
                    batch.reals, batch.labels, *domain_b = reals(drawn)
                    batch.reals_b = domain_b[0] if domain_b else None
                    drawn += 1
                if phase.latents == "new":
                    z = latents()
                batch.z = z if phase.latents != "none" else None
                opt.zero_grad(set_to_none=True)
                with self.autocast:
                    loss, phase_logs = self.gan.phase_loss(phase, nets, batch, step, augment)
                loss.backward()
                opt.step()
                losses[phase.name] = float(loss.detach())
                logs[phase.name] = {k: float(v) for k, v in phase_logs.items()}
        beta = self.gan.ema_beta(step, self.ctx.batch_size)
        for n, ema in self.emas.items():
            ema.update(self.gan.network(n), beta)
        return StepResult(losses, logs)

    # ---- resume ----------------------------------------------------------------------------------
    def state(self) -> dict:
        """Model, EMA copies (`<net>_ema`) and optimisers, on CPU (the resume file's training part)."""
        cpu = lambda sd: {k: (v.detach().cpu().contiguous() if torch.is_tensor(v) else v) for k, v in sd.items()}  # noqa: E731
        return {"model": cpu(self.gan.state_dict()), **{f"{n}_ema": cpu(e.state_dict()) for n, e in self.emas.items()},
                "optim": {g: o.state_dict() for g, o in self.opts.items()}}

    def load_state(self, state: dict) -> None:
        self.gan.load_state_dict(state["model"])
        for n, e in self.emas.items():
            e.load_state_dict(state[f"{n}_ema"])
        for g, o in self.opts.items():
            o.load_state_dict(state["optim"][g])


def build_trainer(model: str, model_cfg: dict, resolution: int, ctx: TrainContext, *, num_classes: int = 0,
                  channels_last: bool = False, wrap: Callable[[nn.Module], nn.Module] | None = None) -> Trainer:
    """Build model `model` on ctx.device and assemble its trainer. The caller seeds torch first: the
    initial weights are drawn here, and nothing after them consumes random numbers."""
    gan = build_model(model, model_cfg, resolution, num_classes).to(ctx.device)
    gan.set_memory_format(channels_last)
    return Trainer(gan, ctx, wrap=wrap)
