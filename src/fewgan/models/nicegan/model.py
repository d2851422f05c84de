"""NICE-GAN (Chen et al., CVPR 2020, "Reusing Discriminators for Encoding") as a fewgan translation model.

Networks (nets.py): G_AB, G_BA decode codes into images (light version by default); D_A, D_B are the
discriminators of domains A and B, and their first layers are the encoders: A -> B is G_AB(D_A.encode(a)).
There is no separate encoder network.

One iteration follows NICE.py's `train`: the D step first, then the G step on the same reals.
- D step: both discriminators see the reals and the translations of the other domain (made from the reals'
  codes, without gradient to G); LSGAN on the local, global and CAM logits:
  adv_weight * sum over domains of [MSE(real, 1) + MSE(fake, 0)] for each of the three.
- G step: codes of the reals from the (just updated) encoders; translations; their logits and codes; the
  cycle translates the translation's code back. Loss per domain: adv_weight * (global + CAM + local
  MSE(fake, 1)) + cycle_weight * L1(cycle, real) + recon_weight * L1(G(own code), real).
- **Decoupled training**: the G optimiser holds only the generators, so the encoder (inside D) is updated only
  by the D loss; the G loss back-propagates through the encoders (into the generators) but its gradients on D
  are cleared before the D step (the trainer's zero_grad), as in the official code.
- Adam lr 1e-4, betas (0.5, 0.999), weight decay 1e-4 on both groups; with `decay`, the lr falls linearly to
  0 over the second half of the run (lr -= lr0 / (T // 2) each iteration after T // 2, as NICE.py).
- No EMA (the paper has none). Snapshots hold all four networks (translation needs the encoders).

Deviations: the official loader resizes to 286 and crops 256 at random; fewgan trains on the curated size with
flips (train.xflip). With a DiffAugment policy (default none) the discriminators' inputs are augmented.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F

from fewgan.models.base import Augment, Phase, register_model
from fewgan.models.nicegan.nets import NiceDiscriminator, NiceGenerator, min_resolution
from fewgan.models.specs import validate_block
from fewgan.models.translation import TranslationModel, linear_decay, lsgan


def _adv_d(real_logits, fake_logits) -> torch.Tensor:
    """Sum over the three heads (local, global, CAM) of MSE(real, 1) + MSE(fake, 0)."""
    return sum(lsgan(r, True) + lsgan(f, False) for r, f in zip(real_logits, fake_logits))


@register_model("nicegan")
class NICEGAN(TranslationModel):
    snapshot_networks = ("G_AB", "G_BA", "D_A", "D_B")  # the encoders live in the discriminators

    def __init__(self, cfg: Mapping[str, Any], resolution: int, num_classes: int = 0):
        cfg = validate_block("nicegan", cfg)
        super().__init__(cfg, resolution, num_classes)
        if resolution < min_resolution(cfg["n_dis"]):
            raise ValueError(f"params/models/nicegan.yaml: n_dis {cfg['n_dis']} needs a resolution >= "
                             f"{min_resolution(cfg['n_dis'])} (the global head's 4x4 convs), got {resolution}")
        for name in ("G_AB", "G_BA"):
            setattr(self, name, NiceGenerator(cfg["ch"], cfg["n_res"], resolution, cfg["light"]))
        for name in ("D_A", "D_B"):
            setattr(self, name, NiceDiscriminator(cfg["ch"], cfg["n_dis"]))
        self._reals: tuple[torch.Tensor, torch.Tensor] | None = None

    def translate(self, x: torch.Tensor, direction: str) -> torch.Tensor:
        self.check_direction(direction)
        if direction == "AB":
            return self.G_AB(self.D_A.encode(x))
        return self.G_BA(self.D_B.encode(x))

    def phases(self) -> tuple[Phase, ...]:
        return (Phase("D", "discriminator_phase", "D", reals=True, latents="none"),
                Phase("G", "generator_phase", "G", reals=False, latents="none"))

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        kw = dict(lr=self.cfg["lr"], betas=tuple(self.cfg["betas"]), weight_decay=self.cfg["weight_decay"])
        return {"G": torch.optim.Adam([*self.G_AB.parameters(), *self.G_BA.parameters()], **kw),
                "D": torch.optim.Adam([*self.D_A.parameters(), *self.D_B.parameters()], **kw)}

    def learning_rate(self, group: str, step: int) -> float:
        total = self.iterations()
        if not self.cfg["decay"] or total < 2:
            return float(self.cfg["lr"])
        return float(self.cfg["lr"]) * linear_decay(step, total, total // 2, total // 2)

    def discriminator_phase(self, nets, batch, step: int, augment: Augment):
        a, b = self.domains(batch)
        D_A, D_B = nets["D_A"], nets["D_B"]
        real_a = D_A(augment(a))
        real_b = D_B(augment(b))
        with torch.no_grad():  # the official code detaches the translations: no gradient to G
            fake_b = nets["G_AB"](real_a[4])
            fake_a = nets["G_BA"](real_b[4])
        fake_a_out, fake_b_out = D_A(augment(fake_a)), D_B(augment(fake_b))
        w = float(self.cfg["adv_weight"])
        d_a = w * _adv_d(real_a[:3], fake_a_out[:3])
        d_b = w * _adv_d(real_b[:3], fake_b_out[:3])
        self._reals = (a, b)
        return d_a + d_b, {"d_A": d_a.item(), "d_B": d_b.item()}

    def generator_phase(self, nets, batch, step: int, augment: Augment):
        if self._reals is None:
            raise RuntimeError("nicegan's G step reuses the D step's reals: phases must run D then G")
        a, b = self._reals
        self._reals = None
        G_AB, G_BA, D_A, D_B = nets["G_AB"], nets["G_BA"], nets["D_A"], nets["D_B"]
        z_a, z_b = D_A.encode(a), D_B.encode(b)
        fake_b, fake_a = G_AB(z_a), G_BA(z_b)
        local_a, global_a, cam_a, _, z_fake_a = D_A(augment(fake_a))
        local_b, global_b, cam_b, _, z_fake_b = D_B(augment(fake_b))
        cycle_a, cycle_b = G_BA(z_fake_b), G_AB(z_fake_a)  # A -> B -> A and B -> A -> B
        recon_a, recon_b = G_BA(z_a), G_AB(z_b)             # each domain decoded from its own code
        adv = sum(lsgan(x, True) for x in (global_a, cam_a, local_a, global_b, cam_b, local_b))
        cyc = F.l1_loss(cycle_a, a) + F.l1_loss(cycle_b, b)
        rec = F.l1_loss(recon_a, a) + F.l1_loss(recon_b, b)
        loss = (float(self.cfg["adv_weight"]) * adv + float(self.cfg["cycle_weight"]) * cyc
                + float(self.cfg["recon_weight"]) * rec)
        return loss, {"adv": adv.item(), "cycle": cyc.item(), "recon": rec.item()}
