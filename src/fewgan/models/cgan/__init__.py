"""Conditional GAN (Mirza & Osindero 2014, in the convolutional form the GAN survey describes): spec.py (params schema, capabilities), model.py (GANModel), nets.py (networks)."""
