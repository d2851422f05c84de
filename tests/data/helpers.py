"""Small builders shared by the data tests."""

from __future__ import annotations

import numpy as np
from PIL import Image

from fewgan.params import dataset_entry


def params_for(name: str, entry: dict, seed: int = 0) -> dict:
    """Params holding one dataset entry, completed from params/dataset_defaults.yaml as `fewgan params` does."""
    return {"seed": seed, "datasets": {name: dataset_entry(entry)}}


def noise_images(folder, n: int, size: int = 48, seed: int = 0, fmt: str = "PNG", prefix: str = "img") -> list:
    """n clearly different random images (blocky noise, so pHash distances are large)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        small = rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8)
        img = Image.fromarray(small, "RGB").resize((size, size), Image.NEAREST)
        p = folder / f"{prefix}{i:03d}.{'png' if fmt == 'PNG' else 'jpg'}"
        img.save(p, fmt)
        paths.append(p)
    return paths
