"""fewgan.invert: GAN inversion of held-out images across training snapshots (FastGAN paper, Table 5)."""

from fewgan.invert.stage import run

__all__ = ["run"]
