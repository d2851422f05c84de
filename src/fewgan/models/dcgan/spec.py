"""params/models/dcgan.yaml (DCGAN, Radford et al. ICLR 2016; see fewgan.models.dcgan)."""

from fewgan.schemas import strict
from fewgan.models.specs import BETAS, POLICY_PATTERN

SCHEMA = strict({
    "z_dim": {"type": "integer", "minimum": 1},
    "ngf": {"type": "integer", "minimum": 1},
    "ndf": {"type": "integer", "minimum": 1},
    "channel_max": {"type": "integer", "minimum": 1},
    "loss": {"enum": ["nonsaturating", "hinge"]},
    "lr": {"type": "number", "exclusiveMinimum": 0},
    "betas": BETAS,
    "init_std": {"type": "number", "exclusiveMinimum": 0},
    "ema_decay": {"type": "number", "minimum": 0, "maximum": 1},
    "augment_policy": {"type": "string", "pattern": POLICY_PATTERN},
})

#: what the model can do (fewgan.models.specs.CAPABILITIES); the stage table reads it
CAPABILITIES = ("latents", "invertible")
