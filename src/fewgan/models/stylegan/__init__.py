"""StyleGAN (Karras, Laine & Aila, "A Style-Based Generator Architecture for GANs", CVPR 2019): spec.py (params schema, capabilities), model.py (GANModel), nets.py (networks)."""
