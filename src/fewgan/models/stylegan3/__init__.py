"""StyleGAN3 (Karras et al., "Alias-Free Generative Adversarial Networks", NeurIPS 2021), configs T and R: spec.py (params schema, capabilities), model.py (GANModel), nets.py (networks)."""
