"""NICE-GAN (Chen et al., CVPR 2020, "Reusing Discriminators for Encoding"): spec.py, model.py, nets.py."""
