"""StyleGAN: the official parameter counts, AdaIN / noise / style mixing / truncation, the growth schedule and
learning rate per resolution (ProGAN's machinery), R1 at the reference's full resolution, the loss on a fixed batch,
and bit-exact resume through the shared trainer across a fade."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
import yaml

from fewgan.models.base import TrainContext, registered_models
from fewgan.models.progan.model import GrowthResetAdam
from fewgan.models.progan.nets import downsample, upsample
from fewgan.models.stylegan.model import StyleGAN as _StyleGAN
from fewgan.models.stylegan.nets import LayerEpilogue, blur2d
from fewgan.models.stylegan.spec import SCHEMA
from fewgan.train.state import capture_rng, restore_rng
from fewgan.train.trainer import build_trainer

REPO = Path(__file__).resolve().parents[2]
YAML_PATH = REPO / "params/models/stylegan.yaml"
YAML = yaml.safe_load(YAML_PATH.read_text())
IDENT = lambda x: x  # noqa: E731
TINY = {"latent_size": 16, "dlatent_size": 16, "mapping_layers": 2, "fmap_base": 64, "fmap_max": 16,
        "start_resolution": 4, "stabilize_images": 8, "fade_images": 8}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def StyleGAN(cfg: dict, res: int) -> _StyleGAN:  # noqa: N802
    return _StyleGAN({**YAML, **cfg}, res)


def tiny(res: int = 32, batch: int = 4, **over) -> _StyleGAN:
    m = StyleGAN({**TINY, **over}, res)
    m.setup(TrainContext(batch_size=batch, iterations=100))
    return m


def test_registered_and_yaml_is_complete():
    assert registered_models()["stylegan"] is _StyleGAN
    assert sorted(YAML) == sorted(SCHEMA["properties"]) == sorted(SCHEMA["required"])
    for line in YAML_PATH.read_text().splitlines():
        if line and not line.startswith("#"):
            assert "#" in line, f"uncommented key in {YAML_PATH.name}: {line!r}"
    assert (YAML["mapping_layers"], YAML["style_mixing_prob"], YAML["r1_gamma"], YAML["start_resolution"]) == (8, 0.9, 10.0, 8)
    with pytest.raises(ValueError, match="unknown key"):
        StyleGAN({"fmap_bas": 1}, 32)


def test_parameter_counts_equal_the_official_printout_at_1024():
    # NVlabs/stylegan README (Gs.print_layers() of the FFHQ 1024 network): G total 26,219,627; D_basic's printout
    # of the same configuration: 23,087,249, with 8x8/Conv0_up 2,885,632, 64x64/Conv0_up 1,442,816,
    # 1024x1024/Conv1 18,752, ToRGB_lod0 51, D 4x4/Conv 2,364,416, 4x4/Dense0 4,194,816, FromRGB_lod0 64.
    m = StyleGAN({}, 1024)
    n = lambda mod: sum(p.numel() for p in mod.parameters())  # noqa: E731
    d = m.describe()
    assert d["params_G"] == 26_219_627 and d["params_D"] == 23_087_249
    assert n(m.G.mapping) == 8 * (512 * 512 + 512) == 2_101_248
    b8, b64, b1024 = m.G.blocks[0], m.G.blocks[3], m.G.blocks[7]
    assert n(b8.conv0) + n(b8.epi0) == 2_885_632 and n(b64.conv0) + n(b64.epi0) == 1_442_816
    assert n(b1024.conv1) + n(b1024.epi1) == 18_752 and n(m.G.to_rgb[-1]) == 51
    assert n(m.D.conv4) == 2_364_416 and n(m.D.dense0) == 4_194_816 and n(m.D.from_rgb[-1]) == 64
    assert m.num_ws == 18
    assert sum(b.numel() for k, b in m.G.named_buffers() if k.endswith("noise_const")) == 2 * sum(
        4 ** r for r in range(2, 11))  # one non-trainable noise image per layer, as noise0..17
    assert m.G.growth() == (3, 1.0)  # lod_initial_resolution 8


def test_layer_epilogue_is_noise_bias_lrelu_instance_norm_adain():
    torch.manual_seed(0)
    epi = LayerEpilogue(4, 8, 8)
    x, w = torch.randn(2, 4, 8, 8), torch.randn(2, 8)
    with torch.no_grad():
        epi.bias.copy_(torch.tensor([0.5, -0.5, 0.0, 1.0]))
        out = epi(x, w, "none")
        s = epi.style(w).view(2, 2, 4)
    # per sample and channel: mean = y_b, std = y_s + 1 (AdaIN after instance norm)
    assert torch.allclose(out.mean(dim=[2, 3]), s[:, 1], atol=1e-5)
    assert torch.allclose(out.std(dim=[2, 3], unbiased=False), (s[:, 0] + 1).abs(), atol=1e-4)
    # noise: weight 0 at init (no effect); once non-zero, random noise differs per call, const noise does not
    assert torch.equal(epi(x, w, "random"), out)
    with torch.no_grad():
        epi.noise_weight.fill_(0.3)
    assert not torch.equal(epi(x, w, "random"), epi(x, w, "random"))
    assert torch.equal(epi(x, w, "const"), epi(x, w, "const"))
    with pytest.raises(ValueError, match="noise_mode"):
        epi(x, w, "fixed")
    img = torch.full((1, 2, 6, 6), 0.25)
    assert torch.allclose(blur2d(img)[:, :, 1:-1, 1:-1], img[:, :, 1:-1, 1:-1])  # [1,2,1]^2 / 16 keeps constants


def test_style_mixing_and_truncation():
    m = tiny(32)
    m.set_growth(m.G, m.D, 100)  # final resolution: 8 style inputs in use
    G = m.G
    z = torch.randn(3, 16)
    _, ws = G(z, return_ws=True)
    assert all(torch.equal(ws[:, 0], ws[:, i]) for i in range(G.num_ws))
    torch.manual_seed(3)
    _, mixed = G(z, style_mixing_prob=1.0, return_ws=True)
    cut = next(i for i in range(G.num_ws) if not torch.equal(mixed[:, i], ws[:, 0]))
    assert 1 <= cut < G.current_layers() == 8
    assert all(not torch.equal(mixed[:, i], ws[:, 0]) for i in range(cut, G.num_ws))
    G.train()
    G(torch.randn(8, 16))
    assert float(G.dlatent_avg.abs().sum()) > 0  # tracked in training mode
    G.eval()
    _, tr = G(z, truncation_psi=0.0, truncation_cutoff=8, return_ws=True)
    assert torch.allclose(tr[:, :8], G.dlatent_avg.expand(3, 8, -1)) and torch.equal(tr[:, 8:], ws[:, 8:])
    img = m.generate_truncated(G, z, 0.0)
    assert img.shape == (3, 3, 32, 32)


@pytest.mark.parametrize("step,level,alpha", [(0, 2, 1.0), (3, 3, 0.5), (4, 3, 1.0), (7, 4, 0.5), (100, 5, 1.0)])
def test_growth_shapes_and_generate_upsamples(step, level, alpha):
    m = tiny(32)
    assert m.set_growth(m.G, m.D, step) == (level, alpha)
    z = torch.randn(4, 16)
    img = m.G(z)
    assert img.shape == (4, 3, 2 ** level, 2 ** level)
    assert m.D(img).shape == (4, 1)
    out = m.generate(m.G, z)
    assert out.shape == (4, 3, 32, 32)
    assert (m.snapshot_note() is None) == (level == 5)


def test_learning_rate_per_resolution_and_optimizer_reset():
    m = StyleGAN({**TINY, "fmap_base": 4096}, 256)  # the paper's schedule; tiny widths (lr depends on the level only)
    assert [m.lr_at_level(k) for k in (3, 6, 7, 8)] == [0.001, 0.001, 0.0015, 0.002]  # train.py G_lrate_dict
    assert m.ema_beta(0, 32) == pytest.approx(0.5 ** (32 / 10_000))  # G_smoothing_kimg 10
    s = tiny(32, lr_per_resolution=[[8, 0.002], [16, 0.003]])
    opt = s.make_optimizers()
    assert isinstance(opt["G"], GrowthResetAdam)
    real = torch.rand(4, 3, 32, 32) * 2 - 1
    lrs = []
    for step in range(8):
        z = torch.randn(4, 16)
        loss, _ = s.discriminator_loss(s.G, s.D, real, z, step, IDENT)
        opt["D"].zero_grad()
        loss.backward()
        opt["D"].step()
        lrs.append((opt["D"].param_groups[0]["lr"], min(int(st["step"]) for st in opt["D"].state.values())))
    # 4 px (0.001) for steps 0-2, fade to 8 px at step 3 (Adam reset), 8 px from 4 (reset), fade to 16 px at 7
    assert lrs == [(0.001, 1), (0.001, 2), (0.001, 3), (0.002, 1), (0.002, 1), (0.002, 2), (0.002, 3), (0.003, 1)]


def test_r1_is_taken_at_the_reference_full_resolution():
    m = tiny(32, r1_gamma=10.0)
    m.set_growth(m.G, m.D, 4)  # 8 px, stable: the reference's D input is nearest-upscaled by 4
    real = torch.rand(4, 3, 32, 32) * 2 - 1
    torch.manual_seed(0)
    _, logs = m.discriminator_loss(m.G, m.D, real, torch.randn(4, 16), 4, IDENT)
    x = upsample(m.real_images_at(real, 3, 1.0), 4).requires_grad_(True)  # full-res input as process_reals makes it
    (g,) = torch.autograd.grad(m.D(downsample(x, 4)).sum(), x)  # D_basic box-downscales by 2**lod first
    assert logs["r1_penalty"] == pytest.approx(float(g.square().sum(dim=[1, 2, 3]).mean()), rel=1e-4)
    assert logs["loss_D_r1"] == pytest.approx(logs["r1_penalty"] * 5.0, rel=1e-5)


def test_discriminator_loss_falls_on_a_fixed_batch():
    m = tiny(16, start_resolution=16)
    opt = m.make_optimizers()
    real = torch.rand(4, 3, 16, 16) * 2 - 1
    z = torch.randn(4, 16)
    losses = []
    for step in range(10):
        torch.manual_seed(1)
        loss, logs = m.discriminator_loss(m.G, m.D, real, z, step, IDENT)
        opt["D"].zero_grad()
        loss.backward()
        opt["D"].step()
        losses.append(logs["loss_D_real"] + logs["loss_D_fake"])
    assert losses[-1] < losses[0] - 0.1, losses


FAST = {**YAML, **TINY, "lr_per_resolution": [[8, 0.002], [16, 0.003]], "ema_kimg": 0.01}


def test_bit_exact_resume_through_the_trainer_across_a_fade():
    images = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(5)) * 2 - 1
    ctx = TrainContext(batch_size=4, iterations=6)

    def fresh(seed=0):
        torch.manual_seed(seed)
        return build_trainer("stylegan", dict(FAST), 16, ctx), {"latent": torch.Generator().manual_seed(2)}

    def run(tr, steps, gens):
        for s in steps:
            tr.step(s, reals=lambda i: (images[(s % 2) * 4:(s % 2) * 4 + 4], None),
                    latents=lambda: torch.randn(4, 16, generator=gens["latent"]), augment=IDENT)

    a, ga = fresh()
    run(a, range(6), ga)
    b, gb = fresh()
    run(b, range(3), gb)  # the cut is where the 8-px fade starts (optimiser reset, new lr)
    buf = io.BytesIO()
    torch.save({"trainer": b.state(), "rng": capture_rng(gb)}, buf)
    c, gc = fresh(seed=99)
    saved = torch.load(io.BytesIO(buf.getvalue()), weights_only=True)
    c.load_state(saved["trainer"])
    restore_rng(saved["rng"], gc)
    run(c, range(3, 6), gc)
    for x, y in ((a.state()["model"], c.state()["model"]), (a.state()["G_ema"], c.state()["G_ema"])):
        assert x.keys() == y.keys()
        for k in x:
            assert torch.equal(x[k], y[k]), k
    assert a.state()["optim"]["D"]["param_groups"] == c.state()["optim"]["D"]["param_groups"]
    assert a.gan.G.growth() == (3, 1.0) and a.opts["G"].param_groups[0]["lr"] == 0.002
    m = _StyleGAN(dict(FAST), 16)  # what load_snapshot builds
    m.G.load_state_dict(a.snapshot_networks()["G_ema"])
    m.eval()
    z = torch.randn(2, 16)
    with torch.no_grad():
        torch.manual_seed(7)
        x1 = m.generate(m.G, z)
        torch.manual_seed(7)
        x2 = m.generate(a.sampling_network(), z)
    assert torch.equal(x1, x2) and x1.shape == (2, 3, 16, 16)


def test_bf16_autocast_step_is_finite_and_tracks_w_in_fp32():
    torch.manual_seed(0)
    tr = build_trainer("stylegan", dict(FAST), 16, TrainContext(batch_size=4, iterations=2, precision="bf16"))
    images = torch.rand(4, 3, 16, 16) * 2 - 1
    r = tr.step(0, reals=lambda i: (images, None), latents=lambda: torch.randn(4, 16), augment=IDENT)
    assert r.finite() and tr.gan.G.dlatent_avg.dtype == torch.float32 and float(tr.gan.G.dlatent_avg.abs().sum()) > 0


def test_inversion_in_w_and_the_projector_scale():
    m = tiny(16, start_resolution=16, inversion_w_avg_samples=500)
    G = m.G.eval()
    lat = m.inversion_start(G, 2)
    assert lat.shape == (2, 16) and torch.equal(lat, m.inversion_start(G, 2))  # seeded
    gen = torch.Generator().manual_seed(int(m.cfg["inversion_seed"]))
    with torch.no_grad():
        w = G.mapping(torch.randn(500, 16, generator=gen)).double()
    assert torch.allclose(lat[0].double(), w.mean(0), atol=1e-5)
    assert m.inversion_latent_std(G) == pytest.approx(float((w - w.mean(0)).square().sum(1).mean().sqrt()), rel=1e-6)
    lat = lat.clone().requires_grad_(True)
    img = m.synthesize(G, lat)
    assert img.shape == (2, 3, 16, 16) and torch.equal(img, m.synthesize(G, lat))  # const noise
    img.sum().backward()
    assert float(lat.grad.abs().sum()) > 0
    wp = StyleGAN({**TINY, "inversion_space": "w_plus", "inversion_w_avg_samples": 100}, 16)
    assert wp.inversion_start(wp.G.eval(), 2).shape == (2, 6, 16)  # 16 px: 2 log2(16) - 2 style inputs
