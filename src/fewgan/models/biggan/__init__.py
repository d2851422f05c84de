"""BigGAN (Brock, Donahue & Simonyan, ICLR 2019): spec.py (params schema, capabilities), model.py (GANModel), nets.py (networks)."""
