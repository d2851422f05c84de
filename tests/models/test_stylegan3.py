"""StyleGAN3-T / -R: official parameter counts and layer plan, the pure-PyTorch filtered leaky ReLU against a
straightforward reference, filter design, Fourier input at init, translation equivariance vs StyleGAN2 at init,
R's blur schedule, magnitude EMA, optimisers, the loss on a fixed batch and bit-exact resume through the trainer."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from fewgan.models.base import TrainContext, registered_models
from fewgan.models.stylegan2.model import StyleGAN2
from fewgan.models.stylegan3.model import StyleGAN3 as _StyleGAN3
from fewgan.models.stylegan3.nets import design_lowpass_filter, filtered_lrelu, gaussian_blur, upfirdn2d
from fewgan.models.stylegan3.spec import SCHEMA
from fewgan.train.diffaugment import augment
from fewgan.train.state import capture_rng, restore_rng
from fewgan.train.trainer import build_trainer

REPO = Path(__file__).resolve().parents[2]
YAML_PATH = REPO / "params/models/stylegan3.yaml"
YAML = yaml.safe_load(YAML_PATH.read_text())
IDENT = lambda x: x  # noqa: E731
#: tiny widths (the layer plan is the paper's: 14 layers, 2 critical, 10 px margin)
TINY = {"z_dim": 16, "w_dim": 16, "channel_base": 256, "channel_max": 16}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def StyleGAN3(cfg: dict, res: int) -> _StyleGAN3:  # noqa: N802 - the model with params/models/stylegan3.yaml under cfg
    return _StyleGAN3({**YAML, **cfg}, res)


def tiny(res: int = 32, batch: int = 4, **over) -> _StyleGAN3:
    m = StyleGAN3({**TINY, **over}, res)
    m.setup(TrainContext(batch_size=batch, iterations=10))
    return m


def test_registered_and_yaml_is_complete():
    assert registered_models()["stylegan3"] is _StyleGAN3
    assert sorted(YAML) == sorted(SCHEMA["properties"]) == sorted(SCHEMA["required"])
    for line in YAML_PATH.read_text().splitlines():  # every key carries a comment citing its source
        if line and not line.startswith("#"):
            assert "#" in line, f"uncommented key in {YAML_PATH.name}: {line!r}"
    assert YAML["first_stopband"] == 2 ** 2.1 and YAML["last_stopband_rel"] == 2 ** 0.3
    assert (YAML["mapping_layers"], YAML["g_lr"], YAML["d_lr"], YAML["r1_gamma"]) == (2, 0.0025, 0.002, 2.0)
    assert YAML["style_mixing_prob"] == 0.0 and "pl_weight" not in YAML  # no mixing, no path length (train.py)
    with pytest.raises(ValueError, match="unknown key.*chanel_base"):
        StyleGAN3({"chanel_base": 1}, 32)
    with pytest.raises(ValueError, match="config"):
        StyleGAN3({"config": "x"}, 32)


# ---- parameter counts and the layer plan (full-size modules, no forward) ------------------------------
# NVlabs/stylegan3 training/networks_stylegan3.Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=256,
# img_channels=3, mapping_kwargs={num_layers: 2}, channel_base=32768, channel_max=512) counted with
# sum(p.numel() for p in G.parameters()): 28,472,133 (T); with conv_kernel=1, channel_base=65536,
# channel_max=1024, use_radial_filters=True (train.py --cfg=stylegan3-r): 18,816,387 (R). The 28.47 M /
# 18.82 M. Mapping 525,312; T layers L0-L8 2,622,464 each, L14 (ToRGB) 66,051; R layers L0-L8 1,574,912 each.
# D: training/networks_stylegan2.Discriminator at 256 px: 28,864,129.
OFFICIAL = {"t": {"G": 28_472_133, "layer0": 2_622_464, "torgb": 66_051,
                  "out": [(36, 512)] * 3 + [(52, 512)] * 2 + [(84, 512)] * 2 + [(148, 512)] * 2 + [(148, 362), (276, 256),
                          (276, 181), (276, 128), (256, 128), (256, 3)],
                  "pad": {0: (9, 8, 9, 8), 3: (-6, -9, -6, -9), 13: (-11, -12, -11, -12), 14: (0, 0, 0, 0)}},
            "r": {"G": 18_816_387, "layer0": 1_574_912, "torgb": 132_099,
                  "out": [(36, 1024)] * 3 + [(52, 1024)] * 2 + [(84, 1024)] * 2 + [(148, 1024)] * 2 + [(148, 724),
                          (276, 512), (276, 362), (276, 256), (256, 256), (256, 3)],
                  "pad": {0: (11, 10, 11, 10), 3: (-2, -5, -2, -5), 13: (-9, -10, -9, -10), 14: (0, 0, 0, 0)}}}


@pytest.mark.parametrize("config", ["t", "r"])
def test_parameter_counts_and_layer_plan_equal_the_official_code(config):
    m = StyleGAN3({"config": config}, 256)
    n = lambda mod: sum(p.numel() for p in mod.parameters())  # noqa: E731
    want = OFFICIAL[config]
    d = m.describe()
    assert d["params_G"] == want["G"]
    assert d["params_D"] == 28_864_129
    assert n(m.G.mapping) == 525_312
    layers = m.G.synthesis.layers
    assert m.num_ws == 16 and len(layers) == 15  # 14 layers + ToRGB; ws: input + 15
    assert n(layers[0]) == want["layer0"] and n(layers[-1]) == want["torgb"]
    assert [(L.out_size, L.out_channels) for L in layers] == want["out"]
    for i, pad in want["pad"].items():
        assert layers[i].padding == pad
    # the last two layers (and ToRGB) are critically sampled; R's down filters are radial elsewhere
    assert [L.is_critically_sampled for L in layers] == [False] * 12 + [True] * 3
    assert [L.up_factor for L in layers[:14]] == [2, 2, 2, 4, 2, 4, 2, 4, 2, 2, 4, 2, 2, 2]
    radial = [L.down_filter is not None and L.down_filter.ndim == 2 for L in layers]
    assert radial == ([True] * 12 + [False] * 3 if config == "r" else [False] * 15)
    assert all(L.conv_kernel == (1 if (config == "r" or L.is_torgb) else 3) for L in layers)
    assert m.G.synthesis.input.size == 36 and m.G.synthesis.input.channels == (1024 if config == "r" else 512)
    assert not any("noise" in k for k in m.G.state_dict())  # no noise inputs


# ---- filters and the filtered leaky ReLU --------------------------------------------------------------
def test_filter_design():
    f = design_lowpass_filter(12, cutoff=2.0, width=2 * 2.2870938501451725, fs=32)
    assert f.shape == (12,) and float(f.sum()) == pytest.approx(1.0, abs=1e-6)
    assert torch.allclose(f, f.flip(0))  # linear phase: symmetric
    # Kaiser low-pass: passes DC, stops above cutoff + half width
    H = np.abs(np.fft.rfft(f.double().numpy(), 4096))
    freqs = np.fft.rfftfreq(4096, d=1 / 32)
    assert H[0] == pytest.approx(1.0, abs=1e-6) and H[freqs > 2.0 + 2.287 + 0.5].max() < 0.05
    r = design_lowpass_filter(12, cutoff=2.0, width=4.57, fs=32, radial=True)
    assert r.shape == (12, 12) and float(r.sum()) == pytest.approx(1.0, abs=1e-6)
    assert torch.allclose(r, r.t()) and torch.allclose(r, r.flip(0))
    assert design_lowpass_filter(1, 2.0, 1.0, 16) is None


def _reference_filtered_lrelu(x, fu, fd, b, up, down, padding, gain, slope, clamp):
    """Straightforward: bias; upsample by a stride-`up` transposed conv of the dense 2-D filter (zero insertion +
    full convolution); crop/pad to the padding; leaky ReLU; dense 2-D filter; keep every `down`-th sample."""
    c = x.shape[1]
    dense = lambda f: torch.outer(f, f) if f.ndim == 1 else f  # noqa: E731
    x = x + b[None, :, None, None]
    ku = dense(fu) * up * up
    k = ku.shape[-1]
    y = F.conv_transpose2d(x, ku[None, None].repeat(c, 1, 1, 1), stride=up, groups=c)
    # y[n] = sum_j x[j] ku[n - up*j]; the zero-inserted signal padded by pad0 and convolved ("valid") with ku is
    # out[i] = sum_j x[j] ku[k - 1 + i - pad0 - up*j] = y[k - 1 + i - pad0], i < in*up + pad0 + pad1 - k + 1
    px0, px1, py0, py1 = padding
    n_out_x = x.shape[3] * up + px0 + px1 - k + 1
    n_out_y = x.shape[2] * up + py0 + py1 - k + 1
    big = F.pad(y, [k, k + 64, k, k + 64])  # room on both sides
    y = big[:, :, k + (k - 1) - py0: k + (k - 1) - py0 + n_out_y, k + (k - 1) - px0: k + (k - 1) - px0 + n_out_x]
    y = F.leaky_relu(y, slope) * gain
    if clamp is not None:
        y = y.clamp(-clamp, clamp)
    kd = dense(fd)
    y = F.conv2d(y, kd.flip([0, 1])[None, None].repeat(c, 1, 1, 1), groups=c)
    return y[:, :, ::down, ::down]


@pytest.mark.parametrize("impl", ["auto", "conv", "matmul"])
@pytest.mark.parametrize("case", ["up2", "up4", "radial", "clamp"])
def test_filtered_lrelu_equals_a_straightforward_reference(case, impl):
    g = torch.Generator().manual_seed({"up2": 0, "up4": 1, "radial": 2, "clamp": 3}[case])
    up = 4 if case == "up4" else 2
    fu = design_lowpass_filter(6 * up, cutoff=4.0, width=2 * 3.0, fs=16 * up)
    fd = design_lowpass_filter(12, cutoff=5.6, width=2 * 2.5, fs=32, radial=case == "radial")
    # paddings of StyleGAN3 layers: positive (grows the margin) and negative (crops)
    padding = {"up2": (9, 8, 9, 8), "up4": (-6, -9, -6, -9), "radial": (11, 10, 11, 10), "clamp": (9, 8, 9, 8)}[case]
    x = torch.randn(2, 3, 20, 20, generator=g, dtype=torch.float64) * (40.0 if case == "clamp" else 1.0)
    b = torch.randn(3, generator=g, dtype=torch.float64)
    clamp = 5.0 if case == "clamp" else None
    if impl == "matmul" and case == "radial":  # 1-D filters only: the radial down filter is refused
        with pytest.raises(ValueError, match="1-D"):
            filtered_lrelu(x, fu.double(), fd.double(), b, up=up, down=2, padding=padding, impl=impl)
        return
    got = filtered_lrelu(x, fu.double(), fd.double(), b, up=up, down=2, padding=padding, gain=math.sqrt(2), slope=0.2,
                         clamp=clamp, impl=impl)
    ref = _reference_filtered_lrelu(x, fu.double(), fd.double(), b, up, 2, padding, math.sqrt(2), 0.2, clamp)
    assert got.shape == ref.shape
    assert torch.allclose(got, ref, atol=1e-10, rtol=0), float((got - ref).abs().max())
    if case == "clamp":
        assert float(got.abs().max()) > 1.0 and float((got - ref).abs().max()) < 1e-10
    # ToRGB: no filters, up = down = 1, slope 1, gain 1 -> bias (+ clamp) only
    assert torch.equal(filtered_lrelu(x, None, None, b, gain=1.0, slope=1.0), x + b[None, :, None, None])


def test_upfirdn2d_separable_equals_dense_and_crops():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(1, 2, 9, 9, generator=g, dtype=torch.float64)
    f = torch.rand(5, generator=g, dtype=torch.float64)
    a = upfirdn2d(x, f, up=2, down=2, padding=(3, 1, 3, 1), gain=4.0, impl="matmul")
    b = upfirdn2d(x, torch.outer(f, f), up=2, down=2, padding=(3, 1, 3, 1), gain=4.0)
    c = upfirdn2d(x, f, up=2, down=2, padding=(3, 1, 3, 1), gain=4.0, impl="conv")
    assert torch.allclose(a, b, atol=1e-12) and torch.allclose(a, c, atol=1e-12)
    crop = upfirdn2d(x, None, padding=(-1, -2, -3, 0))
    assert torch.equal(crop, x[:, :, 3:, 1:-2])


def test_gaussian_blur_of_the_discriminator_input():
    img = torch.full((1, 3, 64, 64), 0.5)
    out = gaussian_blur(img, 2.0)  # 13 taps, exp2(-(k/2)^2)
    assert out.shape == img.shape and torch.allclose(out[:, :, 6:-6, 6:-6], img[:, :, 6:-6, 6:-6], atol=1e-6)
    assert float(out[0, 0, 0, 0]) < 0.5  # zero padding at the border
    assert torch.equal(gaussian_blur(img, 0.3), img)  # floor(3 sigma) = 0: no blur
    delta = torch.zeros(1, 1, 31, 31)
    delta[..., 15, 15] = 1.0
    k = gaussian_blur(delta, 3.0)[0, 0, 15]
    taps = torch.arange(-9.0, 10.0).div(3.0).square().neg().exp2()
    assert torch.allclose(k[6:25], (taps / taps.sum()) * (taps / taps.sum())[9], atol=1e-7)


# ---- init facts, shapes ------------------------------------------------------------------------------
def test_fourier_input_at_init_and_shapes():
    m = tiny(32)
    inp = m.G.synthesis.input
    assert torch.equal(inp.affine.weight, torch.zeros_like(inp.affine.weight))
    assert inp.affine.bias.tolist() == [1.0, 0.0, 0.0, 0.0]  # identity transform at init
    assert torch.equal(inp.transform, torch.eye(3))
    assert float(inp.freqs.norm(dim=1).max()) <= inp.bandwidth == pytest.approx(2.0)
    assert float(inp.phases.abs().max()) <= 0.5
    assert all(float(L.magnitude_ema) == 1.0 for L in m.G.synthesis.layers)
    for config, res in (("t", 32), ("r", 16)):
        mm = tiny(res, config=config)
        z = torch.randn(4, 16)
        img = mm.generate(mm.G, z)
        assert img.shape == (4, 3, res, res) and torch.isfinite(img).all()
        assert torch.equal(img, mm.generate(mm.G, z))  # no noise inputs: deterministic
        assert mm.D(img).shape == (4, 1)
        lat = mm.inversion_start(mm.G.eval(), 2)
        assert mm.synthesize(mm.G, lat).shape == (2, 3, res, res)
    mm.cfg["inversion_w_avg_samples"] = 300
    gen = torch.Generator().manual_seed(int(mm.cfg["inversion_seed"]))
    with torch.no_grad():
        w = mm.G.mapping(torch.randn(300, 16, generator=gen), update_w_avg=False)[:, 0].double()
    assert mm.inversion_latent_std(mm.G) == pytest.approx(float((w - w.mean(0)).square().sum(1).mean().sqrt()), rel=1e-6)


# ---- translation equivariance at initialisation (paper Sec. 4, metrics/equivariance.py EQ-T) -------------
def _shift(x: torch.Tensor, dx: int, dy: int):
    """metrics/equivariance.py apply_integer_translation: shifted image and its valid-pixel mask."""
    H, W = x.shape[-2:]
    z, m = torch.zeros_like(x), torch.zeros_like(x)
    z[:, :, max(dy, 0):H + min(dy, 0), max(dx, 0):W + min(dx, 0)] = x[:, :, max(-dy, 0):H + min(-dy, 0),
                                                                      max(-dx, 0):W + min(-dx, 0)]
    m[:, :, max(dy, 0):H + min(dy, 0), max(dx, 0):W + min(dx, 0)] = 1
    return z, m


def _eqt_db(pairs) -> float:
    """PSNR of the translated output against the translated image, relative to the image's own power (the two
    generators have different output scales at init): 10 log10(E[ref^2] / E[(ref - out)^2]) over the masks."""
    se = sum(((r - o).square() * m).sum() for r, o, m in pairs)
    power = sum((r.square() * m).sum() for r, _, m in pairs)
    return float(10 * torch.log10(power / se))


SHIFTS = [(8, 0), (0, 8), (-8, 0), (0, -8)]  # a quarter of a 32-px image: one cell of StyleGAN2's 4x4 constant


def test_stylegan3_t_is_more_translation_equivariant_than_stylegan2_at_init():
    res, z = 32, torch.randn(4, 16, generator=torch.Generator().manual_seed(0))
    m3 = StyleGAN3({**TINY, "channel_base": 1024, "channel_max": 32}, res).eval()
    G, M = m3.G, m3.G.synthesis.input.transform
    pairs = []
    with torch.no_grad():
        ws = G.mapping(z)
        orig = G.synthesis(ws)
        for dx, dy in SHIFTS:  # translate the input by the user transform (equivariance.py: M[:2, 2] = -t)
            M.copy_(torch.eye(3))
            M[0, 2], M[1, 2] = -dx / res, -dy / res
            ref, mask = _shift(orig, dx, dy)
            pairs.append((ref, G.synthesis(ws), mask))
        M.copy_(torch.eye(3))
    eq3 = _eqt_db(pairs)

    m2 = StyleGAN2({**yaml.safe_load((REPO / "params/models/stylegan2.yaml").read_text()), **TINY,
                    "mapping_layers": 2, "channel_base": 1024, "channel_max": 32}, res).eval()
    G2, const = m2.G, m2.G.synthesis.blocks[0].const
    c0 = const.detach().clone()
    pairs = []
    with torch.no_grad():
        ws = G2.mapping(z)
        orig = G2.synthesis(ws, noise_mode="none")  # no noise: StyleGAN2's most favourable case
        for dx, dy in SHIFTS:  # its input can only move by whole cells; rolled, so no content is lost
            const.copy_(torch.roll(c0, shifts=(dy // (res // 4), dx // (res // 4)), dims=(1, 2)))
            ref, mask = _shift(orig, dx, dy)
            pairs.append((ref, G2.synthesis(ws, noise_mode="none"), mask))
        const.copy_(c0)
    eq2 = _eqt_db(pairs)
    # measured: StyleGAN3-T 43.8 dB, StyleGAN2 6.0 dB
    assert eq3 > 30.0, eq3
    assert eq2 < 15.0, eq2
    assert eq3 - eq2 > 20.0


# ---- training facts ----------------------------------------------------------------------------------
def test_blur_schedule_magnitude_ema_and_setup():
    m = StyleGAN3({**TINY, "config": "r"}, 16)
    with pytest.raises(RuntimeError, match="setup"):
        m.blur_sigma(0)
    with pytest.raises(RuntimeError, match="setup"):
        m.G(torch.randn(4, 16), update_emas=True)
    m.setup(TrainContext(batch_size=8, iterations=10))
    # loss.py: sigma = max(1 - nimg / (batch * 200 / 32 * 1e3), 0) * 10; with batch 8 the fade is 50,000 images
    assert m.blur_sigma(0) == 10.0
    assert m.blur_sigma(3125) == pytest.approx(5.0)  # 25,000 images
    assert m.blur_sigma(6250) == 0.0 and m.blur_sigma(10 ** 6) == 0.0
    assert tiny(16, config="t").blur_sigma(0) == 0.0
    beta = m.G.synthesis.layers[0].magnitude_ema_beta
    assert beta == pytest.approx(0.5 ** (8 / 20_000))  # train.py magnitude_ema_beta
    # the D step's G forward updates the input magnitudes and w_avg; the G step's does not
    z, real = torch.randn(4, 16), torch.rand(4, 3, 16, 16) * 2 - 1
    m.generator_loss(m.G, m.D, z, 0, IDENT)
    assert all(float(L.magnitude_ema) == 1.0 for L in m.G.synthesis.layers)
    assert float(m.G.mapping.w_avg.abs().sum()) == 0.0
    _, logs = m.discriminator_loss(m.G, m.D, real, z, 0, IDENT)
    assert logs["blur_sigma"] == 10.0
    assert all(float(L.magnitude_ema) != 1.0 for L in m.G.synthesis.layers)
    assert float(m.G.mapping.w_avg.abs().sum()) > 0.0


def test_blur_reaches_the_discriminator_for_r_only():
    seen = []

    class Spy(torch.nn.Module):
        def forward(self, x):
            seen.append(x.detach().clone())
            return x.mean(dim=[1, 2, 3])[:, None]

    real = torch.rand(4, 3, 16, 16) * 2 - 1
    for config in ("t", "r"):
        m = tiny(16, config=config, r1_gamma=0.0)
        seen.clear()
        m.discriminator_loss(m.G, Spy(), real, torch.randn(4, 16), 0, IDENT)
        assert torch.equal(seen[1], real) == (config == "t")
        if config == "r":
            assert torch.allclose(seen[1], gaussian_blur(real, 10.0))


def test_optimizers_and_ema():
    m = tiny(32)
    s = m.optimizer_settings()
    assert s["G"]["lr"] == pytest.approx(0.0025) and s["G"]["betas"] == pytest.approx([0.0, 0.99])  # no lazy G reg
    assert s["D"]["lr"] == pytest.approx(0.002 * 16 / 17) and s["D"]["betas"] == pytest.approx([0.0, 0.99 ** (16 / 17)])
    # ema_kimg = batch * 10 / 32, ramp-up 0.05: beta = 0.5 ** (32 / 10,000) once cur_nimg * 0.05 > ema_nimg
    assert m.ema_beta(0, 8) == 0.0
    assert m.ema_beta(100, 8) == pytest.approx(0.5 ** (8 / (100 * 8 * 0.05)))
    assert m.ema_beta(10 ** 5, 8) == pytest.approx(0.5 ** (32 / 10_000))
    assert m.ema_beta(10 ** 5, 64) == pytest.approx(0.5 ** (32 / 10_000))


def test_discriminator_loss_falls_on_a_fixed_batch():
    m = tiny(16, d_lr=0.002, r1_interval=1)
    opt = m.make_optimizers()
    real = torch.rand(4, 3, 16, 16) * 2 - 1
    z = torch.randn(4, 16)
    losses = []
    for step in range(8):
        loss, logs = m.discriminator_loss(m.G, m.D, real, z, step, IDENT)
        opt["D"].zero_grad()
        loss.backward()
        opt["D"].step()
        losses.append(logs["loss_D_real"] + logs["loss_D_fake"])
    assert losses[-1] < losses[0] - 0.1, losses


# ---- bit-exact resume through the shared trainer -----------------------------------------------------------
FAST = {**YAML, **TINY, "config": "r", "num_layers": 6, "r1_interval": 2, "r_blur_sigma": 1.0,
        "r_blur_fade_kimg_at_batch32": 0.128}  # blur fades over 4 steps (16 images) at batch 4: it changes across the cut


def test_bit_exact_resume_through_the_trainer():
    images = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(5)) * 2 - 1
    ctx = TrainContext(batch_size=4, iterations=4)

    def fresh(seed=0):
        torch.manual_seed(seed)
        return build_trainer("stylegan3", dict(FAST), 16, ctx), {"augment": torch.Generator().manual_seed(1),
                                                                  "latent": torch.Generator().manual_seed(2)}

    def run(tr, steps, gens):
        for s in steps:
            tr.step(s, reals=lambda i: (images[(s % 2) * 4:(s % 2) * 4 + 4], None),
                    latents=lambda: torch.randn(4, 16, generator=gens["latent"]),
                    augment=lambda x: augment(x, "color,translation", gens["augment"]))

    a, ga = fresh()
    run(a, range(4), ga)
    b, gb = fresh()
    run(b, range(2), gb)
    buf = io.BytesIO()
    torch.save({"trainer": b.state(), "rng": capture_rng(gb)}, buf)
    c, gc = fresh(seed=123)
    saved = torch.load(io.BytesIO(buf.getvalue()), weights_only=True)
    c.load_state(saved["trainer"])
    restore_rng(saved["rng"], gc)
    run(c, range(2, 4), gc)
    for x, y in ((a.state()["model"], c.state()["model"]), (a.state()["G_ema"], c.state()["G_ema"])):
        assert x.keys() == y.keys()
        for k in x:
            assert torch.equal(x[k], y[k]), k
    assert any(k.endswith("magnitude_ema") for k in a.state()["G_ema"])
    assert float(a.gan.G.synthesis.layers[0].magnitude_ema) != 1.0
    # what load_snapshot does: rebuild, load G_ema, sample: the same images
    m = _StyleGAN3(dict(FAST), 16)
    m.G.load_state_dict(a.snapshot_networks()["G_ema"])
    z = torch.randn(2, 16)
    with torch.no_grad():
        assert torch.equal(m.generate(m.G.eval(), z), a.sampling_network()(z))


def test_bf16_autocast_step_keeps_the_fourier_input_and_mapping_in_fp32():
    """train.precision bf16 (opt-in): one trainer step is finite, and the Fourier features and w stay
    float32 under autocast (bf16 phases would cost ~1e-2 cycle of equivariance)."""
    torch.manual_seed(0)
    tr = build_trainer("stylegan3", dict(FAST), 16, TrainContext(batch_size=4, iterations=2, precision="bf16"))
    seen = {}
    tr.gan.G.synthesis.input.register_forward_hook(lambda mod, args, out: seen.update(input=out.dtype))  # returns None
    images = torch.rand(4, 3, 16, 16) * 2 - 1
    r = tr.step(0, reals=lambda i: (images, None), latents=lambda: torch.randn(4, 16), augment=IDENT)
    assert r.finite() and seen["input"] == torch.float32
    assert tr.gan.G.mapping.w_avg.dtype == torch.float32 and float(tr.gan.G.mapping.w_avg.abs().sum()) > 0
    assert all(p.dtype == torch.float32 for p in tr.gan.G.parameters())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ws = tr.gan.G.mapping(torch.randn(2, 16), update_w_avg=False)
    assert ws.dtype == torch.bfloat16  # what the Generator guards against by running its mapping without autocast
