"""StyleGAN2 baseline: shapes, losses, lazy regularisation, EMA schedule, inversion hooks, parameter counts."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

from fewgan.io import atomic_torch_save, torch_load
from fewgan.models.base import registered_models
from fewgan.models.stylegan2.model import StyleGAN2 as _StyleGAN2
from fewgan.models.stylegan2.spec import SCHEMA
from fewgan.models.stylegan2.nets import modulated_conv2d, setup_filter, upsample2d

REPO = Path(__file__).resolve().parents[2]
IDENT = lambda x: x  # noqa: E731

#: Tiny widths so every resolution runs in well under a second on 2 CPU cores.
TINY = {"z_dim": 16, "w_dim": 16, "mapping_layers": 2, "channel_base": 512, "channel_max": 16}


YAML = yaml.safe_load((REPO / "params/models/stylegan2.yaml").read_text())


def StyleGAN2(cfg: dict, res: int) -> _StyleGAN2:  # noqa: N802 - the model with params/models/stylegan2.yaml under `cfg`
    return _StyleGAN2({**YAML, **cfg}, res)


def tiny(res: int = 32, **over) -> _StyleGAN2:
    return StyleGAN2({**TINY, **over}, res)


def test_registered_and_yaml_is_complete():
    assert registered_models()["stylegan2"] is _StyleGAN2
    assert _StyleGAN2.config_schema is SCHEMA and SCHEMA["additionalProperties"] is False
    assert sorted(YAML) == sorted(SCHEMA["properties"]) == sorted(SCHEMA["required"])  # the YAML holds every key
    assert YAML["augment_policy"] == "color,translation,cutout"


@pytest.mark.parametrize("res", [32, 64, 128, 256])
def test_forward_backward_shapes(res):
    m = tiny(res)
    z = torch.randn(4, 16)
    img = m.generate(m.G, z)
    assert img.shape == (4, 3, res, res)
    assert m.num_ws == 2 * int(math.log2(res)) - 2
    logits = m.D(img)
    assert logits.shape == (4, 1)
    logits.sum().backward()
    missing = [n for n, p in list(m.G.named_parameters()) + list(m.D.named_parameters()) if p.grad is None]
    assert missing == []
    assert all(torch.isfinite(p.grad).all() for p in m.G.parameters())


def test_generator_shape_at_1024():
    m = StyleGAN2({**TINY, "channel_base": 1024, "channel_max": 8}, 1024)
    assert m.num_ws == 18  # 2 * log2(1024) - 2, as stylegan2-ada for 1024 px
    with torch.no_grad():
        img = m.generate(m.G, torch.randn(1, 16))
    assert img.shape == (1, 3, 1024, 1024)
    assert torch.isfinite(img).all()


def test_parameter_counts_match_stylegan2_ada(capsys):
    # Totals printed by NVlabs/stylegan2-ada-pytorch train.py (print_module_summary) for the 1024-px
    # 'auto' config (channel_base 32768, channel_max 512, 2 mapping layers): G 28,794,124, D 29,012,513;
    # per-layer: synthesis.b128.conv0 1,442,561, synthesis.b4.conv1 2,622,465, D b4.conv 2,364,416.
    m = StyleGAN2({"mapping_layers": 2}, 1024)
    d = m.describe()
    assert d["params_G"] == 28_794_124
    assert d["params_D"] == 29_012_513
    n = lambda mod: sum(p.numel() for p in mod.parameters())  # noqa: E731
    assert n(m.G.synthesis.blocks[5].conv0) == 1_442_561  # b128
    assert n(m.G.synthesis.blocks[0].conv1) == 2_622_465  # b4
    assert n(m.D.conv) == 2_364_416
    # config-f with 8 mapping layers adds 6 x 262,656 -> 30,370,060
    assert d["params_G"] + 6 * 262_656 == 30_370_060
    del m
    for res in (256, 1024):
        d = StyleGAN2({}, res).describe()
        print(f"stylegan2 config-f {res}px: G {d['params_G']:,} D {d['params_D']:,}")
        if res == 1024:
            assert d["params_G"] == 30_370_060 and d["params_D"] == 29_012_513
        else:
            assert d["params_G"] == 30_034_338 and d["params_D"] == 28_864_129


def test_discriminator_loss_decreases_on_fixed_batch():
    m = tiny(32, lr=0.002)
    opt = m.make_optimizers()
    real = torch.rand(4, 3, 32, 32) * 2 - 1
    z = torch.randn(4, 16)
    losses = []
    for step in range(1, 9):  # step % r1_interval == 0 every step (DiffAugment default r1_interval 1)
        torch.manual_seed(1)
        loss, logs = m.discriminator_loss(m.G, m.D, real, z, step, augment=IDENT)
        opt["D"].zero_grad()
        loss.backward()
        opt["D"].step()
        losses.append(logs["loss_D_real"] + logs["loss_D_fake"])
    assert losses[-1] < losses[0] - 0.1, losses


def test_r1_runs_at_interval_and_changes_loss():
    m = tiny(32, r1_interval=4, r1_gamma=10.0)
    real = torch.rand(4, 3, 32, 32) * 2 - 1
    z = torch.randn(4, 16)
    seen = {}
    for step in range(6):
        torch.manual_seed(3)
        loss, logs = m.discriminator_loss(m.G, m.D, real, z, step, augment=IDENT)
        seen[step] = ("r1_penalty" in logs, float(loss.detach()), logs)
    assert [seen[s][0] for s in range(6)] == [True, False, False, False, True, False]
    # same data and RNG: the only difference between step 0 and step 1 is the lazy R1 term
    r1 = seen[0][2]["r1_penalty"]
    assert r1 > 0
    assert seen[0][2]["loss_D_r1"] == pytest.approx(r1 * 10.0 / 2 * 4, rel=1e-5)
    assert seen[0][1] - seen[1][1] == pytest.approx(seen[0][2]["loss_D_r1"], rel=1e-4, abs=1e-6)
    # gamma 0 disables it entirely
    m0 = tiny(32, r1_interval=4, r1_gamma=0.0)
    _, logs0 = m0.discriminator_loss(m0.G, m0.D, real, z, 0, augment=IDENT)
    assert "r1_penalty" not in logs0


def test_r1_gradient_goes_through_augment():
    m = tiny(32)
    real = torch.rand(4, 3, 32, 32) * 2 - 1
    z = torch.randn(4, 16)
    torch.manual_seed(0)
    _, a = m.discriminator_loss(m.G, m.D, real, z, 0, augment=IDENT)
    torch.manual_seed(0)
    _, b = m.discriminator_loss(m.G, m.D, real, z, 0, augment=lambda x: 3.0 * x)
    # d D(3x)/dx = 3 D'(3x): the penalty must see the augmentation's Jacobian
    assert b["r1_penalty"] != pytest.approx(a["r1_penalty"], rel=1e-3)


def test_path_length_runs_at_interval_and_updates_buffer():
    m = tiny(32, pl_weight=2.0, pl_interval=2)
    z = torch.randn(4, 16)
    assert float(m.G.pl_mean) == 0.0
    assert "pl_mean" in m.G.state_dict()
    torch.manual_seed(5)
    loss0, logs0 = m.generator_loss(m.G, m.D, z, 0, augment=IDENT)
    assert "pl_penalty" in logs0 and logs0["pl_mean"] > 0
    assert float(m.G.pl_mean) == pytest.approx(logs0["pl_mean"])
    # pl_mean = lerp(0, mean length, 0.01), so the mean path length is 100x the buffer
    assert logs0["loss_G_pl"] == pytest.approx(logs0["pl_penalty"] * 2.0, rel=1e-5)
    assert float(loss0.detach()) == pytest.approx(logs0["loss_G"] + 2 * logs0["loss_G_pl"], rel=1e-5)
    loss0.backward()
    assert m.G.mapping.layers[0].weight.grad is not None
    before = float(m.G.pl_mean)
    _, logs1 = m.generator_loss(m.G, m.D, z, 1, augment=IDENT)
    assert "pl_penalty" not in logs1 and float(m.G.pl_mean) == before
    _, logs2 = m.generator_loss(m.G, m.D, z, 2, augment=IDENT)
    assert "pl_penalty" in logs2 and float(m.G.pl_mean) != before


def test_lazy_regularisation_optimizer_adjustment():
    m = tiny(32, lr=0.0025, r1_interval=16, pl_weight=2.0, pl_interval=4)
    s = m.optimizer_settings()
    assert s["D"]["lr"] == pytest.approx(0.0025 * 16 / 17)
    assert s["D"]["betas"] == pytest.approx([0.0, 0.99 ** (16 / 17)])
    assert s["G"]["lr"] == pytest.approx(0.0025 * 4 / 5)
    assert s["G"]["betas"] == pytest.approx([0.0, 0.99 ** (4 / 5)])
    # paper DiffAugment defaults: R1 every step, no path length -> no adjustment
    s = tiny(32).optimizer_settings()
    assert s["D"]["lr"] == pytest.approx(0.002) and s["G"]["lr"] == pytest.approx(0.002)
    assert s["D"]["betas"] == pytest.approx([0.0, 0.99])


def test_ema_beta_schedule():
    m = tiny(32, ema_kimg=10.0, ema_rampup=None, ema_start_kimg=None)
    assert m.ema_beta(0, 32) == pytest.approx(0.5 ** (32 / 10000))
    assert m.ema_beta(1000, 32) == pytest.approx(0.5 ** (32 / 10000))
    r = tiny(32, ema_kimg=10.0, ema_rampup=0.05, ema_start_kimg=None)
    assert r.ema_beta(0, 32) == 0.0  # ema_nimg = 0 -> copy
    assert r.ema_beta(100, 32) == pytest.approx(0.5 ** (32 / (100 * 32 * 0.05)))
    assert r.ema_beta(10**6, 32) == pytest.approx(0.5 ** (32 / 10000))
    s = tiny(32)  # DiffAugment default: ema_start_kimg = 10
    assert s.ema_beta(312, 32) == 0.0  # 9,984 images < 10 kimg
    assert s.ema_beta(313, 32) == pytest.approx(0.5 ** (32 / 10000))


@pytest.mark.parametrize("space", ["w", "w_plus"])
def test_inversion_start_and_synthesize(space):
    m = tiny(32, inversion_space=space, inversion_w_avg_samples=1000)
    G = m.G.eval()
    lat = m.inversion_start(G, 3)
    expect = (3, 16) if space == "w" else (3, m.num_ws, 16)
    assert lat.shape == expect
    assert torch.equal(lat, m.inversion_start(G, 3))  # seeded (inversion_seed), deterministic
    assert torch.allclose(lat[0], lat[2])
    g = torch.Generator().manual_seed(7)
    assert not torch.equal(lat, m.inversion_start(G, 3, generator=g))
    assert float(G.mapping.w_avg.abs().sum()) == 0.0  # estimating mean w must not touch w_avg
    lat = lat.clone().requires_grad_(True)
    img = m.synthesize(G, lat)
    assert img.shape == (3, 3, 32, 32)
    assert torch.equal(img.detach(), m.synthesize(G, lat).detach())  # const noise: no randomness
    img.square().mean().backward()
    assert lat.grad is not None and lat.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="latent must be"):
        m.synthesize(G, torch.zeros(2, 5))


def test_truncation_psi_zero_gives_one_image():
    m = tiny(32)
    m.G.train()
    m.G.mapping(torch.randn(64, 16))  # move w_avg away from zero
    G = m.G.eval()
    z = torch.randn(3, 16)
    with torch.no_grad():
        same = m.generate_truncated(G, z, 0.0)
        diff = m.generate_truncated(G, z, 1.0)
    # rows of one batch with identical inputs: bit-equal here (AVX2, and SSE4.1 without ATen SIMD), but a kernel
    # may treat a batch tail with another blocking on another ISA; 1e-5 is ~80 float32 ulps at |x| <= 1.7, and a
    # truncation that kept z differs by > 1e-3 (below)
    assert torch.allclose(same[0], same[1], atol=1e-5) and torch.allclose(same[0], same[2], atol=1e-5)
    assert (diff[0] - diff[1]).abs().max() > 1e-3


def test_generate_never_truncates_and_style_mixing():
    m = tiny(32)
    G = m.G.eval()
    z = torch.randn(2, 16)
    torch.manual_seed(0)
    a = m.generate(G, z)
    torch.manual_seed(0)
    b = G(z, noise_mode="random", truncation_psi=1.0)
    assert torch.equal(a, b)
    _, ws = G(z, return_ws=True)
    assert torch.equal(ws[:, 0], ws[:, -1])  # no mixing: one w broadcast
    _, ws = G(z, style_mixing_prob=1.0, return_ws=True)
    assert not torch.equal(ws[:, 0], ws[:, -1])  # mixed: a second w after the cut-off
    assert torch.equal(ws[:, 0], G.mapping(z)[:, 0])


def test_w_avg_tracks_in_training_mode_only():
    m = tiny(32)
    m.G.eval()
    m.G(torch.randn(4, 16))
    assert float(m.G.mapping.w_avg.abs().sum()) == 0.0
    m.G.train()
    m.G(torch.randn(4, 16))
    assert float(m.G.mapping.w_avg.abs().sum()) > 0.0


def test_modulated_conv_matches_fused_grouped_form():
    torch.manual_seed(0)
    n, cin, cout = 2, 5, 4
    x = torch.randn(n, cin, 6, 6)
    w = torch.randn(cout, cin, 3, 3)
    s = torch.randn(n, cin)
    # fused reference: per-sample weights, demodulated, grouped conv (StyleGAN2 paper eqs. 1-3)
    ww = w[None] * s[:, None, :, None, None]
    ww = ww * (ww.square().sum(dim=[2, 3, 4], keepdim=True) + 1e-8).rsqrt()
    ref = F.conv2d(x.reshape(1, -1, 6, 6), ww.reshape(-1, cin, 3, 3), padding=1, groups=n).reshape(n, cout, 6, 6)
    out = modulated_conv2d(x, w, s, padding=1)
    assert torch.allclose(out, ref, atol=1e-5)
    # up=2: fused transposed conv then the same FIR filter
    f = setup_filter()
    up = modulated_conv2d(x, w, s, up=2, padding=1, resample_filter=f)
    assert up.shape == (n, cout, 12, 12)
    wt = ww.reshape(n, cout, cin, 3, 3).transpose(1, 2).reshape(n * cin, cout, 3, 3)
    y = F.conv_transpose2d(x.reshape(1, -1, 6, 6), wt, stride=2, groups=n).reshape(n, cout, 13, 13)
    from fewgan.models.stylegan2.nets import upfirdn2d
    assert torch.allclose(up, upfirdn2d(y, f, pad=(1, 1, 1, 1), gain=4.0), atol=1e-5)


def test_fir_upsample_keeps_constant_images_constant():
    x = torch.full((1, 3, 8, 8), 0.7)
    y = upsample2d(x, setup_filter())
    assert y.shape == (1, 3, 16, 16)
    assert torch.allclose(y[:, :, 2:-2, 2:-2], torch.full_like(y[:, :, 2:-2, 2:-2], 0.7), atol=1e-6)


def test_state_dict_roundtrip_weights_only(tmp_path):
    m = tiny(32, pl_weight=2.0)
    m.G.pl_mean.fill_(0.25)
    path = tmp_path / "g.pt"
    atomic_torch_save(path, {"G": m.G.state_dict(), "D": m.D.state_dict()})
    state = torch_load(path)
    m2 = tiny(32, pl_weight=2.0)
    m2.G.load_state_dict(state["G"])
    m2.D.load_state_dict(state["D"])
    assert float(m2.G.pl_mean) == 0.25
    lat = m.inversion_start(m.G.eval(), 2)
    assert torch.equal(m.synthesize(m.G, lat), m2.synthesize(m2.G.eval(), lat))


def test_bad_config_errors_name_the_key():
    with pytest.raises(ValueError, match="unknown key.*chanel_base"):
        StyleGAN2({"chanel_base": 1}, 32)
    with pytest.raises(ValueError, match="inversion_space"):
        tiny(32, inversion_space="z")
    with pytest.raises(ValueError, match="augment_policy"):
        tiny(32, augment_policy="colour")
    with pytest.raises(ValueError, match="power of two"):
        tiny(48)
    m = tiny(32)
    with pytest.raises(ValueError, match="mbstd_group_size"):
        m.D(torch.zeros(6, 3, 32, 32))
    with pytest.raises(ValueError, match=r"\(n, 3, 32, 32\)"):
        m.D(torch.zeros(4, 3, 64, 64))


def test_bf16_autocast_trainer_step_keeps_w_avg_float32():
    """train.precision bf16 (opt-in): the mapping's output is bf16 under autocast and
    the tracked w average stays float32 (it failed with `expected dtype BFloat16 for end` before the fix)."""
    from fewgan.models.base import TrainContext
    from fewgan.train.trainer import build_trainer

    torch.manual_seed(0)
    tr = build_trainer("stylegan2", {**YAML, **TINY}, 32, TrainContext(batch_size=4, iterations=2, precision="bf16"))
    images = torch.rand(4, 3, 32, 32) * 2 - 1
    r = tr.step(0, reals=lambda i: (images, None), latents=lambda: torch.randn(4, 16), augment=IDENT)
    w_avg = tr.gan.G.mapping.w_avg
    assert r.finite() and w_avg.dtype == torch.float32 and float(w_avg.abs().sum()) > 0
