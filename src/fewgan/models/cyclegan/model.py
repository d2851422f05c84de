"""CycleGAN (Zhu, Park, Isola & Efros, ICCV 2017) as a fewgan translation model.

Networks (nets.py): G_AB, G_BA resnet_9blocks (ngf 64, instance norm, reflection padding); D_A, D_B 70 x 70
PatchGANs (n_layers 3, instance norm). D_A judges domain A (real A against G_BA's fakes), D_B domain B (the
repository calls G_AB "G_A" and D_B "D_A").

One iteration follows models/cycle_gan_model.py `optimize_parameters`: the G step first (fakes, cycles and
identities from one batch of each domain; LSGAN adversarial terms + lambda_cycle * L1 cycles + lambda_identity *
lambda_cycle * L1 identities), then the D step on the same reals and the G step's fakes (computed before the
G update, as the repository's `forward` does), taken through the image pools (50 images each): loss
0.5 * (LSGAN(real, 1) + LSGAN(pooled fake, 0)) per discriminator. Adam lr 2e-4, betas (0.5, 0.999); the
learning rate is constant for the first half of the run, then decays linearly (the repository's
`lambda_rule`, with epochs read as iterations). Weights N(0, 0.02) (init_type normal). No EMA (the paper has
none).

Deviations: the repository jitters its inputs (resize to 286, random 256 crop); fewgan trains on the curated
size with horizontal flips (train.xflip) only. The pool draws from the global torch RNG instead of Python's
`random` (the loop saves both).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F

from fewgan.models.base import Augment, Phase, register_model
from fewgan.models.cyclegan.nets import PatchDiscriminator, ResnetGenerator
from fewgan.models.specs import validate_block
from fewgan.models.translation import ImagePool, TranslationModel, init_normal, linear_decay, lsgan


@register_model("cyclegan")
class CycleGAN(TranslationModel):
    def __init__(self, cfg: Mapping[str, Any], resolution: int, num_classes: int = 0):
        cfg = validate_block("cyclegan", cfg)
        super().__init__(cfg, resolution, num_classes)
        if resolution % 4 or resolution < 32:
            raise ValueError(f"cyclegan needs a resolution >= 32 divisible by 4 (two stride-2 levels and the "
                             f"PatchGAN), got {resolution}")
        gain = float(cfg["init_gain"])
        for name in ("G_AB", "G_BA"):
            setattr(self, name, init_normal(ResnetGenerator(cfg["ngf"], cfg["n_blocks"], "instance"), gain))
        for name in ("D_A", "D_B"):
            setattr(self, name, init_normal(PatchDiscriminator(3, cfg["ndf"], cfg["n_layers_d"], "instance"), gain))
        self.pool_A = ImagePool(cfg["pool_size"], (3, resolution, resolution))  # fakes of domain A, for D_A
        self.pool_B = ImagePool(cfg["pool_size"], (3, resolution, resolution))
        self._cache: tuple[torch.Tensor, ...] | None = None

    def translate(self, x: torch.Tensor, direction: str) -> torch.Tensor:
        self.check_direction(direction)
        return (self.G_AB if direction == "AB" else self.G_BA)(x)

    def phases(self) -> tuple[Phase, ...]:
        return (Phase("G", "generator_phase", "G", reals=True, latents="none"),
                Phase("D", "discriminator_phase", "D", reals=False, latents="none"))

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        betas = tuple(self.cfg["betas"])
        g = [*self.G_AB.parameters(), *self.G_BA.parameters()]
        d = [*self.D_A.parameters(), *self.D_B.parameters()]
        return {"G": torch.optim.Adam(g, lr=self.cfg["lr"], betas=betas),
                "D": torch.optim.Adam(d, lr=self.cfg["lr"], betas=betas)}

    def learning_rate(self, group: str, step: int) -> float:
        total = self.iterations()
        constant = int(total * float(self.cfg["lr_constant_fraction"]))
        return float(self.cfg["lr"]) * linear_decay(step, total, constant, total - constant + 1)

    def generator_phase(self, nets, batch, step: int, augment: Augment):
        a, b = self.domains(batch)
        G_AB, G_BA, D_A, D_B = nets["G_AB"], nets["G_BA"], nets["D_A"], nets["D_B"]
        fake_b, fake_a = G_AB(a), G_BA(b)
        rec_a, rec_b = G_BA(fake_b), G_AB(fake_a)
        lam = float(self.cfg["lambda_cycle"])
        adv = lsgan(D_B(augment(fake_b)), True) + lsgan(D_A(augment(fake_a)), True)
        cyc = F.l1_loss(rec_a, a) + F.l1_loss(rec_b, b)
        loss = adv + lam * cyc
        logs = {"adv": adv.item(), "cycle": cyc.item()}
        if self.cfg["lambda_identity"] > 0:  # G_AB should leave B images unchanged, G_BA A images
            idt = F.l1_loss(G_AB(b), b) + F.l1_loss(G_BA(a), a)
            loss = loss + float(self.cfg["lambda_identity"]) * lam * idt
            logs["identity"] = idt.item()
        self._cache = (a, b, fake_a.detach(), fake_b.detach())
        return loss, logs

    def discriminator_phase(self, nets, batch, step: int, augment: Augment):
        if self._cache is None:
            raise RuntimeError("cyclegan's D step reuses the G step's fakes: phases must run G then D")
        a, b, fake_a, fake_b = self._cache
        self._cache = None
        fake_b = self.pool_B.query(fake_b)  # the repository queries fake_B's pool first (backward_D_A)
        fake_a = self.pool_A.query(fake_a)
        d_b = 0.5 * (lsgan(nets["D_B"](augment(b)), True) + lsgan(nets["D_B"](augment(fake_b)), False))
        d_a = 0.5 * (lsgan(nets["D_A"](augment(a)), True) + lsgan(nets["D_A"](augment(fake_a)), False))
        return d_a + d_b, {"d_A": d_a.item(), "d_B": d_b.item()}
