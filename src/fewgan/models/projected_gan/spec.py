"""params/models/projected_gan.yaml (Projected GAN, Sauer et al. NeurIPS 2021; see fewgan.models.projected_gan)."""

from fewgan.schemas import strict
from fewgan.models.specs import BETAS, POLICY_PATTERN

SCHEMA = strict({
    "generator": {"enum": ["fastgan_lite", "fastgan"], "description": "official --cfg (paper: fastgan_lite)"},
    "ngf": {"type": "integer", "minimum": 8, "multipleOf": 8, "description": "generator width (official 128)"},
    "z_dim": {"type": "integer", "minimum": 1, "description": "latent size (official 256)"},
    "ndf": {"type": ["integer", "null"], "minimum": 1,
            "description": "null = the official per-size discriminator widths; a number = every DownBlock that wide"},
    "cout": {"type": "integer", "minimum": 1, "description": "CCM base width (official 64)"},
    "expand": {"type": "boolean", "description": "CCM widths cout x [1, 2, 4, 8] (official true)"},
    "proj_type": {"enum": [0, 1, 2], "description": "0 none, 1 CCM, 2 CCM + CSM (official 2)"},
    "input_size": {"type": ["integer", "null"], "minimum": 128, "multipleOf": 32,
                   "description": "null = official (images below 224 px resized to 224, others as they are); a number = "
                                  "resize every image to it (a CPU deviation; 128 is the smallest the layer plan takes)"},
    "num_discs": {"type": "integer", "minimum": 1, "maximum": 4, "description": "discriminators (official 4)"},
    "lr": {"type": "number", "exclusiveMinimum": 0, "description": "Adam lr of G and D (official fastgan cfgs 2e-4)"},
    "betas": BETAS,
    "eps": {"type": "number", "exclusiveMinimum": 0, "description": "Adam eps (official 1e-8)"},
    "d_lazy_interval": {"type": "integer", "minimum": 1,
                        "description": "official loop's D_reg_interval: D's Adam lr x I/(I+1), betas ** (I/(I+1)); 1 = none"},
    "ema_kimg": {"type": ["number", "null"], "exclusiveMinimum": 0,
                 "description": "EMA half-life in kimg; null = batch x 10/32 (official train.py)"},
    "ema_rampup": {"type": ["number", "null"], "minimum": 0, "description": "EMA ramp-up (official 0.05)"},
    "ema_buffers": {"enum": ["copy", "average"],
                    "description": "G_ema's BatchNorm statistics: copied from G (official) or averaged (fewgan)"},
    "augment_policy": {"type": "string", "pattern": POLICY_PATTERN,
                       "description": "DiffAugment policy the training loop applies (official: color,translation,cutout)"},
})

#: what the model can do (fewgan.models.specs.CAPABILITIES): G(z) is differentiable in z like FastGAN's
CAPABILITIES = ("latents", "invertible")

#: the pretrained network the discriminator trains on (fewgan.metrics.inputs.EXTRACTORS name): selection and the
#: report never rank Projected GAN by a distance in its features (Kynkaanniemi et al. 2023)
FEATURE_NETWORK = "effnet-lite0"
