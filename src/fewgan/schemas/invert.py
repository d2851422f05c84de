"""params/invert.yaml: the inversion test (FastGAN paper, Table 5; fewgan.invert)."""

from fewgan.schemas import strict

#: "last_k: N" given as a string in YAML (e.g. `snapshots: "last_k: 3"`).
LAST_K_PATTERN = r"^\s*last_k\s*:\s*[1-9][0-9]*\s*$"

INVERT_SCHEMA = strict({
    # backtrack: FastGAN's official back-tracking script; projector: stylegan2-ada projector.py
    "recipe": {"enum": ["backtrack", "projector"]},
    # FastGAN paper, Table 5: "latent vectors updated 1,000 iterations"
    "steps": {"type": "integer", "minimum": 1},
    "lr": {"type": "number", "exclusiveMinimum": 0},
    # weight of the pixel MSE term in the back-tracking loss (0.2 in FastGAN's script)
    "mse_weight": {"type": "number", "minimum": 0},
    "lpips_net": {"enum": ["vgg", "alex"]},
    "snapshots": {
        "oneOf": [
            {"const": "all"},
            {"type": "string", "pattern": LAST_K_PATTERN},
            strict({"last_k": {"type": "integer", "minimum": 1}}),
            {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1, "uniqueItems": True},
        ]
    },
    "batch_size": {"type": "integer", "minimum": 1},
    "seed": {"type": "integer", "minimum": 0},
    "max_images": {"type": "integer", "minimum": 0},
    "include_train": {"type": "integer", "minimum": 0},
    "grid_images": {"type": "integer", "minimum": 1, "maximum": 64},
    "log_every": {"type": "integer", "minimum": 1},
    "projector": strict({
        "lr_rampup": {"type": "number", "minimum": 0, "maximum": 1},
        "lr_rampdown": {"type": "number", "minimum": 0, "maximum": 1},
        "noise_ramp": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "initial_noise_factor": {"type": "number", "minimum": 0},
        "latent_std": {"oneOf": [{"const": "auto"}, {"type": "number", "minimum": 0}]},
        "max_lpips_resolution": {"type": "integer", "minimum": 16},
    }),
})
