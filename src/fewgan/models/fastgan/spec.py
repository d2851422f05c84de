"""params/models/fastgan.yaml (FastGAN, Liu et al. ICLR 2021; see fewgan.models.fastgan)."""

from fewgan.schemas import strict
from fewgan.models.specs import BETAS, POLICY_PATTERN

RECON_LOSSES = ("lpips_vgg", "lpips_untrained", "l1", "effnet_deep")

SCHEMA = strict({
    "ngf": {"type": "integer", "minimum": 8, "multipleOf": 8, "description": "generator width (paper: 64)"},
    "ndf": {"type": "integer", "minimum": 8, "multipleOf": 8, "description": "discriminator width (paper: 64)"},
    "nz": {"type": "integer", "minimum": 1, "description": "latent size (official script: 256)"},
    "lr": {"type": "number", "exclusiveMinimum": 0, "description": "Adam lr for G and D (2e-4)"},
    "betas": BETAS,
    "ema_decay": {"type": "number", "minimum": 0, "maximum": 1, "description": "EMA of G (0.999)"},
    "parity": {"type": "boolean", "description": "true = official maths incl. its known flaws"},
    "recon_loss": {"enum": list(RECON_LOSSES), "description": "D self-supervision loss"},
    "recon_offline": {"enum": ["lpips_untrained", "l1", "effnet_deep"],
                      "description": "the loss used instead of lpips_vgg when the VGG16 weights cannot be had"},
    "dec_width": {"type": "integer", "minimum": 2, "description": "decoder width (official 32)"},
    "share_fakes": {"type": "boolean", "description": "reuse the D step's fakes in the G step (official)"},
    "augment_policy": {"type": "string", "pattern": POLICY_PATTERN,
                       "description": "DiffAugment policy the training loop applies (official: color,translation)"},
})

#: what the model can do (fewgan.models.specs.CAPABILITIES); the stage table reads it
CAPABILITIES = ("latents", "invertible", "mixing")
