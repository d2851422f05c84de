"""FastGAN model: architecture facts, shapes at 64..1024, losses, parity switch, LPIPS handling."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pytest
import torch

from fewgan.models.base import TrainContext

from fewgan.io import read_yaml
from fewgan.models.fastgan.model import FastGAN as _FastGAN
from fewgan.models.fastgan.model import _quadrant, _resize, _SplitLPIPS
from fewgan.models.fastgan.nets import Discriminator, Generator

SMALL = {"ngf": 8, "ndf": 8, "dec_width": 8, "recon_loss": "l1"}
YAML = read_yaml(Path(__file__).resolve().parents[2] / "params/models/fastgan.yaml")


def FastGAN(cfg: dict, res: int) -> _FastGAN:  # noqa: N802 - the model with params/models/fastgan.yaml under `cfg`
    return _FastGAN({**YAML, **cfg}, res)
IDENT = lambda x: x  # noqa: E731


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def count(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def real_batch(n: int, r: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, r, r, generator=g) * 2 - 1


# ---- architecture facts ---------------------------------------------------------------------------
@pytest.mark.parametrize("res,g_params,d_params", [
    (256, 29_127_846, 11_526_160),  # REFERENCE.md section 1: measured on the official code
    (512, 29_174_392, 11_526_496),  # fewgan's counts with the official layer plan (reported)
    (1024, 29_176_512, 11_528_192),
])
def test_parameter_counts_paper_widths(res, g_params, d_params):
    G, D = Generator(res, ngf=64, nz=256), Discriminator(res, ndf=64)
    print(f"FastGAN {res}px ngf=ndf=64 nz=256: G {count(G):,} D {count(D):,}")
    assert count(G) == g_params
    assert count(D) == d_params


@pytest.mark.parametrize("res", [64, 128, 256])
def test_forward_backward_shapes(res):
    torch.manual_seed(0)
    m = FastGAN(SMALL, res)
    n = 2
    z = m.sample_latents(n)
    img, small = m.G(z, with_small=True)
    s = min(128, res)
    assert img.shape == (n, 3, res, res) and small.shape == (n, 3, s, s)
    assert m.generate(m.G, z).shape == (n, 3, res, res)
    x = real_batch(n, res)
    logits, recs = m.D(x, _resize(x, s, False), part=3)
    assert logits.shape == (n, 50)  # two 5x5 logit maps per image
    ps = min(128, res // 2)  # the quadrant is reconstructed at its own size (never upsampled)
    assert [r.shape for r in recs] == [(n, 3, s, s), (n, 3, s, s), (n, 3, ps, ps)]
    assert m.D(img, small).shape == (n, 50)
    # full losses: every D weight (incl. the three decoders) gets a gradient from the D loss
    loss_d, logs = m.discriminator_loss(m.G, m.D, x, z, 0, IDENT)
    loss_d.backward()
    missing = [k for k, p in m.D.named_parameters() if p.grad is None]
    assert not missing, missing
    assert set(logs) >= {"loss_D", "loss_D_real", "loss_D_fake", "loss_D_recon"}
    assert all(isinstance(v, float) for v in logs.values())
    m.D.zero_grad(set_to_none=True)
    loss_g, _ = m.generator_loss(m.G, m.D, z, 0, IDENT)
    loss_g.backward()
    assert all(p.grad is not None for p in m.G.parameters())
    assert all(p.grad is None for p in m.D.parameters())  # the G step builds no D weight gradients
    assert all(p.requires_grad for p in m.D.parameters())  # ... and restores D's flags


def test_build_512_and_1024_small_widths():
    for res in (512, 1024):
        m = FastGAN(SMALL, res)
        with torch.no_grad():
            img, small = m.G(m.sample_latents(2), with_small=True)
        assert img.shape == (2, 3, res, res) and small.shape == (2, 3, 128, 128)
        assert m.D.rec_size == 128 and m.D.small_size == 128
    with torch.no_grad():  # D at 512 once (1024 only differs by one more stem conv)
        D = FastGAN(SMALL, 512).D
        x = real_batch(2, 512)
        logits, recs = D(x, _resize(x, 128, False), part=0)
    assert logits.shape == (2, 50) and recs[2].shape == (2, 3, 128, 128)


def test_random_quadrant_matches_feature_and_image_crops():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    assert _quadrant(x, 0).flatten().tolist() == [0, 1, 4, 5]
    assert _quadrant(x, 1).flatten().tolist() == [2, 3, 6, 7]
    assert _quadrant(x, 2).flatten().tolist() == [8, 9, 12, 13]
    assert _quadrant(x, 3).flatten().tolist() == [10, 11, 14, 15]
    m = FastGAN(SMALL, 128).eval()
    feats = {}
    m.D.sle["16"].register_forward_hook(lambda mod, inp, out: feats.__setitem__("f16", out))
    x = real_batch(2, 128)
    with torch.no_grad():
        for part in range(4):
            _, (_, _, rec_part) = m.D(x, x, part=part)
            f16 = feats["f16"]
            assert f16.shape[-1] == 16
            assert torch.allclose(rec_part, m.D.dec_part(_quadrant(f16, part)), atol=1e-6)


# ---- parity switch --------------------------------------------------------------------------------
def test_parity_vs_default_switches():
    d, p = FastGAN(SMALL, 256), FastGAN(dict(SMALL, parity=True), 256)
    assert d.G.tanh and not p.G.tanh  # official: no tanh at 256
    assert d.ema_buffers is True and p.ema_buffers is False
    assert FastGAN(dict(SMALL, parity=True), 1024).G.tanh  # official applies tanh only at 1024
    with torch.no_grad():
        for layer in (p.G.to_big,):
            layer.parametrizations.weight.original.mul_(50)  # push outputs beyond [-1, 1]
        z = p.sample_latents(2)
        assert p.G(z).abs().max() > 1  # no tanh: unbounded
        d.G.to_big.parametrizations.weight.original.mul_(50)
        assert d.G(z).abs().max() <= 1
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    assert _resize(x, 1, True).item() == 1.0  # nearest: top-left sample (aliasing)
    assert _resize(x, 1, False).item() == 2.5  # area: box average


def test_recon_term_summed_in_parity_and_averaged_by_default():
    n = 4
    d = FastGAN(SMALL, 256)
    p = FastGAN(dict(SMALL, parity=True), 256)
    p.load_state_dict(d.state_dict())
    # reals constant on 2x2 blocks: nearest and area resizing to 128 agree, so only the reduction differs
    x = torch.nn.functional.interpolate(real_batch(n, 128), scale_factor=2, mode="nearest")
    z = d.sample_latents(n)
    torch.manual_seed(5)
    _, logs_d = d.discriminator_loss(d.G, d.D, x, z, 0, IDENT)
    torch.manual_seed(5)
    _, logs_p = p.discriminator_loss(p.G, p.D, x, z, 0, IDENT)
    assert logs_p["loss_D_recon"] == pytest.approx(n * logs_d["loss_D_recon"], rel=1e-5)
    assert logs_p["loss_D_real"] == pytest.approx(logs_d["loss_D_real"], rel=1e-5)


# ---- training behaviour ---------------------------------------------------------------------------
def test_discriminator_steps_lower_d_loss_on_fixed_batch():
    torch.manual_seed(0)
    m = FastGAN(SMALL, 64)
    opt = m.make_optimizers()
    x, z = real_batch(4, 64), m.sample_latents(4)
    losses = []
    for step in range(8):
        opt["D"].zero_grad(set_to_none=True)
        loss, logs = m.discriminator_loss(m.G, m.D, x, z, step, IDENT)
        loss.backward()
        opt["D"].step()
        losses.append(logs["loss_D"])
    assert losses[-1] < losses[0] - 0.2, losses


def test_full_steps_share_fakes_and_update_both_networks():
    torch.manual_seed(0)
    m = FastGAN(SMALL, 64)
    opt = m.make_optimizers()
    g0 = [p.detach().clone() for p in m.G.parameters()]
    x = real_batch(2, 64)
    for step in range(2):
        z = m.sample_latents(2)
        opt["D"].zero_grad(set_to_none=True)
        m.discriminator_loss(m.G, m.D, x, z, step, IDENT)[0].backward()
        opt["D"].step()
        opt["G"].zero_grad(set_to_none=True)
        m.generator_loss(m.G, m.D, z, step, IDENT)[0].backward()
        opt["G"].step()
    assert m.g_forwards == 2  # one G forward per iteration (official train.py)
    assert any(not torch.equal(a, b) for a, b in zip(g0, m.G.parameters()))
    m.generator_loss(m.G, m.D, m.sample_latents(2), 9, IDENT)  # different z: regenerates
    assert m.g_forwards == 3
    q = FastGAN(dict(SMALL, share_fakes=False), 64)
    z = q.sample_latents(2)
    q.discriminator_loss(q.G, q.D, x, z, 0, IDENT)
    q.generator_loss(q.G, q.D, z, 0, IDENT)
    assert q.g_forwards == 2


def test_optimizers_follow_config():
    m = FastGAN(dict(SMALL, lr=1e-3, betas=[0.0, 0.99]), 64)
    opt = m.make_optimizers()
    for key, net in (("G", m.G), ("D", m.D)):
        group = opt[key].param_groups[0]
        assert group["lr"] == 1e-3 and group["betas"] == (0.0, 0.99)
        assert sum(p.numel() for p in group["params"]) == count(net)
    assert YAML["lr"] == 2e-4 and YAML["betas"] == [0.5, 0.999] and YAML["ema_decay"] == 0.999


def test_state_dict_roundtrip_weights_only_and_eval_sampling():
    m = FastGAN(SMALL, 64)
    buf = io.BytesIO()
    torch.save(m.G.state_dict(), buf)
    buf.seek(0)
    m2 = FastGAN(SMALL, 64)
    m2.G.load_state_dict(torch.load(buf, weights_only=True))
    m.G.eval(), m2.G.eval()
    for mod in (m.G, m2.G):  # zero the noise strengths so the comparison is deterministic
        for name, p in mod.named_parameters():
            if name.endswith(".weight") and p.numel() == 1:
                p.data.zero_()
    z = m.sample_latents(3)
    with torch.no_grad():
        assert torch.allclose(m.G(z), m2.G(z), atol=1e-6)


def test_inversion_start_is_seeded_normal():
    m = FastGAN(SMALL, 64)
    a = m.inversion_start(m.G, 5, generator=torch.Generator().manual_seed(3))
    b = m.inversion_start(m.G, 5, generator=torch.Generator().manual_seed(3))
    assert a.shape == (5, 256) and torch.equal(a, b) and a.std() > 0.5


# ---- config errors --------------------------------------------------------------------------------
def test_bad_config_and_resolution_raise_clear_errors():
    with pytest.raises(ValueError, match="models.fastgan.*ngff|ngff"):
        FastGAN({"ngff": 64}, 256)
    with pytest.raises(ValueError, match=r"params/models/fastgan.yaml.*models.fastgan.ngf.*multiple of 8"):
        FastGAN({"ngf": 12}, 256)
    with pytest.raises(ValueError, match="models.fastgan.recon_loss"):
        FastGAN({"recon_loss": "vgg"}, 256)
    with pytest.raises(ValueError, match="resolution 32"):
        FastGAN(SMALL, 32)
    m = FastGAN(SMALL, 64)
    with pytest.raises(ValueError, match="expects reals"):
        m.discriminator_loss(m.G, m.D, real_batch(2, 128), m.sample_latents(2), 0, IDENT)


# ---- reconstruction loss: LPIPS --------------------------------------------------------------------
def test_lpips_untrained_fast_path_matches_module_and_stays_outside_state():
    m = FastGAN(dict(SMALL, recon_loss="lpips_untrained"), 64)
    n_params, keys = count(m), set(m.state_dict())
    fb = m.fallbacks()
    assert len(fb) == 1 and "untrained" in fb[0]
    assert count(m) == n_params and set(m.state_dict()) == keys  # LPIPS not registered in the model
    assert isinstance(m._recon, _SplitLPIPS)
    assert not any(p.requires_grad for p in m._recon_module.parameters())
    a, b = real_batch(3, 32, 1), real_batch(3, 32, 2)
    a.requires_grad_(True)
    fast = m.recon_distance(a, b)
    ref = m._recon_module(a, b)
    assert fast.shape == (3,)
    assert torch.allclose(fast, ref, rtol=1e-5, atol=1e-7)
    (ga,) = torch.autograd.grad(fast.sum(), a)
    (gr,) = torch.autograd.grad(ref.sum(), a)
    assert torch.allclose(ga, gr, rtol=1e-4, atol=1e-8)
    # shared targets (how the D loss calls it): rec[i] against target[index[i]]
    idx = torch.tensor([0, 0, 2, 1])
    rec = real_batch(4, 32, 4)
    assert torch.allclose(m._recon(rec, b, idx), m._recon_module(rec, b[idx]), rtol=1e-5, atol=1e-7)


def test_lpips_vgg_needs_params_and_records_fallback(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))  # no VGG16 file anywhere
    monkeypatch.delenv("FEWGAN_VGG16_WEIGHTS", raising=False)
    m = FastGAN(dict(SMALL, recon_loss="lpips_vgg"), 64)
    with pytest.raises(RuntimeError, match=r"model.setup\(TrainContext"):
        m.fallbacks()
    m.setup(TrainContext(batch_size=4, iterations=1, weights={"download": False, "allow_untrained_fallback": True,
                                                             "cache_dir": str(tmp_path / "cache")}))
    fb = m.fallbacks()
    assert len(fb) == 1 and fb[0].startswith("FastGAN reconstruction loss:")
    assert m.describe()["recon"]["fallback"] == fb[0]
    assert FastGAN(SMALL, 64).fallbacks() == []  # l1: nothing to fall back from


def test_offline_reconstruction_loss_is_l1_when_asked_and_labelled(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))  # no VGG16 file anywhere
    monkeypatch.delenv("FEWGAN_VGG16_WEIGHTS", raising=False)
    m = FastGAN(dict(SMALL, recon_loss="lpips_vgg", recon_offline="l1"), 64)
    m.setup(TrainContext(batch_size=4, iterations=1, weights={
        "download": False, "allow_untrained_fallback": True, "cache_dir": str(tmp_path / "cache"),
        "vgg16": {"path": None, "url": None, "sha256": None}}))
    fb = m.fallbacks()
    assert len(fb) == 1 and "L1 instead of LPIPS-VGG" in fb[0] and "recon_offline" in fb[0]
    a, b = real_batch(3, 32, 1), real_batch(3, 32, 2)
    assert torch.allclose(m.recon_distance(a, b), (a - b).abs().flatten(1).mean(1))
    assert m.describe()["recon"]["kind"] == "l1" and m.describe()["recon"]["requested"] == "lpips_vgg"


def test_offline_reconstruction_loss_effnet_deep_when_asked_and_labelled(tmp_path, monkeypatch):
    from fewgan.nets.perceptual import LABEL

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))  # no VGG16 file anywhere
    monkeypatch.delenv("FEWGAN_VGG16_WEIGHTS", raising=False)
    m = FastGAN(dict(SMALL, recon_loss="lpips_vgg", recon_offline="effnet_deep"), 64)
    m.setup(TrainContext(batch_size=4, iterations=1, weights={
        "download": False, "allow_untrained_fallback": True, "cache_dir": str(tmp_path / "cache"),
        "vgg16": {"path": None, "url": None, "sha256": None}}))
    fb = m.fallbacks()
    assert len(fb) == 1 and "EfficientNet-Lite0 deep-feature distance instead of LPIPS-VGG" in fb[0]
    rec = m.describe()["recon"]
    assert rec["kind"] == "effnet_deep" and rec["requested"] == "lpips_vgg" and rec["label"] == LABEL
    a, b = real_batch(3, 32, 1), real_batch(3, 32, 2)
    want = m._recon_module(a, b)
    assert torch.allclose(m.recon_distance(a, b), want) and (want > 0).all()
    assert torch.allclose(m.recon_distance(a, a), torch.zeros(3), atol=1e-5)
    # chosen on purpose: no fallback, but labelled; the D step trains through it and leaves it frozen
    m2 = FastGAN(dict(SMALL, recon_loss="effnet_deep"), 64)
    assert m2.fallbacks() == [] and m2.describe()["recon"]["note"].startswith("not the paper's loss")
    loss, _ = m2.discriminator_loss(m2.G, m2.D, real_batch(2, 64), torch.randn(2, m2.z_dim), 0, IDENT)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m2.D.parameters())
    assert all(p.grad is None for p in m2._recon_module.parameters())
    assert not any("recon" in k for k in m2.state_dict())


def test_bf16_autocast_step_keeps_fp32_weights_state_and_finite_losses():
    """train.precision: bf16 runs G, D and the LPIPS reconstruction under CPU autocast; weights, Adam state,
    the loss reductions and the EMA stay float32."""
    from fewgan.train.trainer import Trainer

    torch.manual_seed(0)
    m = FastGAN(dict(SMALL, recon_loss="lpips_untrained"), 64)
    # batch 2: bf16 is emulated (slow) on CPUs without AVX512-BF16/AMX; what is checked does not depend on the batch
    trainer = Trainer(m, TrainContext(batch_size=2, iterations=2, precision="bf16"))
    opts, ema = trainer.opts, trainer.emas["G"]
    real = real_batch(2, 64)
    seen = {}
    def record(mod, inp, out):
        seen.setdefault("D_out", out[0] if isinstance(out, tuple) else out)  # returns None: output unchanged

    hook = m.D.register_forward_hook(record)
    for step in range(2):
        res = trainer.step(step, reals=lambda j: (real, None), latents=lambda: m.sample_latents(2), augment=IDENT)
        assert math.isfinite(res.losses["D"]) and math.isfinite(res.losses["G"])
    hook.remove()
    assert seen["D_out"].dtype == torch.bfloat16  # D really ran in bf16
    assert all(p.dtype == torch.float32 for p in list(m.G.parameters()) + list(m.D.parameters()))
    assert all(v.dtype == torch.float32 for st in opts["D"].state.values() for k, v in st.items() if k != "step")
    assert all(p.dtype == torch.float32 for p in ema.module.parameters())
