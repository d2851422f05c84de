"""params/models/cgan.yaml (conditional GAN; see fewgan.models.cgan)."""

from fewgan.schemas import strict
from fewgan.models.specs import BETAS, POLICY_PATTERN, POS_INT

SCHEMA = strict({
    "z_dim": POS_INT,
    "g_channels": POS_INT,
    "d_channels": POS_INT,
    "embed_dim": POS_INT,
    "kernel_size": {"enum": [3, 5, 7]},
    "loss": {"enum": ["nonsaturating", "minimax"]},
    "lr": {"type": "number", "exclusiveMinimum": 0},
    "betas": BETAS,
    "init_std": {"type": "number", "exclusiveMinimum": 0},
    "bn_eps": {"type": "number", "exclusiveMinimum": 0},
    "ema_decay": {"type": "number", "minimum": 0, "maximum": 1},
    "augment_policy": {"type": "string", "pattern": POLICY_PATTERN},
})

#: what the model can do (fewgan.models.specs.CAPABILITIES); the stage table reads it
CAPABILITIES = ("latents", "invertible", "conditional")
