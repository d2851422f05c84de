"""params/models/toy.yaml: the toy GAN's params block, as plain data (no torch)."""

from fewgan.models.specs import BETAS
from fewgan.schemas import strict

SCHEMA = strict({
    "z_dim": {"type": "integer", "minimum": 1},
    "width": {"type": "integer", "minimum": 1},
    "lr": {"type": "number", "exclusiveMinimum": 0},
    "betas": BETAS,
    "d_steps": {"type": "integer", "minimum": 1},
    "ema_decay": {"type": "number", "minimum": 0, "maximum": 1},
})

#: generates from latents, but nothing to invert: the stage table gives its cells no invert stage
CAPABILITIES = ("latents",)
