"""build_lpips: backbone weights through the resolver, labelled random-backbone fallback."""

from __future__ import annotations

import pytest
import torch
import torchvision

import fewgan.weights as W
from fewgan.nets.lpips import build_lpips

from .conftest import make_params


def test_fallback_backbone_is_deterministic_and_recorded(tmp_path):
    params = make_params(tmp_path, fallback=True)
    m1, d1 = build_lpips("alex", params, "cpu")
    m2, _ = build_lpips("alexnet", params, "cpu")
    assert d1["net"] == "alex" and d1["fallback"] and "pnet_rand=True" in d1["fallback"]
    assert d1["note"] == d1["fallback"]  # what every consumer labels its LPIPS values with
    assert d1["backbone"]["path"] is None and d1["linear_heads"]["sha256"]
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 64, 64, generator=g) * 2 - 1
    y = torch.rand(3, 3, 64, 64, generator=g) * 2 - 1
    d_xy = m1(x, y)
    assert d_xy.shape == (3,) and bool((d_xy > 0).all())
    assert torch.allclose(m1(x, x), torch.zeros(3), atol=1e-7)
    assert torch.equal(d_xy, m2(x, y))  # same seeded random backbone in every build
    # differentiable in the inputs (inversion and FastGAN's reconstruction loss need this)
    xr = x.clone().requires_grad_(True)
    m1(xr, y).sum().backward()
    assert xr.grad is not None and xr.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in m1.parameters())
    with pytest.raises(ValueError, match="equal shape"):
        m1(x, y[:2])


def test_backbone_weights_are_copied_from_the_resolved_file(tmp_path, monkeypatch):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(123)
        ref = torchvision.models.alexnet(weights=None)
    f = tmp_path / "alexnet-features.pth"
    torch.save({k: v for k, v in ref.state_dict().items() if k.startswith("features.")}, f)
    params = make_params(tmp_path, fallback=False, profile="paper")
    params["evaluation"]["weights"]["alexnet"].update(path=str(f), sha256=None)
    m, d = build_lpips("alex", params, "cpu")
    assert d["fallback"] is None and d["backbone"]["source"].startswith("params evaluation.weights.alexnet.path")
    # not a fallback, but not the official file either: labelled, so inversion does not headline its LPIPS
    assert d["backbone"]["standard"] is False and "non-official" in d["note"]
    net = m.model.net
    assert torch.equal(net.slice1._modules["0"].weight, ref.features[0].weight)
    assert torch.equal(net.slice5._modules["10"].weight, ref.features[10].weight)
    assert torch.equal(net.slice3._modules["6"].bias, ref.features[6].bias)


def test_incomplete_backbone_file_is_refused(tmp_path):
    f = tmp_path / "partial.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 11, 11)}, f)
    params = make_params(tmp_path, fallback=False, profile="paper")
    params["evaluation"]["weights"]["alexnet"].update(path=str(f), sha256=None)
    with pytest.raises(ValueError, match="lacks"):
        build_lpips("alex", params, "cpu")


def test_paper_profile_without_backbone_raises(tmp_path):
    with pytest.raises(W.WeightsUnavailableError, match="FEWGAN_VGG16_WEIGHTS"):
        build_lpips("vgg", make_params(tmp_path, fallback=False, profile="paper"), "cpu")
    with pytest.raises(KeyError, match="unknown LPIPS net"):
        build_lpips("squeeze", make_params(tmp_path), "cpu")


@pytest.mark.parametrize("net", ["vgg", "alex"])
def test_distance_to_a_fixed_target_equals_the_pairwise_distance_and_its_gradient(tmp_path, net):
    """GAN inversion keeps the target's LPIPS features (LPIPSDistance.to_target) instead of recomputing them at
    every step: the values and the gradient in x must be those of lpips.LPIPS.forward(x, y)."""
    lp, _ = build_lpips(net, make_params(tmp_path, fallback=True), "cpu")
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 3, 32, 32, generator=g) * 2 - 1
    y = torch.rand(4, 3, 32, 32, generator=g) * 2 - 1
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    pair = lp(xa, y)
    fixed = lp.to_target(y)(xb)
    assert fixed.shape == (4,) and bool((pair > 0).all())
    assert torch.allclose(fixed, pair, rtol=1e-6, atol=0)
    pair.sum().backward()
    fixed.sum().backward()
    assert torch.allclose(xb.grad, xa.grad, rtol=1e-5, atol=1e-9) and xa.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="fixed target of shape"):
        lp.to_target(y)(x[:2])
