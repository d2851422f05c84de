"""JSON schema of the ProGAN model block (params/models/progan.yaml -> params['models']['progan']).

Plain data, stdlib only (no torch), so that params tooling can read it without building a model.
Every key is required: params/models/progan.yaml is the only source of defaults.
"""

_POS_INT = {"type": "integer", "minimum": 1}
_POS_NUM = {"type": "number", "exclusiveMinimum": 0}

SCHEMA = {
    "title": "fewgan ProGAN model block (params/models/progan.yaml)",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "latent_size": _POS_INT,
        "fmap_base": _POS_INT,
        "fmap_decay": {"type": "number", "minimum": 0},
        "fmap_max": _POS_INT,
        "normalize_latents": {"type": "boolean"},
        "pixelnorm_epsilon": _POS_NUM,
        "mbstd_group_size": {"type": "integer", "minimum": 0},
        "loss": {"enum": ["wgangp", "lsgan"]},
        "wgan_lambda": {"type": "number", "minimum": 0},
        "wgan_epsilon": {"type": "number", "minimum": 0},
        "wgan_target": _POS_NUM,
        "lr": _POS_NUM,
        "betas": {"type": "array", "items": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
                  "minItems": 2, "maxItems": 2},
        "eps": _POS_NUM,
        "start_resolution": {"enum": [4, 8, 16, 32, 64, 128, 256, 512, 1024]},
        "stabilize_images": {"type": "integer", "minimum": 0},
        "fade_images": {"type": "integer", "minimum": 0},
        "reset_optimizer": {"type": "boolean"},
        "ema_decay": {"type": "number", "minimum": 0, "maximum": 1},
        "augment_policy": {"type": "string",
                           "pattern": "^((color|translation|cutout)(,(color|translation|cutout))*)?$"},
    },
}
SCHEMA["required"] = sorted(SCHEMA["properties"])

#: what the model can do (fewgan.models.specs.CAPABILITIES); the stage table reads it
CAPABILITIES = ("latents", "invertible")
