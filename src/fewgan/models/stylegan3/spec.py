"""params/models/stylegan3.yaml (StyleGAN3-T / -R; see fewgan.models.stylegan3)."""

from fewgan.schemas import strict
from fewgan.models.specs import BETAS, POLICY_PATTERN, POS_INT

_POS_NUM = {"type": "number", "exclusiveMinimum": 0}

SCHEMA = strict({
    "config": {"enum": ["t", "r"]},
    "z_dim": POS_INT, "w_dim": POS_INT,
    "mapping_layers": POS_INT,
    "mapping_lr_multiplier": _POS_NUM,
    "w_avg_beta": {"type": "number", "minimum": 0, "maximum": 1},
    "channel_base": POS_INT, "channel_max": POS_INT,
    "num_layers": {"type": "integer", "minimum": 2},
    "num_critical": {"type": "integer", "minimum": 0},
    "first_cutoff": _POS_NUM,
    "first_stopband": _POS_NUM,
    "last_stopband_rel": _POS_NUM,
    "margin_size": {"type": "integer", "minimum": 0},
    "output_scale": _POS_NUM,
    "filter_size": POS_INT,
    "lrelu_upsampling": POS_INT,
    "conv_clamp": {"type": ["number", "null"], "exclusiveMinimum": 0},
    "magnitude_ema_kimg": _POS_NUM,
    "mbstd_group_size": POS_INT,
    "mbstd_num_channels": {"type": "integer", "minimum": 0},
    "g_lr": _POS_NUM,
    "d_lr": _POS_NUM,
    "betas": BETAS,
    "eps": _POS_NUM,
    "lazy_lr_adjust": {"type": "boolean"},
    "r1_gamma": {"type": "number", "minimum": 0},
    "r1_interval": POS_INT,
    "style_mixing_prob": {"type": "number", "minimum": 0, "maximum": 1},
    "r_blur_sigma": {"type": "number", "minimum": 0},
    "r_blur_fade_kimg_at_batch32": {"type": "number", "minimum": 0},
    "ema_kimg_at_batch32": {"type": "number", "minimum": 0},
    "ema_rampup": {"type": ["number", "null"], "exclusiveMinimum": 0},
    "augment_policy": {"type": "string", "pattern": POLICY_PATTERN},
    "inversion_space": {"enum": ["w", "w_plus"]},
    "inversion_w_avg_samples": POS_INT,
    "inversion_seed": {"type": "integer"},
})

#: what the model can do (fewgan.models.specs.CAPABILITIES); the stage table reads it
CAPABILITIES = ("latents", "invertible", "truncation")
