"""ProGAN (Karras, Aila, Laine & Lehtinen, "Progressive Growing of GANs", ICLR 2018): spec.py (params schema, capabilities), model.py (GANModel), nets.py (networks)."""
