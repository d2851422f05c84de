"""JSON schema of the BigGAN model block (params/models/biggan.yaml -> params['models']['biggan']).

Plain data, stdlib only (no torch), so that params tooling can read it without building a model.
Every key is required: params/models/biggan.yaml is the only source of defaults.
"""

_POS_INT = {"type": "integer", "minimum": 1}
_POS_NUM = {"type": "number", "exclusiveMinimum": 0}

SCHEMA = {
    "title": "fewgan BigGAN model block (params/models/biggan.yaml)",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "g_ch": _POS_INT,
        "d_ch": _POS_INT,
        "z_chunk": _POS_INT,
        "shared_dim": _POS_INT,
        "attention": {"oneOf": [{"type": "null"}, {"enum": [8, 16, 32, 64, 128, 256]}]},
        "bn_eps": _POS_NUM,
        "sn_eps": _POS_NUM,
        "g_lr": _POS_NUM,
        "d_lr": _POS_NUM,
        "betas": {"type": "array", "items": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
                  "minItems": 2, "maxItems": 2},
        "adam_eps": _POS_NUM,
        "d_steps": _POS_INT,
        "ortho_beta": {"type": "number", "minimum": 0},
        "ema_decay": {"type": "number", "minimum": 0, "maximum": 1},
        "ema_start": {"type": "integer", "minimum": 0},
        "truncation": {"oneOf": [{"type": "null"}, _POS_NUM]},
        "augment_policy": {"type": "string",
                           "pattern": "^((color|translation|cutout)(,(color|translation|cutout))*)?$"},
    },
}
SCHEMA["required"] = sorted(SCHEMA["properties"])

#: what the model can do (fewgan.models.specs.CAPABILITIES); the stage table reads it
CAPABILITIES = ("latents", "invertible", "conditional", "truncation")
