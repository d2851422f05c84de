"""Projected GAN (Sauer et al., "Projected GANs Converge Faster", NeurIPS 2021): a FastGAN-lite generator trained
against four discriminators that see the images through a frozen pretrained EfficientNet-Lite0 and frozen random
projections (fewgan.models.projected_gan.model)."""
