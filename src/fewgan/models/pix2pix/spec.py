"""params/models/pix2pix.yaml (pix2pix, Isola et al. CVPR 2017; see fewgan.models.pix2pix)."""

from fewgan.schemas import strict
from fewgan.models.specs import BETAS, POLICY_PATTERN, POS_INT

SCHEMA = strict({
    "ngf": POS_INT,
    "ndf": POS_INT,
    "num_downs": {"type": ["integer", "null"], "minimum": 5},
    "dropout": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
    "n_layers_d": POS_INT,
    "lambda_l1": {"type": "number", "minimum": 0},
    "lr": {"type": "number", "exclusiveMinimum": 0},
    "betas": BETAS,
    "lr_constant_fraction": {"type": "number", "minimum": 0, "maximum": 1},
    "init_gain": {"type": "number", "exclusiveMinimum": 0},
    "inference": {"enum": ["paper", "eval"]},
    "augment_policy": {"type": "string", "pattern": POLICY_PATTERN},
})

#: what the model can do (fewgan.models.specs.CAPABILITIES): translation only (A -> B, on aligned pairs)
CAPABILITIES = ("translates",)
