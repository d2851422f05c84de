"""A perceptual distance that needs no download: the "deep features" baseline of Zhang et al. 2018 (CVPR,
"The Unreasonable Effectiveness of Deep Features as a Perceptual Metric", Eq. 1 with every w_l = 1, i.e.
LPIPS without its learned linear layers) over pretrained EfficientNet-Lite0 features.

    d(x, y) = sum over levels l of  mean over (h, w) of  || n(f_l(x))_hw - n(f_l(y))_hw ||^2

where f_l are the four feature levels of `fewgan.nets.effnet_lite0.Levels` (24, 40, 112 and 320 channels at
1/4, 1/8, 1/16 and 1/32 of the input size) and n(.) divides each spatial position's channel vector by its L2
norm (lpips' `normalize_tensor`, eps 1e-10). Like LPIPS (whose BAPPS judgements are of 64x64 patches), the
images are compared at their own resolution: no resize to 224 (`resize=True` does that, at ~3x the cost for
128-px images; measured: forward+backward of 24 images at 224 px took 3.1 s on 2 cores, the step it would
serve 1.4 s). tests/nets/
test_perceptual.py checks the value against lpips 0.1.4's own `LPIPS(lpips=False)` forward over the same
feature levels.

It is a trained ImageNet feature space, not LPIPS: no learned layer was fitted to human judgements, and its
values are on another scale than LPIPS-VGG/AlexNet. Every output that uses it says so (`LABEL`).
FastGAN uses it as its reconstruction loss (`models.fastgan.recon_loss` / `recon_offline: effnet_deep`) and
the inversion test as its headline when LPIPS's pretrained backbone is missing.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from fewgan.nets import effnet_lite0 as E

log = logging.getLogger(__name__)

NAME = "effnet_deep"
LABEL = ("EfficientNet-Lite0 deep-feature distance (Zhang et al. 2018 baseline: unit-normalised channels, "
         "no learned layers; ImageNet weights; not LPIPS)")
EPS = 1e-10  # lpips.normalize_tensor


def unit_channels(f: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Each spatial position's channel vector divided by its L2 norm (+ eps)."""
    return f / (f.square().sum(dim=1, keepdim=True).sqrt() + eps)


class DeepFeatureDistance(nn.Module):
    """(x, y) in [-1, 1], (N, 3, H, W) each -> (N,) distances. Frozen; differentiable in its inputs.
    `y_features` lets a caller reuse a target's normalised features (computed under no_grad)."""

    def __init__(self, levels: nn.Module, resize: bool = False):
        super().__init__()
        # channels_last: measured 0.52 s instead of 0.74 s for forward+backward of 24 images at 128 px (2 cores)
        self.levels = levels.eval().requires_grad_(False).to(memory_format=torch.channels_last)
        self.levels.resize = bool(resize)

    def train(self, mode: bool = True) -> "DeepFeatureDistance":  # BatchNorm statistics stay the pretrained ones
        return super().train(False)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = x.contiguous(memory_format=torch.channels_last)
        return [unit_channels(f.float()) for f in self.levels(x)]

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, *,
                y_features: list[torch.Tensor] | None = None) -> torch.Tensor:
        if (y is None) == (y_features is None):
            raise ValueError("give exactly one of y or y_features")
        if y is not None and x.shape != y.shape:
            raise ValueError(f"deep-feature distance: shapes differ {tuple(x.shape)} vs {tuple(y.shape)}")
        if y_features is None:
            with torch.set_grad_enabled(torch.is_grad_enabled() and y.requires_grad):
                y_features = self.features(y)
        total = x.new_zeros(x.shape[0], dtype=torch.float32)
        for fx, fy in zip(self.features(x), y_features):
            total = total + (fx - fy).square().sum(dim=1).mean(dim=(1, 2))
        return total


def build_deep_features(params: dict | None, device: Any = "cpu", *,
                        resize: bool = False) -> tuple[DeepFeatureDistance, dict]:
    """The distance with the pinned EfficientNet-Lite0 weights, and an info block for outputs
    ({name, label, weights: {path, sha256, source}, fallback})."""
    path, source, sha = _weights(params)
    net = E.build(path, sha256=sha if sha == E.SHA256 else None)
    module = DeepFeatureDistance(E.Levels(net), resize=resize).to(device)
    info = {"name": NAME, "label": LABEL, "weights": {"path": str(path), "sha256": sha, "source": source},
            "levels": list(E.LEVEL_CHANNELS),
            "input_size": E.INPUT_SIZE if resize else "the images' own", "fallback": None}
    return module, info


def _weights(params: dict | None) -> tuple[Any, str, str]:
    """The EfficientNet-Lite0 file: through fewgan.weights (env / params overrides, the installed package);
    params None takes the package's file. An untrained network is never used here: a random feature space
    measures nothing perceptual, so a missing file is an error (callers record it)."""
    if params is None:
        return E.package_weights_path(), "installed package " + E.PACKAGE, E.SHA256
    from fewgan.weights import resolve

    info = resolve("effnet-lite0", params)
    if info.path is None:
        raise E.EffNetWeightsError(f"EfficientNet-Lite0 weights unavailable: {info.fallback or info.label}")
    return info.path, info.source, info.sha256
