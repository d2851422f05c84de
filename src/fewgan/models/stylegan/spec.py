"""JSON schema of the StyleGAN model block (params/models/stylegan.yaml -> params['models']['stylegan']).

Plain data, stdlib only (no torch). Every key is required: params/models/stylegan.yaml is the only source of defaults.
"""

from fewgan.schemas import strict
from fewgan.models.specs import BETAS, POLICY_PATTERN, POS_INT

_POS_NUM = {"type": "number", "exclusiveMinimum": 0}
_RESOLUTION = {"enum": [4, 8, 16, 32, 64, 128, 256, 512, 1024]}

SCHEMA = strict({
    "latent_size": POS_INT,
    "dlatent_size": POS_INT,
    "mapping_layers": POS_INT,
    "mapping_lrmul": _POS_NUM,
    "dlatent_avg_beta": {"type": "number", "minimum": 0, "maximum": 1},
    "fmap_base": POS_INT,
    "fmap_decay": {"type": "number", "minimum": 0},
    "fmap_max": POS_INT,
    "pixelnorm_epsilon": _POS_NUM,
    "mbstd_group_size": {"type": "integer", "minimum": 0},
    "style_mixing_prob": {"type": "number", "minimum": 0, "maximum": 1},
    "r1_gamma": {"type": "number", "minimum": 0},
    "lr": _POS_NUM,
    "lr_per_resolution": {"type": "array", "items": {"type": "array", "prefixItems": [_RESOLUTION, _POS_NUM],
                                                     "minItems": 2, "maxItems": 2}},
    "betas": BETAS,
    "eps": _POS_NUM,
    "start_resolution": _RESOLUTION,
    "stabilize_images": {"type": "integer", "minimum": 0},
    "fade_images": {"type": "integer", "minimum": 0},
    "reset_optimizer": {"type": "boolean"},
    "ema_kimg": {"type": "number", "minimum": 0},
    "truncation_cutoff": POS_INT,
    "sample_noise_mode": {"enum": ["random", "const"]},
    "augment_policy": {"type": "string", "pattern": POLICY_PATTERN},
    "inversion_space": {"enum": ["w", "w_plus"]},
    "inversion_w_avg_samples": POS_INT,
    "inversion_seed": {"type": "integer"},
})

#: what the model can do (fewgan.models.specs.CAPABILITIES); the stage table reads it
CAPABILITIES = ("latents", "invertible", "truncation")
