"""params/models/cyclegan.yaml (CycleGAN, Zhu et al. ICCV 2017; see fewgan.models.cyclegan)."""

from fewgan.schemas import strict
from fewgan.models.specs import BETAS, POLICY_PATTERN, POS_INT

SCHEMA = strict({
    "ngf": POS_INT,
    "ndf": POS_INT,
    "n_blocks": {"type": "integer", "minimum": 0},
    "n_layers_d": POS_INT,
    "lambda_cycle": {"type": "number", "minimum": 0},
    "lambda_identity": {"type": "number", "minimum": 0},
    "pool_size": {"type": "integer", "minimum": 0},
    "lr": {"type": "number", "exclusiveMinimum": 0},
    "betas": BETAS,
    "lr_constant_fraction": {"type": "number", "minimum": 0, "maximum": 1},
    "init_gain": {"type": "number", "exclusiveMinimum": 0},
    "augment_policy": {"type": "string", "pattern": POLICY_PATTERN},
})

#: what the model can do (fewgan.models.specs.CAPABILITIES): translation only (no latents, nothing to invert)
CAPABILITIES = ("translates",)
