"""pix2pix (Isola, Zhu, Zhou & Efros, CVPR 2017) as a fewgan translation model (paired, A -> B only).

Networks (nets.py): G a U-Net with BatchNorm and dropout 0.5 (unet_256 at 256 px); D the 70 x 70 PatchGAN on
the concatenated (input, output) pair (6 channels, BatchNorm). Weights N(0, 0.02), BatchNorm weights N(1, 0.02).

One iteration follows models/pix2pix_model.py `optimize_parameters`: G translates the input once; the D step
uses that output detached (vanilla GAN loss = BCE with logits, 0.5 * (fake + real)); the G step reuses the same
output (its graph: BatchNorm and dropout ran once) for BCE(D(input, fake), 1) + lambda_l1 * L1(fake, target),
lambda_l1 = 100. Adam lr 2e-4, betas (0.5, 0.999), constant for the first half of the run, then linear decay
(`lambda_rule`, epochs read as iterations). No EMA, no image pool (the repository sets pool_size 0).

Inference (`translate` on a model in eval mode, e.g. rebuilt from a snapshot): `inference: paper` runs G as in
training, dropout on and BatchNorm on the batch's own statistics (paper Sec. 3.3; the repository's test.py
without --eval), leaving the running statistics untouched; `inference: eval` uses the running statistics and
no dropout. The dropout draws come from the global torch RNG (the stages sample under fork_rng with a seed).

Deviation: the repository jitters its inputs (resize 286, random 256 crop); fewgan uses the curated size and
flips the aligned pair together (train.xflip).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
import torch.nn.functional as F

from fewgan.models.base import Augment, Phase, register_model
from fewgan.models.cyclegan.nets import PatchDiscriminator
from fewgan.models.pix2pix.nets import UnetGenerator
from fewgan.models.specs import validate_block
from fewgan.models.translation import TranslationModel, init_normal, linear_decay, vanilla_gan


@register_model("pix2pix")
class Pix2Pix(TranslationModel):
    networks = ("G", "D")
    snapshot_networks = ("G",)
    primary = "G"
    paired = True
    directions = ("AB",)

    def __init__(self, cfg: Mapping[str, Any], resolution: int, num_classes: int = 0):
        cfg = validate_block("pix2pix", cfg)
        super().__init__(cfg, resolution, num_classes)
        downs = cfg["num_downs"] if cfg["num_downs"] is not None else int(math.log2(resolution))
        if resolution % 2 ** downs:
            raise ValueError(f"params/models/pix2pix.yaml: num_downs {downs} needs a resolution divisible by "
                             f"{2 ** downs}, got {resolution} (null = log2(resolution))")
        gain = float(cfg["init_gain"])
        self.G = init_normal(UnetGenerator(downs, cfg["ngf"], float(cfg["dropout"])), gain)
        self.D = init_normal(PatchDiscriminator(6, cfg["ndf"], cfg["n_layers_d"], "batch"), gain)
        self._fake: torch.Tensor | None = None

    def translate(self, x: torch.Tensor, direction: str = "AB") -> torch.Tensor:
        self.check_direction(direction)
        if self.G.training or self.cfg["inference"] == "eval":
            return self.G(x)
        # the paper's inference: as in training (dropout, batch statistics), running statistics kept as they were
        saved = {k: v.clone() for k, v in self.G.named_buffers()}
        self.G.train()
        try:
            return self.G(x)
        finally:
            self.G.eval()
            for k, v in self.G.named_buffers():
                v.copy_(saved[k])

    def phases(self) -> tuple[Phase, ...]:
        return (Phase("D", "discriminator_phase", "D", reals=True, latents="none"),
                Phase("G", "generator_phase", "G", reals=False, latents="none"))

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        betas = tuple(self.cfg["betas"])
        return {"G": torch.optim.Adam(self.G.parameters(), lr=self.cfg["lr"], betas=betas),
                "D": torch.optim.Adam(self.D.parameters(), lr=self.cfg["lr"], betas=betas)}

    def learning_rate(self, group: str, step: int) -> float:
        total = self.iterations()
        constant = int(total * float(self.cfg["lr_constant_fraction"]))
        return float(self.cfg["lr"]) * linear_decay(step, total, constant, total - constant + 1)

    def discriminator_phase(self, nets, batch, step: int, augment: Augment):
        a, b = self.domains(batch)
        fake = nets["G"](a)  # with its graph: the G step back-propagates through this forward
        D = nets["D"]
        d_fake = vanilla_gan(D(augment(torch.cat([a, fake.detach()], 1))), False)
        d_real = vanilla_gan(D(augment(torch.cat([a, b], 1))), True)
        self._fake = (a, b, fake)
        return 0.5 * (d_fake + d_real), {"d_fake": d_fake.item(), "d_real": d_real.item()}

    def generator_phase(self, nets, batch, step: int, augment: Augment):
        if self._fake is None:
            raise RuntimeError("pix2pix's G step reuses the D step's output: phases must run D then G")
        a, b, fake = self._fake
        self._fake = None
        adv = vanilla_gan(nets["D"](augment(torch.cat([a, fake], 1))), True)
        l1 = F.l1_loss(fake, b)
        return adv + float(self.cfg["lambda_l1"]) * l1, {"adv": adv.item(), "l1": l1.item()}
