"""fewgan: a reproducible benchmark pipeline for few-shot, high-fidelity image synthesis."""

__version__ = "0.1.0"
