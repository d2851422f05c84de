"""params/models/stylegan2.yaml (StyleGAN2 + DiffAugment; see fewgan.models.stylegan2)."""

from fewgan.schemas import strict
from fewgan.models.specs import BETAS, POLICY_PATTERN, POS_INT

SCHEMA = strict({
    "z_dim": POS_INT, "w_dim": POS_INT,
    "mapping_layers": POS_INT,
    "mapping_lr_multiplier": {"type": "number", "exclusiveMinimum": 0},
    "w_avg_beta": {"type": "number", "minimum": 0, "maximum": 1},
    "channel_base": POS_INT, "channel_max": POS_INT,
    "mbstd_group_size": POS_INT,
    "mbstd_num_channels": {"type": "integer", "minimum": 0},
    "lr": {"type": "number", "exclusiveMinimum": 0},
    "betas": BETAS,
    "eps": {"type": "number", "exclusiveMinimum": 0},
    "lazy_lr_adjust": {"type": "boolean"},
    "r1_gamma": {"type": "number", "minimum": 0},
    "r1_interval": POS_INT,
    "pl_weight": {"type": "number", "minimum": 0},
    "pl_interval": POS_INT,
    "pl_decay": {"type": "number", "minimum": 0, "maximum": 1},
    "pl_batch_shrink": POS_INT,
    "style_mixing_prob": {"type": "number", "minimum": 0, "maximum": 1},
    "ema_kimg": {"type": "number", "minimum": 0},
    "ema_rampup": {"type": ["number", "null"], "exclusiveMinimum": 0},
    "ema_start_kimg": {"type": ["number", "null"], "minimum": 0},
    "augment_policy": {"type": "string", "pattern": POLICY_PATTERN},
    "inversion_space": {"enum": ["w", "w_plus"]},
    "inversion_w_avg_samples": POS_INT,
    "inversion_seed": {"type": "integer"},
    "sample_noise_mode": {"enum": ["random", "const"]},
})

#: what the model can do (fewgan.models.specs.CAPABILITIES); the stage table reads it
CAPABILITIES = ("latents", "invertible", "truncation")
