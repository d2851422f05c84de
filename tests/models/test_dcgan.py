"""DCGAN baseline: architecture per resolution, paper init/optimiser, both losses, training signal."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from fewgan.models.base import registered_models
from fewgan.models.dcgan.model import DCGAN as _DCGAN
from fewgan.models.dcgan.spec import SCHEMA

REPO = Path(__file__).resolve().parents[2]
IDENT = lambda x: x  # noqa: E731
SMALL = {"ngf": 8, "ndf": 8, "z_dim": 16}
YAML = yaml.safe_load((REPO / "params/models/dcgan.yaml").read_text())


def DCGAN(cfg: dict, res: int) -> _DCGAN:  # noqa: N802 - the model with params/models/dcgan.yaml under `cfg`
    return _DCGAN({**YAML, **cfg}, res)


def test_registered_and_yaml_is_complete():
    assert registered_models()["dcgan"] is _DCGAN
    assert _DCGAN.config_schema is SCHEMA and SCHEMA["additionalProperties"] is False
    assert sorted(YAML) == sorted(SCHEMA["properties"]) == sorted(SCHEMA["required"])  # the YAML holds every key
    with pytest.raises(ValueError, match=r"params/models/dcgan.yaml.*'ngf' is a required property"):
        _DCGAN({k: v for k, v in YAML.items() if k != "ngf"}, 64)


@pytest.mark.parametrize("res", [32, 64, 128, 256])
def test_forward_backward_shapes(res):
    m = DCGAN(SMALL, res)
    z = m.sample_latents(4)
    img = m.generate(m.G, z)
    assert img.shape == (4, 3, res, res)
    assert img.abs().max() <= 1.0  # tanh output
    logits = m.D(img)
    assert logits.shape == (4, 1)
    logits.mean().backward()
    assert all(p.grad is not None for p in list(m.G.parameters()) + list(m.D.parameters()))
    # number of stride-2 blocks follows the resolution: log2(res) - 2 transposed convs after the 4x4 one
    n_up = sum(isinstance(x, nn.ConvTranspose2d) and x.stride == (2, 2) for x in m.G.modules())
    n_down = sum(isinstance(x, nn.Conv2d) and x.stride == (2, 2) for x in m.D.modules())
    assert n_up == n_down == res.bit_length() - 3


def test_paper_architecture_and_parameter_counts():
    m = DCGAN({}, 64)
    # pytorch/examples dcgan at 64 px (nz 100, ngf = ndf = 64): G 3,576,704, D 2,765,568 parameters
    d = m.describe()
    assert (d["params_G"], d["params_D"]) == (3_576_704, 2_765_568)
    layers = list(m.D.net)
    assert isinstance(layers[0], nn.Conv2d) and isinstance(layers[1], nn.LeakyReLU)  # no BN on D's first layer
    assert layers[1].negative_slope == 0.2
    assert isinstance(list(m.G.net)[-1], nn.Tanh)
    assert any(isinstance(x, nn.ReLU) for x in m.G.modules())
    w = torch.cat([x.weight.flatten() for x in m.G.modules() if isinstance(x, nn.ConvTranspose2d)])
    w = w.detach()
    assert abs(float(w.mean())) < 1e-3 and float(w.std()) == pytest.approx(0.02, rel=0.02)
    bn = torch.cat([x.weight for x in m.D.modules() if isinstance(x, nn.BatchNorm2d)])
    assert float(bn.detach().mean()) == pytest.approx(1.0, abs=0.01)
    for res in (128, 256):
        d = DCGAN({}, res).describe()
        print(f"dcgan {res}px: G {d['params_G']:,} D {d['params_D']:,}")
    opt = m.make_optimizers()
    g = opt["G"].param_groups[0]
    assert g["lr"] == 2e-4 and tuple(g["betas"]) == (0.5, 0.999)


class _FixedD(nn.Module):
    def __init__(self, real: float, fake: float):
        super().__init__()
        self.real, self.fake, self.calls = real, fake, 0

    def forward(self, x):
        self.calls += 1
        v = self.real if self.calls == 1 else self.fake  # discriminator_loss: reals first, then fakes
        return torch.full((x.shape[0], 1), v)


@pytest.mark.parametrize("loss", ["nonsaturating", "hinge"])
def test_loss_formulas(loss):
    m = DCGAN({**SMALL, "loss": loss}, 32)
    z = m.sample_latents(2)
    real = torch.zeros(2, 3, 32, 32)
    l_d, logs = m.discriminator_loss(m.G, _FixedD(0.5, -2.0), real, z, 0, IDENT)
    l_g, _ = m.generator_loss(m.G, _FixedD(0.3, 0.3), z, 0, IDENT)
    if loss == "hinge":
        assert float(l_d) == pytest.approx(max(0, 1 - 0.5) + max(0, 1 - 2.0))
        assert float(l_g) == pytest.approx(-0.3)
    else:
        sp = lambda v: float(F.softplus(torch.tensor(v)))  # noqa: E731
        assert float(l_d) == pytest.approx(sp(-0.5) + sp(-2.0))
        assert float(l_g) == pytest.approx(sp(-0.3))
    assert logs["D_real"] == pytest.approx(0.5) and logs["D_fake"] == pytest.approx(-2.0)


@pytest.mark.parametrize("loss", ["nonsaturating", "hinge"])
def test_discriminator_loss_decreases_on_fixed_batch(loss):
    m = DCGAN({**SMALL, "loss": loss}, 32)
    opt = m.make_optimizers()
    real = torch.rand(8, 3, 32, 32) * 2 - 1
    z = m.sample_latents(8)
    first = last = None
    for step in range(8):
        l, _ = m.discriminator_loss(m.G, m.D, real, z, step, augment=IDENT)
        opt["D"].zero_grad()
        l.backward()
        opt["D"].step()
        first = float(l) if first is None else first
        last = float(l)
    assert last < first - 0.2, (first, last)
    # a G step afterwards moves G towards fooling D
    l0, _ = m.generator_loss(m.G, m.D, z, 8, IDENT)
    opt["G"].zero_grad()
    l0.backward()
    opt["G"].step()
    l1, _ = m.generator_loss(m.G, m.D, z, 9, IDENT)
    assert float(l1) < float(l0)


def test_augment_is_applied_to_reals_and_fakes():
    m = DCGAN(SMALL, 32)
    seen = []
    m.discriminator_loss(m.G, m.D, torch.zeros(2, 3, 32, 32), m.sample_latents(2), 0,
                         augment=lambda x: seen.append(x.shape) or x)
    m.generator_loss(m.G, m.D, m.sample_latents(2), 0, augment=lambda x: seen.append(x.shape) or x)
    assert len(seen) == 3


def test_bad_config_errors():
    with pytest.raises(ValueError, match="supports resolutions"):
        DCGAN(SMALL, 512)
    with pytest.raises(ValueError, match="supports resolutions"):
        DCGAN(SMALL, 16)
    with pytest.raises(ValueError, match=r"models\.dcgan\.loss"):
        DCGAN({**SMALL, "loss": "wgan"}, 32)
    with pytest.raises(ValueError, match="unknown key"):
        DCGAN({"lr_d": 1e-4}, 32)
