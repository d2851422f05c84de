"""FastGAN (Liu et al., ICLR 2021): spec.py (params schema, capabilities), model.py (GANModel), nets.py (networks)."""
