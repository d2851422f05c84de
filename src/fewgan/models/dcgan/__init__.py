"""DCGAN (Radford, Metz & Chintala, ICLR 2016): spec.py (params schema, capabilities), model.py (GANModel)."""
