"""params/models/nicegan.yaml (NICE-GAN, Chen et al. CVPR 2020; see fewgan.models.nicegan)."""

from fewgan.schemas import strict
from fewgan.models.specs import BETAS, POLICY_PATTERN, POS_INT

SCHEMA = strict({
    "light": {"type": "boolean"},
    "ch": POS_INT,
    "n_res": {"type": "integer", "minimum": 0},
    "n_dis": {"type": "integer", "minimum": 6},
    "adv_weight": {"type": "number", "minimum": 0},
    "cycle_weight": {"type": "number", "minimum": 0},
    "recon_weight": {"type": "number", "minimum": 0},
    "lr": {"type": "number", "exclusiveMinimum": 0},
    "betas": BETAS,
    "weight_decay": {"type": "number", "minimum": 0},
    "decay": {"type": "boolean"},
    "augment_policy": {"type": "string", "pattern": POLICY_PATTERN},
})

#: what the model can do (fewgan.models.specs.CAPABILITIES): translation only (no latents, nothing to invert)
CAPABILITIES = ("translates",)
