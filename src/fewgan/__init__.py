"""fewgan: a reproducible benchmark pipeline for few-shot, high-fidelity image synthesis."""

__version__ = "0.1.0"

# before anything imports numpy: its AVX2 sort on AMD Zen 4 (fewgan.numpy_simd)
from fewgan.numpy_simd import configure as _configure_numpy_simd  # noqa: E402

_configure_numpy_simd()
