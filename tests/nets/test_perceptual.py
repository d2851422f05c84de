"""The offline perceptual distance (fewgan.nets.perceptual): Zhang et al. 2018's deep-feature baseline over
EfficientNet-Lite0 levels, checked against lpips 0.1.4's own no-linear-layer forward (LPIPS(lpips=False))
given the same feature levels, and shown to order real degradations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from fewgan.nets import effnet_lite0 as E
from fewgan.nets.perceptual import DeepFeatureDistance, build_deep_features


class _LevelsAsLpipsNet(torch.nn.Module):
    def __init__(self, levels):
        super().__init__()
        self.levels = levels

    def forward(self, x):
        return self.levels(x)


def _lpips_baseline(levels):
    import warnings

    import lpips

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = lpips.LPIPS(net="alex", lpips=False, pretrained=False, pnet_rand=True, verbose=False)
    ref.net = _LevelsAsLpipsNet(levels)
    ref.scaling_layer = torch.nn.Identity()
    ref.L = len(E.LEVEL_CHANNELS)
    return ref.eval()


def test_equals_lpips_no_linear_layers_forward():
    torch.manual_seed(0)
    levels = E.Levels(E.build(pretrained=False))   # any weights: the test is of the formula
    ours = DeepFeatureDistance(levels)
    x, y = torch.rand(3, 3, 48, 48) * 2 - 1, torch.rand(3, 3, 48, 48) * 2 - 1
    with torch.no_grad():
        want = _lpips_baseline(levels)(x, y).reshape(-1)
        got = ours(x, y)
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-7), (got, want)
        assert torch.allclose(ours(x, x), torch.zeros(3), atol=1e-6)
        # y_features reuse gives the same numbers
        assert torch.allclose(ours(x, y_features=ours.features(y)), got, rtol=1e-6, atol=1e-8)


def test_gradient_reaches_the_input_not_the_network():
    d, _ = build_deep_features(None)
    x = (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_(True)
    y = torch.rand(2, 3, 32, 32) * 2 - 1
    d(x, y).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in d.parameters())
    d.train()
    assert not d.levels.training          # BatchNorm keeps the pretrained statistics


@pytest.mark.shared_data
def test_orders_degradations_of_real_photos(shared_data):
    files = sorted((shared_data / "afhq-stargan-v2" / "dog").glob("*.jpg"))[:4]
    imgs = [Image.open(f).convert("RGB").resize((128, 128), Image.BICUBIC) for f in files]

    def t(ims):
        return torch.stack([torch.from_numpy(np.array(i)) for i in ims]).permute(0, 3, 1, 2).float() / 127.5 - 1

    x = t(imgs)
    d, info = build_deep_features(None)
    assert info["weights"]["sha256"] == E.SHA256
    with torch.no_grad():
        blur = [d(t([i.filter(ImageFilter.GaussianBlur(r)) for i in imgs]), x).mean().item() for r in (0.5, 1.5, 4)]
        other = d(x.roll(1, 0), x).mean().item()    # a different photo
    assert blur[0] < blur[1] < blur[2] < other, (blur, other)
