"""The translation contract beside the latent one: models that map images of domain A to domain B and back
(CycleGAN, pix2pix, NICE-GAN; capability `translates`, docs/DESIGN.md "Models").

A `TranslationModel` is a `GANModel` and trains through the same loop and trainer:

- **networks, phases, optimiser groups** are declared as for every model (CycleGAN: `("G_AB", "G_BA", "D_A",
  "D_B")`, phases G then D, groups "G" and "D"). `D_A` judges domain A (real A against G_BA's output), `D_B`
  judges domain B.
- **data**: every phase repeat that draws reals gets both domains (`fewgan.models.base.Batch`): `batch.reals`
  is a batch of domain A, `batch.reals_b` one of domain B, drawn by `fewgan.train.data.PairBatches` from the
  dataset's `translation` block (fewgan.data.pairs). Unpaired models get independent draws; a model with
  `paired = True` (pix2pix) gets aligned pairs (`reals_b[i]` is the target of `reals[i]`) and refuses an
  unpaired dataset. Translation phases draw no latents (`latents="none"`).
- **learning rate**: `learning_rate(group, step)` (a pure function of the step, so resume stays bit-exact):
  constant, then linear decay to ~0 at the end of the run (`train.iterations`, from the TrainContext).
- **EMA**: none by default (`ema_networks = ()`): none of the three papers averages weights.
- **snapshots**: `snapshot_networks` are the networks translation needs (CycleGAN: both generators; NICE-GAN:
  also both discriminators, whose first layers are the encoders). `fewgan.models.registry.load_snapshot`
  rebuilds the model and loads them; `primary` is the A -> B generator.
- **after training**: `translate(x, "AB" | "BA")` and `cycle(x, "AB")` (A -> B -> A) on the rebuilt model;
  `generate(G, x)` translates A -> B (what the loop's sample grids call, with fixed domain-A training images
  in place of latents: fewgan.train.record). There are no latents: `sample_latents` / `inversion_start`
  refuse. The metric stages read translations instead (fewgan.metrics.translation), and what replaces inversion is
  the cycle / paired reconstruction error on held-out images (fewgan.invert.translation).
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from fewgan.models.base import GANModel

DIRECTIONS = ("AB", "BA")


def lsgan(pred: torch.Tensor, real: bool) -> torch.Tensor:
    """Least-squares GAN loss (Mao et al. 2017) as CycleGAN's GANLoss('lsgan') and NICE-GAN's MSE_loss:
    mean((pred - target)^2), target 1 for real, 0 for fake."""
    return F.mse_loss(pred, torch.ones_like(pred) if real else torch.zeros_like(pred))


def vanilla_gan(pred: torch.Tensor, real: bool) -> torch.Tensor:
    """pix2pix's GANLoss('vanilla'): BCEWithLogitsLoss against 1 (real) or 0 (fake)."""
    return F.binary_cross_entropy_with_logits(pred, torch.ones_like(pred) if real else torch.zeros_like(pred))


def linear_decay(step: int, total: int, decay_start: int, denominator: int) -> float:
    """Learning-rate factor of iteration `step` (0-based): 1 until `decay_start` iterations are done, then
    1 - (step + 1 - decay_start) / denominator (CycleGAN: denominator = decay length + 1, as its
    `lambda_rule`; NICE-GAN: the decay length, reaching 0 at the last iteration)."""
    if denominator < 1:
        raise ValueError(f"linear decay over {denominator} iterations (run of {total}, decay from {decay_start})")
    return max(0.0, 1.0 - max(0, step + 1 - decay_start) / denominator)


class ImagePool(nn.Module):
    """CycleGAN's history of generated images (Shrivastava et al. 2017; util/image_pool.py): the discriminator
    sees, for each new fake, until the pool is full the fake itself (which is stored); afterwards, with
    probability 1/2 a stored fake (replaced by the new one), else the new one. The images and the fill count
    are buffers, so the pool is part of the model's state_dict and survives resume; the draws use the global
    torch RNG, which the loop saves (the official code uses Python's `random`)."""

    def __init__(self, size: int, shape: tuple[int, ...]):
        super().__init__()
        self.size = int(size)
        self.register_buffer("images", torch.zeros(self.size, *shape))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def query(self, fakes: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return fakes
        out = []
        for image in fakes.detach():
            n = int(self.count)
            if n < self.size:
                self.images[n].copy_(image)
                self.count.add_(1)
                out.append(image)
            elif float(torch.rand(())) > 0.5:
                k = int(torch.randint(0, self.size, ()))
                out.append(self.images[k].clone())
                self.images[k].copy_(image)
            else:
                out.append(image)
        return torch.stack(out)


def init_normal(net: nn.Module, gain: float = 0.02) -> nn.Module:
    """pytorch-CycleGAN-and-pix2pix's init_weights('normal', 0.02): conv/linear weights N(0, gain), biases 0,
    BatchNorm weights N(1, gain), biases 0."""
    for m in net.modules():
        name = type(m).__name__
        if hasattr(m, "weight") and m.weight is not None and ("Conv" in name or "Linear" in name):
            nn.init.normal_(m.weight, 0.0, gain)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif "BatchNorm2d" in name:
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
    return net


class TranslationModel(GANModel):
    """Base class of image-to-image translation models (module docstring)."""

    networks: ClassVar[tuple[str, ...]] = ("G_AB", "G_BA", "D_A", "D_B")
    ema_networks: ClassVar[tuple[str, ...]] = ()  # none of CycleGAN, pix2pix, NICE-GAN averages weights
    snapshot_networks: ClassVar[tuple[str, ...]] = ("G_AB", "G_BA")
    primary: ClassVar[str] = "G_AB"
    capabilities: ClassVar[frozenset[str]] = frozenset({"translates"})
    #: trains on aligned (input, target) pairs (pix2pix); False: two unpaired domains
    paired: ClassVar[bool] = False
    #: the directions `translate` supports
    directions: ClassVar[tuple[str, ...]] = DIRECTIONS

    def __init__(self, cfg: Mapping[str, Any], resolution: int, num_classes: int = 0):
        super().__init__(cfg, resolution, num_classes)
        self.z_dim = 0

    # ---- the translation contract -----------------------------------------------------------------
    def check_direction(self, direction: str) -> None:
        if direction not in self.directions:
            raise ValueError(f"{self.name} translates {', '.join(self.directions)}; got direction {direction!r}")

    def translate(self, x: torch.Tensor, direction: str) -> torch.Tensor:
        """Images x of the source domain (in [-1, 1], (n, 3, R, R)) translated to the other domain."""
        raise NotImplementedError

    def cycle(self, x: torch.Tensor, direction: str) -> torch.Tensor:
        """x translated along `direction` and back (AB: A -> B -> A); the cycle error is |cycle(x) - x|."""
        self.check_direction(direction)
        back = direction[::-1]
        if back not in self.directions:
            raise ValueError(f"{self.name} translates only {', '.join(self.directions)}: it has no cycle "
                             f"{direction} -> {back}")
        return self.translate(self.translate(x, direction), back)

    def generate(self, G: nn.Module, z: torch.Tensor) -> torch.Tensor:
        """Sample grids: the inputs `z` are domain-A images, translated A -> B (by the model's own networks,
        which are the primary network and, for NICE-GAN, the encoder it needs). The networks' buffers
        (BatchNorm running statistics, spectral-norm vectors) are restored afterwards, so drawing a grid from
        the live networks in training mode never changes training (the loop runs it under fork_rng)."""
        nets = [self.network(n) for n in self.networks]
        saved = [{k: v.clone() for k, v in net.named_buffers()} for net in nets]
        try:
            return self.translate(z, self.directions[0])
        finally:
            for net, buffers in zip(nets, saved):
                for k, v in net.named_buffers():
                    v.copy_(buffers[k])

    def sample_latents(self, n, *, generator=None, device=None, labels=None):
        raise TypeError(f"{self.name} translates images and has no latents: call translate(x, direction)")

    def inversion_start(self, G, n, *, generator=None, device=None, labels=None):
        raise TypeError(f"{self.name} translates images and has no latents to invert: the cycle and reconstruction "
                        "errors on held-out images take inversion's place (cycle(x, direction))")

    # ---- helpers for the phases ---------------------------------------------------------------------
    def domains(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(domain A batch, domain B batch) of a phase's batch; an error when the loop gave one domain only."""
        if batch.reals is None or batch.reals_b is None:
            raise ValueError(f"{self.name} needs batches of both domains (Batch.reals and Batch.reals_b): train it "
                             "on a dataset with a translation block (fewgan.data.pairs) through fewgan.train")
        return batch.reals, batch.reals_b

    def iterations(self) -> int:
        if self.context is None:
            raise RuntimeError(f"{self.name}: the learning-rate schedule needs setup(TrainContext) first")
        return int(self.context.iterations)
