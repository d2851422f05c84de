"""What the metric stages (score, evaluate) share: device, the real images of a split, FID settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from fewgan.metrics import fid as F


def pick_device(params: dict, fallbacks: list[str]) -> torch.device:
    from fewgan.device import resolve_device

    return resolve_device(params["device"], "metrics", fallbacks)


def load_split_images(curated_dir: Path, split_dir: Path, which: str) -> tuple[torch.Tensor, list[str]]:
    from fewgan.data.loading import load_images

    images, names = load_images(curated_dir, split_dir, which=which)
    F.check_images(images, f"{which} images from {curated_dir} (split {split_dir})")
    return images, list(names)


def fid_settings(params: dict) -> dict[str, Any]:
    ev = params["evaluation"]
    return {"covariance": F.COVARIANCE, "feature_layer": F.FEATURE_LAYER,
            "kid_subsets": int(ev["kid"]["subsets"]),
            "kid_max_subset_size": int(ev["kid"]["max_subset_size"]),
            "quantisation": "uint8 = round((x + 1) * 127.5), clamped",
            "fid_method": ev["fid"]["method"],
            "reference": "all training images (DiffAugment fid5k-train protocol)"}
