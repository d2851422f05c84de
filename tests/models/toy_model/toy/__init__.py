"""Toy GAN: the example of docs/DESIGN.md "Add a model" (tests/models/test_add_a_model.py copies this folder
into a copy of the project as src/fewgan/models/toy/)."""
