"""ProGAN: schema/YAML, paper parameter counts, growth schedule and fade-in, losses, optimiser reset, resume."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import jsonschema
import pytest
import torch

from fewgan.models.base import TrainContext
import torch.nn.functional as F
import yaml
from torch import nn

from fewgan.models.base import registered_models
from fewgan.models.progan.model import SCORING_RULE, GrowthResetAdam, ProGAN, growth_at, growth_key
from fewgan.models.progan.spec import SCHEMA
from fewgan.train.ema import EMA

REPO = Path(__file__).resolve().parents[2]
YAML_PATH = REPO / "params/models/progan.yaml"
IDENT = lambda x: x  # noqa: E731
YAML_CFG = yaml.safe_load(YAML_PATH.read_text())
#: tiny widths: 16 feature maps up to 64 px, 8 at 128, 4 at 256
SMALL = {**YAML_CFG, "latent_size": 16, "fmap_base": 1024, "fmap_max": 16}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def small(res: int, **kw) -> ProGAN:
    return ProGAN({**SMALL, **kw}, res)


def configured(res: int, batch: int = 4, iterations: int = 100, **kw) -> ProGAN:
    m = small(res, **kw)
    m.setup(TrainContext(batch_size=batch, iterations=iterations))
    return m


def set_final(m: ProGAN) -> None:
    L = m.G.max_level
    m.G.set_growth(L, 1.0)
    m.D.set_growth(L, 1.0)


# ---- schema / YAML -------------------------------------------------------------------------------
def test_registered_schema_and_yaml_agree():
    assert registered_models()["progan"] is ProGAN
    assert ProGAN.config_schema is SCHEMA
    assert SCHEMA["additionalProperties"] is False
    assert set(SCHEMA["required"]) == set(SCHEMA["properties"]) == set(YAML_CFG)
    jsonschema.validate(YAML_CFG, SCHEMA)
    for line in YAML_PATH.read_text().splitlines():  # every key carries a comment citing its source
        if line and not line.startswith("#") and not line.startswith(" "):
            assert "#" in line, f"uncommented key in {YAML_PATH.name}: {line!r}"
    for key in YAML_CFG:  # every key alone validates; a misspelled one is rejected naming the file
        jsonschema.validate({key: YAML_CFG[key]}, {**SCHEMA, "required": []})
    with pytest.raises(ValueError, match=r"unknown key.*'lr_d'.*params/models/progan\.yaml"):
        ProGAN({**YAML_CFG, "lr_d": 1e-3}, 32)
    with pytest.raises(ValueError, match=r"missing key.*'fade_images'.*params/models/progan\.yaml"):
        ProGAN({k: v for k, v in YAML_CFG.items() if k != "fade_images"}, 32)
    with pytest.raises(ValueError, match=r"models\.progan\.loss.*params/models/progan\.yaml"):
        ProGAN({**YAML_CFG, "loss": "wgan"}, 32)
    with pytest.raises(ValueError, match=r"models\.progan\.betas\.1"):
        ProGAN({**YAML_CFG, "betas": [0.0, 1.0]}, 32)
    with pytest.raises(ValueError, match="start_resolution"):
        ProGAN({**SMALL, "start_resolution": 64}, 32)
    with pytest.raises(ValueError, match="power of two"):
        ProGAN(SMALL, 48)


def test_paper_parameter_counts_celebahq_1024():
    # Table 2 of the paper: G 23.1M, D 23.1M (CelebA-HQ, 1024 px, fmap_base 8192, fmap_max 512, latent 512);
    # exact counts of networks.py G_paper/D_paper with every toRGB/fromRGB layer: 23,079,115 and 23,087,249
    m = ProGAN(YAML_CFG, 1024)  # no forward pass
    d = m.describe()
    print(f"progan 1024px: G {d['params_G']:,} D {d['params_D']:,}")
    assert (d["params_G"], d["params_D"]) == (23_079_115, 23_087_249)
    assert round(d["params_G"] / 1e6, 1) == round(d["params_D"] / 1e6, 1) == 23.1
    # equalised learning rate: N(0, 1) weights, zero biases, He constant at runtime
    conv = m.G.blocks[0].conv0
    w = conv.weight.detach()
    assert float(w.std()) == pytest.approx(1.0, rel=0.01) and float(conv.bias.detach().abs().max()) == 0.0
    assert conv.scale == pytest.approx(math.sqrt(2) / math.sqrt(512 * 9))
    assert m.G.dense.scale == pytest.approx(math.sqrt(2) / 4 / math.sqrt(512))
    assert m.G.to_rgb[-1].scale == pytest.approx(1 / math.sqrt(16))
    g = m.make_optimizers()["G"].param_groups[0]
    assert (g["lr"], tuple(g["betas"]), g["eps"]) == (0.001, (0.0, 0.99), 1e-8)


# ---- shapes --------------------------------------------------------------------------------------
@pytest.mark.parametrize("res", [8, 32, 64, 128, 256])
def test_shapes_at_every_resolution(res):
    m = small(res)
    n = 4 if res <= 64 else 2
    z = m.sample_latents(n)
    assert z.shape == (n, 16)
    assert m.G.growth() == (2, 1.0)  # a fresh model starts at 4x4
    with torch.no_grad():
        img = m.generate(m.G, z)  # always full resolution
        assert img.shape == (n, 3, res, res) and float(img.abs().max()) <= 1.0
        set_final(m)
        img = m.generate(m.G, z)
        assert img.shape == (n, 3, res, res) and float(img.abs().max()) <= 1.0
        assert m.D(img).shape == (n, 1)
        L = m.G.max_level
        for net in (m.G, m.D):
            net.set_growth(L, 0.25)  # during the last fade
        img = m.G(z)
        assert img.shape == (n, 3, res, res) and m.D(img).shape == (n, 1)


# ---- growth schedule -----------------------------------------------------------------------------
def test_growth_schedule_alpha_and_levels():
    # S = F = 8 images, batch 4: 2 steps per phase. 16 px, start 4 px (TrainingSchedule semantics)
    m = configured(16, batch=4, stabilize_images=8, fade_images=8)
    # step 2 = 8 images: the fade starts with progress 0, so lod is still integral: 4 px, alpha 1
    want = {0: (2, 1.0), 1: (2, 1.0), 2: (2, 1.0), 3: (3, 0.5), 4: (3, 1.0), 5: (3, 1.0), 6: (3, 1.0),
            7: (4, 0.5), 8: (4, 1.0), 9: (4, 1.0), 50: (4, 1.0)}
    for step, (level, alpha) in want.items():
        assert m.growth_at_step(step) == (level, pytest.approx(alpha)), step
    # alpha ramps linearly over a fade measured in images
    assert growth_at(8 + 2, 16, 4, 8, 8) == (3, pytest.approx(0.25))
    assert growth_at(16 + 8 + 6, 16, 4, 8, 8) == (4, pytest.approx(0.75))
    # a later start resolution, no stabilisation, resolution already reached
    assert growth_at(0, 64, 16, 0, 10) == (4, 1.0)
    assert growth_at(5, 64, 16, 0, 10) == (5, pytest.approx(0.5))
    assert growth_at(10**9, 64, 16, 0, 10) == (6, 1.0)
    assert growth_at(0, 16, 16, 8, 8) == (4, 1.0)
    # the loss call writes the state into G's and D's buffers
    z = m.sample_latents(4)
    _, logs = m.discriminator_loss(m.G, m.D, torch.zeros(4, 3, 16, 16), z, 3, IDENT)
    assert (logs["level"], logs["alpha"]) == (3.0, 0.5)
    assert m.G.growth() == m.D.growth() == (3, 0.5)
    assert m.describe()["growth"] == {"resolution": 8, "alpha": 0.5, "final": False, "scoring_rule": SCORING_RULE}
    m.generator_loss(m.G, m.D, z, 9, IDENT)
    assert m.G.growth() == (4, 1.0) and m.describe()["growth"]["final"] is True
    assert {"level", "alpha"} <= {k.split(".")[-1] for k in m.G.state_dict()}  # buffers: in snapshots


def test_bench_times_each_growth_phase_by_its_share_of_the_run():
    """fewgan bench weights a growing model's step cost by its cost classes (GANModel.cost_key): the level and
    whether a fade runs both output paths, from the schedule above (S = F = 8 images at batch 4)."""
    from fewgan.bench import cost_classes

    m = configured(16, batch=4, stabilize_images=8, fade_images=8)
    assert cost_classes(m, 12) == {(2, False): [0, 1, 2], (3, True): [3], (3, False): [4, 5, 6], (4, True): [7],
                                   (4, False): [8, 9, 10, 11]}


def test_setup_required_before_training():
    m = small(16)
    with pytest.raises(RuntimeError, match=r"setup\(TrainContext"):
        m.discriminator_loss(m.G, m.D, torch.zeros(4, 3, 16, 16), m.sample_latents(4), 0, IDENT)


def test_real_blending_is_the_hand_computed_lerp():
    m = configured(16)
    real = torch.rand(2, 3, 16, 16) * 2 - 1
    # 8 px, alpha 0.3: x8 = 2x2 means of the 16-px image; y = 4-px means upsampled (nearest) to 8 px
    x8 = real.reshape(2, 3, 8, 2, 8, 2).mean(dim=(3, 5))
    x4 = real.reshape(2, 3, 4, 4, 4, 4).mean(dim=(3, 5))
    y8 = x4.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    got = m.real_images_at(real, 3, 0.3)
    assert torch.allclose(got, 0.3 * x8 + 0.7 * y8, atol=1e-6)
    assert torch.allclose(m.real_images_at(real, 3, 1.0), x8, atol=1e-6)
    assert torch.equal(m.real_images_at(real, 4, 1.0), real)
    x8_up = x8.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    assert torch.allclose(m.real_images_at(real, 4, 0.75), 0.75 * real + 0.25 * x8_up, atol=1e-6)


def test_fade_in_blends_toRGB_outputs_and_generate_upsamples_before_final():
    m = small(16)
    z = m.sample_latents(3)
    for net in (m.G, m.D):
        net.set_growth(3, 0.4)
    img = m.G(z)
    assert img.shape == (3, 3, 8, 8)
    # by hand: 4x4 features -> old toRGB upsampled, 8x8 block -> new toRGB, lerp with alpha
    G = m.G
    with torch.no_grad():
        x4 = _features_4x4(G, z)
        old = G.to_rgb[0](x4).repeat_interleave(2, 2).repeat_interleave(2, 3)
        new = G.to_rgb[1](G.blocks[0](x4))
        assert torch.allclose(img, 0.6 * old + 0.4 * new, atol=1e-5)
        full = m.generate(G, z)
        assert full.shape == (3, 3, 16, 16)
        assert torch.equal(full, F.interpolate(img, scale_factor=2, mode="nearest").clamp(-1, 1))
    # D during the fade: fromRGB of the pooled image blended with the new block's output
    x = torch.randn(3, 3, 8, 8)
    D = m.D
    with torch.no_grad():
        h = torch.lerp(F.leaky_relu(D.from_rgb[0](F.avg_pool2d(x, 2)), 0.2),
                       D.blocks[0](F.leaky_relu(D.from_rgb[1](x), 0.2)), 0.4)
        h = F.leaky_relu(D.conv4(D.mbstd(h)), 0.2)
        want = D.dense1(F.leaky_relu(D.dense0(h.flatten(1)), 0.2))
        assert torch.allclose(D(x), want, atol=1e-5)


def _features_4x4(G, z):
    from fewgan.models.progan.nets import pixel_norm

    x = pixel_norm(z, G.eps)
    x = G.dense(x).view(-1, G.c4, 4, 4) + G.dense_bias.view(1, -1, 1, 1)
    x = pixel_norm(F.leaky_relu(x, 0.2), G.eps)
    return pixel_norm(F.leaky_relu(G.conv4(x), 0.2), G.eps)


def test_minibatch_stddev_layer():
    from fewgan.models.progan.nets import MinibatchStddev

    layer = MinibatchStddev(4)
    x = torch.randn(8, 5, 4, 4)
    y = layer(x)
    assert y.shape == (8, 6, 4, 4)
    # group k = samples {k, k+2, k+4, k+6} (reference reshape [G, M, ...]); population std over the group
    grp = x[torch.tensor([1, 3, 5, 7])]
    want = (grp.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
    assert torch.allclose(y[3, 5], want.expand(4, 4), atol=1e-6)
    with pytest.raises(ValueError, match="divisible by mbstd_group_size"):
        layer(torch.randn(6, 5, 4, 4))


def test_d_block_matches_the_fused_conv_downscale_of_the_reference():
    """D_paper's default fused_scale=True: Conv1_down = one stride-2 conv with the 3x3 kernel zero-padded to 4x4 and
    averaged over its four shifts, then bias, then leaky ReLU (the activation after the downscale)."""
    from fewgan.models.progan.nets import DBlock

    torch.manual_seed(0)
    blk = DBlock(3, 5)
    with torch.no_grad():
        blk.conv1.bias.normal_()
    x = torch.randn(2, 3, 8, 8)
    h = F.leaky_relu(blk.conv0(x), 0.2)
    w = blk.conv1.weight * blk.conv1.scale
    w4 = F.pad(w, (1, 1, 1, 1))
    w4 = (w4[..., 1:, 1:] + w4[..., :-1, 1:] + w4[..., 1:, :-1] + w4[..., :-1, :-1]) * 0.25
    want = F.leaky_relu(F.conv2d(h, w4, blk.conv1.bias, stride=2, padding=1), 0.2)
    got = blk(x)
    assert got.shape == (2, 5, 4, 4)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    # the unfused order (activation before the pool) is another function: this test can tell them apart
    unfused = F.avg_pool2d(F.leaky_relu(blk.conv1(h), 0.2), 2)
    assert (unfused - want).abs().max() > 1e-2


# ---- losses ---------------------------------------------------------------------------------------
class _LinearD(nn.Module):
    """D(x) = <w, x>: gradient norm |w| everywhere; has the growth interface."""

    def __init__(self, res: int):
        super().__init__()
        self.w = nn.Parameter(torch.full((3, res, res), 0.01))
        self.level, self.alpha = int(math.log2(res)), 1.0

    def set_growth(self, level, alpha):
        self.level, self.alpha = level, alpha

    def forward(self, x):
        return (x * self.w).sum(dim=[1, 2, 3])[:, None]


def test_wgan_gp_and_lsgan_formulas():
    m = configured(8, start_resolution=8)
    D = _LinearD(8)
    real = torch.rand(4, 3, 8, 8) * 2 - 1
    z = m.sample_latents(4)
    loss, logs = m.discriminator_loss(m.G, D, real, z, 0, IDENT)
    with torch.no_grad():
        fake = m.G(z)
        rs, fs = D(real).flatten(), D(fake).flatten()
        norm = float(D.w.norm())
        want = (fs - rs).mean() + 10.0 * (norm - 1.0) ** 2 + 0.001 * rs.square().mean()
    assert float(loss.detach()) == pytest.approx(float(want), rel=1e-5)
    assert logs["grad_norm"] == pytest.approx(norm, rel=1e-5)
    lg, _ = m.generator_loss(m.G, D, z, 0, IDENT)
    assert float(lg.detach()) == pytest.approx(-float(fs.mean()), rel=1e-5)
    m.cfg["loss"] = "lsgan"
    loss, _ = m.discriminator_loss(m.G, D, real, z, 0, IDENT)
    want = 0.5 * (rs - 1).square().mean() + 0.5 * fs.square().mean()
    assert float(loss.detach()) == pytest.approx(float(want), rel=1e-5)
    lg, _ = m.generator_loss(m.G, D, z, 0, IDENT)
    assert float(lg.detach()) == pytest.approx(float(0.5 * (fs - 1).square().mean()), rel=1e-5)


@pytest.mark.parametrize("loss", ["wgangp", "lsgan"])
def test_losses_decrease_on_fixed_batch(loss):
    m = configured(16, stabilize_images=10**6, start_resolution=16, loss=loss)
    opt = m.make_optimizers()
    real = torch.rand(4, 3, 16, 16) * 2 - 1
    z = m.sample_latents(4)
    values = []
    for step in range(10):
        loss, _ = m.discriminator_loss(m.G, m.D, real, z, step, IDENT)
        opt["D"].zero_grad()
        loss.backward()
        opt["D"].step()
        values.append(float(loss.detach()))
    assert values[-1] < values[0] - 0.1, values
    g0, _ = m.generator_loss(m.G, m.D, z, 10, IDENT)
    for _ in range(3):
        opt["G"].zero_grad()
        g, _ = m.generator_loss(m.G, m.D, z, 10, IDENT)
        g.backward()
        opt["G"].step()
    g1, _ = m.generator_loss(m.G, m.D, z, 10, IDENT)
    assert float(g1.detach()) < float(g0.detach())


def test_augment_is_applied_to_reals_and_fakes():
    m = configured(8)
    seen = []
    aug = lambda x: seen.append(tuple(x.shape)) or x  # noqa: E731
    m.discriminator_loss(m.G, m.D, torch.zeros(4, 3, 8, 8), m.sample_latents(4), 0, aug)
    m.generator_loss(m.G, m.D, m.sample_latents(4), 0, aug)
    assert seen == [(4, 3, 4, 4)] * 3  # step 0: 4x4 reals (downsampled) and fakes


# ---- optimiser reset, resume ---------------------------------------------------------------------
def _train(m: ProGAN, opt: dict, ema: EMA, steps: range, batch: int = 4) -> None:
    gen = torch.Generator().manual_seed(1234)
    real_all = torch.rand(8, 3, m.resolution, m.resolution, generator=gen) * 2 - 1
    for step in steps:
        real = real_all[(step % 2) * 4:(step % 2) * 4 + 4]
        z = m.sample_latents(batch)  # global RNG, saved with the state
        loss, _ = m.discriminator_loss(m.G, m.D, real, z, step, IDENT)
        opt["D"].zero_grad(set_to_none=True)
        loss.backward()
        opt["D"].step()
        loss, _ = m.generator_loss(m.G, m.D, z, step, IDENT)
        opt["G"].zero_grad(set_to_none=True)
        loss.backward()
        opt["G"].step()
        ema.update(m.G, m.ema_beta(step, batch))


def test_adam_state_reset_when_a_fade_starts_and_ends():
    m = configured(8, stabilize_images=8, fade_images=8)
    opt = m.make_optimizers()
    assert isinstance(opt["G"], GrowthResetAdam) and isinstance(opt["D"], GrowthResetAdam)
    ema = EMA(m.G)
    adam_steps = []
    for step in range(7):
        _train(m, opt, ema, range(step, step + 1))
        for name in ("D", "G"):
            counts = {int(s["step"]) for s in opt[name].state.values()}
            assert len(counts) == 1  # every parameter's state was (re)started at the same step
        adam_steps.append(counts.pop())
    # 4 px at steps 0-2 (step 2: fade progress 0), fade at step 3 (reset), 8 px from step 4 (reset)
    assert adam_steps == [1, 2, 3, 1, 1, 2, 3], adam_steps
    assert opt["G"].state_dict()["param_groups"][0]["growth_key"] == growth_key(3, 1.0)
    # without the reset, moments accumulate
    m2 = configured(8, stabilize_images=8, fade_images=8, reset_optimizer=False)
    opt2 = m2.make_optimizers()
    assert type(opt2["D"]) is torch.optim.Adam
    _train(m2, opt2, EMA(m2.G), range(6))
    assert max(int(s["step"]) for s in opt2["D"].state.values()) == 6


def _state(m, opt, ema):
    return copy.deepcopy({"model": m.state_dict(), "G_ema": ema.state_dict(), "G": opt["G"].state_dict(),
                          "D": opt["D"].state_dict(), "rng": torch.get_rng_state()})


def test_bit_exact_continuation_across_phase_changes():
    steps, cut = 9, 4  # 16 px, fades at steps 2-3 and 6-7: the cut is at a fade boundary
    kw = {"stabilize_images": 8, "fade_images": 8, "ema_decay": 0.9}
    torch.manual_seed(0)
    a = configured(16, **kw)
    opt_a, ema_a = a.make_optimizers(), EMA(a.G)
    _train(a, opt_a, ema_a, range(steps))

    torch.manual_seed(0)
    b = configured(16, **kw)
    opt_b, ema_b = b.make_optimizers(), EMA(b.G)
    _train(b, opt_b, ema_b, range(cut))
    saved = _state(b, opt_b, ema_b)
    del b, opt_b, ema_b

    torch.manual_seed(99)  # fresh objects, different initial weights: everything must come from the state
    c = configured(16, **kw)
    opt_c, ema_c = c.make_optimizers(), EMA(c.G)
    c.load_state_dict(saved["model"])
    ema_c.load_state_dict(saved["G_ema"])
    opt_c["G"].load_state_dict(saved["G"])
    opt_c["D"].load_state_dict(saved["D"])
    torch.set_rng_state(saved["rng"])
    _train(c, opt_c, ema_c, range(cut, steps))

    for x, y in ((a.state_dict(), c.state_dict()), (ema_a.state_dict(), ema_c.state_dict())):
        assert x.keys() == y.keys()
        for k in x:
            assert torch.equal(x[k], y[k]), k
    sa, sc = opt_a["G"].state_dict(), opt_c["G"].state_dict()
    assert sa["param_groups"] == sc["param_groups"]
    for k in sa["state"]:
        for name in sa["state"][k]:
            assert torch.equal(sa["state"][k][name], sc["state"][k][name])
    assert a.G.growth() == (4, 1.0)


def test_snapshot_reload_keeps_growth_and_scoring_rule():
    m = configured(16, stabilize_images=8, fade_images=8)
    opt, ema = m.make_optimizers(), EMA(m.G)
    _train(m, opt, ema, range(4))  # ends in the 8-px fade
    assert ema.module.growth() == (3, 0.5)  # the EMA copies the growth buffers
    fresh = ProGAN(m.cfg, 16)  # what load_snapshot builds
    fresh.G.load_state_dict(ema.state_dict())
    fresh.eval()
    assert fresh.describe()["growth"] == {"resolution": 8, "alpha": 0.5, "final": False, "scoring_rule": SCORING_RULE}
    z = fresh.sample_latents(2)
    with torch.no_grad():
        assert torch.equal(fresh.generate(fresh.G, z), m.generate(ema.module, z))
        assert fresh.generate(fresh.G, z).shape == (2, 3, 16, 16)


def test_fallbacks_and_unconditional():
    m = ProGAN(SMALL, 64, num_classes=3)
    assert m.num_classes == 3 and m.sample_latents(2, labels=torch.tensor([0, 2])).shape == (2, 16)
    m.setup(TrainContext(batch_size=8, iterations=400))  # 3,200 images: far from 64 px at 800k
    fb = m.fallbacks()
    assert any("3 class labels are ignored" in f for f in fb)
    assert any("reaches only 4 px" in f and SCORING_RULE in f for f in fb)
    m = configured(16, batch=4, iterations=100, stabilize_images=8, fade_images=8)
    assert m.fallbacks() == []
    assert m.d_steps == 1 and m.ddp_find_unused_parameters is True
