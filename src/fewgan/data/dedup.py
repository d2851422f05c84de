"""Perceptual hash for near-duplicate detection: 64-bit DCT pHash.

pHash (Zauner 2010, "Implementation and Benchmarking of Perceptual Image Hash Functions"): gray image
resized to 32x32 (antialiased), 2-D DCT-II, keep the 8x8 lowest frequencies, one bit per coefficient
= coefficient > median of those 64 coefficients excluding the DC term. Near duplicates are pairs whose
hashes differ in at most `phash_max_distance` bits (Hamming distance).
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy.fft import dctn


def phash(image: Image.Image) -> int:
    g = np.asarray(image.convert("L").resize((32, 32), Image.LANCZOS), dtype=np.float64)
    coeffs = dctn(g, type=2, norm="ortho")[:8, :8].flatten()
    med = np.median(coeffs[1:])
    bits = coeffs > med
    return int(sum(1 << i for i, b in enumerate(bits) if b))


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def nearest(h: int, kept: list[int]) -> tuple[int, int]:
    """(index, distance) of the kept hash closest to `h` ((-1, 65) when `kept` is empty)."""
    if not kept:
        return -1, 65
    arr = np.array(kept, dtype=np.uint64)
    x = np.bitwise_xor(arr, np.uint64(h))
    d = np.unpackbits(x.view(np.uint8).reshape(-1, 8), axis=1).sum(1)
    i = int(np.argmin(d))
    return i, int(d[i])
