"""JSON schema of the `train` section of the params (params/train.yaml).

Every key is required (params/train.yaml lists them all), so a typo or a forgotten key fails at
`fewgan params` time instead of silently falling back to a default.
"""

from __future__ import annotations

#: DiffAugment policy: "" or a comma-separated list of color / translation / cutout (no spaces).
POLICY_PATTERN = r"^((color|translation|cutout)(,(color|translation|cutout))*)?$"

_AUTO_BOOL = {"enum": ["auto", True, False]}

TRAIN_SCHEMA: dict = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "iterations", "batch_size", "snapshot_every", "sample_every", "log_every", "augment_policy",
        "amp", "channels_last", "compile", "xflip", "grid_size", "interpolation_steps",
        "nan_check_every", "ddp_find_unused_parameters",
    ],
    "properties": {
        "iterations": {"type": "integer", "minimum": 1,
                       "description": "training iterations (one D step + one G step each); paper 50,000"},
        "batch_size": {"type": "integer", "minimum": 1,
                       "description": "global batch, split evenly over DDP ranks; FastGAN 8"},
        "snapshot_every": {"type": "integer", "minimum": 1,
                           "description": "write a snapshot and the resume state every N iterations (and at the end)"},
        "sample_every": {"type": "integer", "minimum": 1,
                         "description": "write a sample grid of the EMA generator every N iterations (and at the end)"},
        "log_every": {"type": "integer", "minimum": 1, "description": "log.jsonl row every N iterations"},
        "augment_policy": {"type": "string", "pattern": POLICY_PATTERN,
                           "description": "DiffAugment policy used when the model's block has no augment_policy"},
        "amp": {"enum": ["auto", "off", "bf16"],
                "description": "auto: bf16 autocast on CUDA, off on CPU"},
        "channels_last": _AUTO_BOOL,
        "compile": {"type": "boolean"},
        "xflip": {"type": "boolean", "description": "random horizontal flip of the real images"},
        "grid_size": {"type": "integer", "minimum": 1, "maximum": 32,
                      "description": "sample grids show grid_size x grid_size images"},
        "interpolation_steps": {"type": "integer", "minimum": 2, "maximum": 64},
        "nan_check_every": {"type": "integer", "minimum": 1},
        "ddp_find_unused_parameters": _AUTO_BOOL,
    },
}
