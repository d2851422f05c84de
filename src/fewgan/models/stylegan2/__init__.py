"""StyleGAN2 (+ DiffAugment) baseline: spec.py (params schema, capabilities), model.py (GANModel), nets.py (networks)."""
