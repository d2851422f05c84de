"""BigGAN: schema/YAML, reference parameter counts, shapes, conditional BN, latents with a class column,
truncation, orthogonal regularisation, EMA schedule, losses and bit-exact continuation."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import pytest
import torch
import yaml

from fewgan.models.base import registered_models
from fewgan.models.biggan.model import (BigGAN, ortho_parameters, ortho_value_and_grad, orthogonal_regularization,
                                  truncated_normal)
from fewgan.models.biggan.nets import Discriminator, Generator, count_parameters
from fewgan.models.biggan.spec import SCHEMA
from fewgan.train.ema import EMA

REPO = Path(__file__).resolve().parents[2]
YAML_PATH = REPO / "params/models/biggan.yaml"
YAML_CFG = yaml.safe_load(YAML_PATH.read_text())
IDENT = lambda x: x  # noqa: E731
TINY = {**YAML_CFG, "g_ch": 4, "d_ch": 4, "shared_dim": 8, "z_chunk": 4}
#: per resolution: widths and an attention resolution that exists in G (and D where the arch has it)
SIZES = {32: {"attention": 16}, 64: {"attention": 64}, 128: {"g_ch": 8, "d_ch": 8, "attention": 64},
         256: {"g_ch": 8, "d_ch": 8, "attention": 64}}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny(res: int = 32, num_classes: int = 3, **kw) -> BigGAN:
    return BigGAN({**TINY, **SIZES[res], **kw}, res, num_classes=num_classes)


# ---- schema / YAML -------------------------------------------------------------------------------
def test_registered_schema_and_yaml_agree():
    assert registered_models()["biggan"] is BigGAN
    assert BigGAN.config_schema is SCHEMA
    assert SCHEMA["additionalProperties"] is False
    assert set(SCHEMA["required"]) == set(SCHEMA["properties"]) == set(YAML_CFG)
    jsonschema.validate(YAML_CFG, SCHEMA)
    for line in YAML_PATH.read_text().splitlines():  # every key carries a comment citing its source
        if line and not line.startswith("#") and not line.startswith(" "):
            assert "#" in line, f"uncommented key in {YAML_PATH.name}: {line!r}"
    for key in YAML_CFG:
        jsonschema.validate({key: YAML_CFG[key]}, {**SCHEMA, "required": []})
    with pytest.raises(ValueError, match=r"unknown key.*'g_lrr'.*params/models/biggan\.yaml"):
        BigGAN({**YAML_CFG, "g_lrr": 1e-4}, 32)
    with pytest.raises(ValueError, match=r"missing key.*'truncation'.*params/models/biggan\.yaml"):
        BigGAN({k: v for k, v in YAML_CFG.items() if k != "truncation"}, 32)
    with pytest.raises(ValueError, match=r"models\.biggan\.attention.*params/models/biggan\.yaml"):
        BigGAN({**TINY, "attention": 48}, 32)
    with pytest.raises(ValueError, match=r"models\.biggan\.d_steps"):
        BigGAN({**TINY, "d_steps": 0}, 32)
    with pytest.raises(ValueError, match="supports resolutions"):
        BigGAN(TINY, 512)
    with pytest.raises(ValueError, match="at least 8 channels"):
        BigGAN({**TINY, "g_ch": 1, "attention": 16}, 32)
    m = tiny()
    opt = m.make_optimizers()
    g, d = opt["G"].param_groups[0], opt["D"].param_groups[0]
    assert (g["lr"], d["lr"], tuple(g["betas"]), g["eps"]) == (1e-4, 4e-4, (0.0, 0.999), 1e-6)
    assert m.d_steps == 1 and m.ema_decay == 0.9999


# ---- parameter counts -----------------------------------------------------------------------------
def _nets(res: int, n_classes: int, ch: int = 96, attention: int | None = 64) -> tuple[Generator, Discriminator]:
    c = YAML_CFG  # z_chunk 20, shared_dim 128, eps values of the launch script
    G = Generator(res, ch=ch, z_chunk=c["z_chunk"], shared_dim=c["shared_dim"], n_classes=n_classes,
                  attention=attention, bn_eps=c["bn_eps"], sn_eps=c["sn_eps"], init=False)
    D = Discriminator(res, ch=ch, n_classes=n_classes, attention=attention, sn_eps=c["sn_eps"], init=False)
    return G, D


# Counted by running ajbrock/BigGAN-PyTorch@9845943 BigGAN.Generator/Discriminator (G_shared, shared_dim 128,
# hier, dim_z = 20 per chunk: 120 at 128 px, 140 at 256, 100 at 64, 80 at 32) and summing p.numel() over
# .parameters(). Key: (resolution, n_classes, G_ch = D_ch, G_attn = D_attn) -> (G, D).
REFERENCE_COUNTS = {
    (128, 1000, 96, 64): (70_433_988, 87_982_370),  # the reference's 128-px ImageNet configuration
    (128, 1, 96, 64): (70_306_116, 86_447_906),  # the same with one class (fewgan's unconditional mode)
    # the other arch tables at small widths (the 32-px one without attention: the reference's 32-px D
    # table would add an attention block after every block, a quirk not reproduced)
    (256, 10, 16, 64): (2_722_724, 2_718_770),
    (64, 1, 16, 32): (2_312_900, 1_223_666),
    (32, 10, 16, 64): (372_355, 265_409),
    (128, 10, 8, 32): (697_940, 603_098),
}


@pytest.mark.parametrize("key", list(REFERENCE_COUNTS), ids=lambda k: "-".join(map(str, k)))
def test_parameter_counts_equal_the_reference(key):
    res, n_classes, ch, attention = key
    G, D = _nets(res, n_classes, ch, attention)
    counts = (count_parameters(G), count_parameters(D))
    print(f"biggan {res}px, {n_classes} classes, ch {ch}: G {counts[0]:,} D {counts[1]:,}")
    assert counts == REFERENCE_COUNTS[key]
    if key == (128, 1000, 96, 64):
        assert G.z_dim == 120 and G.z_chunk == 20
        assert G.resolutions[G.attn_index] == 64 and D.resolutions[D.attn_index] == 64
        # spectral norm keeps its power-iteration vectors as buffers, not parameters
        assert any(n.endswith("_u") for n, _ in G.named_buffers())
        assert all("_u" not in n for n, _ in G.named_parameters())


# ---- shapes --------------------------------------------------------------------------------------
@pytest.mark.parametrize("res", [32, 64, 128, 256])
@pytest.mark.parametrize("num_classes", [0, 5])
def test_shapes_at_every_resolution(res, num_classes):
    m = tiny(res, num_classes)
    n = 4 if res <= 64 else 2
    conditional = num_classes > 1
    z = m.sample_latents(n)
    blocks = {32: 3, 64: 4, 128: 5, 256: 6}[res]
    assert m.z_dim == 4 * (blocks + 1)
    assert z.shape == (n, m.z_dim + (1 if conditional else 0))
    img = m.generate(m.G, z)
    assert img.shape == (n, 3, res, res) and float(img.detach().abs().max()) <= 1.0
    labels = m.split_latent(z)[1]
    logits = m.D(img, labels)
    assert logits.shape == (n, 1)
    d = m.describe()
    assert d["conditional"] is conditional and d["attention_G"] == SIZES[res]["attention"]
    assert d["attention_D"] == {32: 16, 64: None, 128: 64, 256: 64}[res]  # no 64-px D block at 64 px
    assert m.G.shared.weight.shape[0] == m.D.embed.weight.shape[0] == (5 if conditional else 1)


# ---- latents and conditioning --------------------------------------------------------------------
def test_latent_class_column_and_labels():
    m = tiny(num_classes=3)
    gen = torch.Generator().manual_seed(0)
    z = m.sample_latents(200, generator=gen)
    assert z.shape == (200, m.z_dim + 1)
    assert set(z[:, -1].tolist()) == {0.0, 1.0, 2.0}
    z = m.sample_latents(3, labels=torch.tensor([2, 0, 1]))
    assert z[:, -1].tolist() == [2.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="0..2"):
        m.sample_latents(1, labels=torch.tensor([3]))
    with pytest.raises(ValueError, match="real_labels"):
        m.discriminator_loss(m.G, m.D, torch.zeros(2, 3, 32, 32), m.sample_latents(2), 0, IDENT)
    u = tiny(num_classes=0)
    assert u.sample_latents(2).shape == (2, u.z_dim) and u.inversion_start(u.G, 2).shape == (2, u.z_dim)
    u.discriminator_loss(u.G, u.D, torch.zeros(2, 3, 32, 32), u.sample_latents(2), 0, IDENT)  # no labels needed
    start = m.inversion_start(m.G, 2, labels=torch.tensor([1, 2]))
    assert torch.equal(start, torch.cat([torch.zeros(2, m.z_dim), torch.tensor([[1.0], [2.0]])], 1))


def test_conditional_batchnorm_uses_the_right_class():
    m = tiny(num_classes=3).eval()
    G = m.G.requires_grad_(False)
    z = torch.randn(1, m.z_dim)
    y0, y1 = torch.tensor([0]), torch.tensor([1])
    out0, out1 = G(z, y0), G(z, y1)
    assert not torch.allclose(out0, out1)  # two labels, two images
    with torch.no_grad():
        G.shared.weight[1] += 0.5  # change class 1's embedding only
    assert torch.equal(G(z, y0), out0)  # class 0's sample does not depend on it
    assert not torch.allclose(G(z, y1), out1)
    # the gradient of a class-0 sample reaches only row 0 of the shared embedding
    G.shared.weight.requires_grad_(True)
    G(z, y0).sum().backward()
    grad = G.shared.weight.grad
    assert grad[0].abs().sum() > 0 and grad[1:].abs().sum() == 0
    # eval mode: a sample is the same whatever its batch neighbours are. Batch 4 and batch 1 run different
    # kernel blockings (oneDNN/MKL choose them by shape and by the CPU's ISA), so the sums are reassociated:
    # measured 8.0e-7 with AVX2 and 8.9e-7 with SSE4.1 at |x| <= 0.9 (~15 float32 ulps), too close to the 1e-6
    # this used to allow for AVX-512/AMX blockings. 1e-5 (~170 ulps) is float32 reassociation; a sample that
    # depended on its neighbours (train-mode batch statistics) differs by 1.2 here.
    zz = torch.cat([z, torch.randn(3, m.z_dim)])
    with torch.no_grad():
        batch = G(zz, torch.tensor([0, 2, 1, 0]))
        assert torch.allclose(batch[:1], G(z, y0), atol=1e-5, rtol=0)
        lat = m.sample_latents(1, labels=y0)
        assert torch.equal(m.generate(G, lat), G(lat[:, :-1], y0))  # generate splits off the class column


def test_synthesize_never_changes_the_class_column():
    m = tiny(num_classes=3).eval()
    m.G.requires_grad_(False)
    latent = m.inversion_start(m.G, 2, labels=torch.tensor([1, 2])) + torch.cat(
        [torch.randn(2, m.z_dim) * 0.1, torch.zeros(2, 1)], 1)
    latent.requires_grad_(True)
    opt = torch.optim.Adam([latent], lr=0.1)
    z0 = latent.detach().clone()
    for _ in range(3):
        opt.zero_grad()
        loss = m.synthesize(m.G, latent).square().mean()
        loss.backward()
        assert torch.equal(latent.grad[:, -1], torch.zeros(2))  # detached class column: zero gradient
        assert latent.grad[:, :-1].abs().sum() > 0
        opt.step()
    assert latent[:, -1].tolist() == [1.0, 2.0]  # zero gradient -> zero Adam update
    assert not torch.equal(latent[:, :-1], z0[:, :-1])


def test_truncation_only_in_eval_mode():
    m = tiny(num_classes=3, truncation=0.5)
    n = 256
    z_train = m.sample_latents(n, generator=torch.Generator().manual_seed(1))
    assert (z_train[:, :-1].abs() > 0.5).any()  # training latents are never truncated
    assert m.describe()["truncation"] is None and m.describe()["truncation_cfg"] == 0.5
    m.eval()
    z_eval = m.sample_latents(n, generator=torch.Generator().manual_seed(1))
    assert float(z_eval[:, :-1].abs().max()) <= 0.5
    assert set(z_eval[:, -1].tolist()) <= {0.0, 1.0, 2.0}
    assert m.describe()["truncation"] == 0.5
    # null truncation: eval draws equal training draws
    u = tiny(num_classes=3).eval()
    a = u.sample_latents(8, generator=torch.Generator().manual_seed(2))
    u.train()
    assert torch.equal(a, u.sample_latents(8, generator=torch.Generator().manual_seed(2)))
    t = truncated_normal(1000, 4, 0.1, generator=torch.Generator().manual_seed(3), device=None)
    assert float(t.abs().max()) <= 0.1 and float(t.std()) > 0.03  # resampled, not clipped


# ---- orthogonal regularisation ---------------------------------------------------------------------
def test_orthogonal_regulariser_on_known_matrices():
    # W W^T = [[5, 11], [11, 25]]: off-diagonal part [[0, 11], [11, 0]], ||.||^2 = 242
    w = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    value, grad = ortho_value_and_grad(w, beta=1.0)
    assert float(value) == 121.0  # (beta / 2) * 242
    assert torch.equal(grad, torch.tensor([[66.0, 88.0], [22.0, 44.0]]))  # 2 * off @ W
    # tall (3 x 1, the Gram-matrix path): W W^T off-diagonal [[0,2,2],[2,0,4],[2,4,0]], ||.||^2 = 48
    w = torch.tensor([[1.0], [2.0], [2.0]])
    value, grad = ortho_value_and_grad(w, beta=1.0)
    assert float(value) == 24.0
    assert torch.equal(grad, torch.tensor([[16.0], [20.0], [20.0]]))
    # random shapes (wide, tall, conv): the reference's closed form (utils.ortho) and autograd of the value
    gen = torch.Generator().manual_seed(0)
    for shape in [(6, 10), (10, 3), (4, 3, 3, 3), (40, 2)]:
        p = torch.randn(*shape, generator=gen, dtype=torch.float64)
        w = p.reshape(shape[0], -1)
        ref = 2 * ((w @ w.t()) * (1.0 - torch.eye(shape[0], dtype=torch.float64))) @ w
        value, grad = ortho_value_and_grad(p, beta=1e-4)
        assert torch.allclose(grad.reshape(shape[0], -1), 1e-4 * ref, rtol=1e-10, atol=0)
        q = p.clone().requires_grad_(True)
        wq = q.reshape(shape[0], -1)
        auto = 0.5e-4 * ((wq @ wq.t()) * (1.0 - torch.eye(shape[0], dtype=torch.float64))).square().sum()
        auto.backward()
        assert float(value) == pytest.approx(float(auto.detach()), rel=1e-10)
        assert torch.allclose(q.grad, grad, rtol=1e-10, atol=0)


def test_orthogonal_regulariser_in_the_generator_loss():
    m = tiny(num_classes=3, ortho_beta=1e-2)
    m.eval()  # eval: spectral-norm vectors and BN statistics stay fixed, so both passes see the same G
    z = m.sample_latents(2)
    ids = {id(p) for p in ortho_parameters(m.G)}
    names = {n for n, p in m.G.named_parameters() if id(p) in ids}
    assert "shared.weight" not in names and all(p.ndim >= 2 for p in ortho_parameters(m.G))
    assert any(n.endswith("original") for n in names)  # raw (pre-spectral-norm) weights, as the reference

    def grads(beta):
        m.cfg["ortho_beta"] = beta
        m.G.zero_grad(set_to_none=True)
        loss, logs = m.generator_loss(m.G, m.D, z, 0, IDENT)
        loss.backward()
        return {n: p.grad.clone() for n, p in m.G.named_parameters()}, logs

    with_reg, logs = grads(1e-2)
    without, _ = grads(0.0)
    assert logs["loss_G_ortho"] > 0
    for name, p in m.G.named_parameters():
        diff = with_reg[name] - without[name]
        if p.ndim >= 2 and name != "shared.weight":
            tol = 1e-6 * (1.0 + float(without[name].abs().max()))  # float32 cancellation in the difference
            assert torch.allclose(diff, ortho_value_and_grad(p, 1e-2)[1], rtol=1e-4, atol=tol), name
        else:
            assert torch.equal(diff, torch.zeros_like(diff)), name  # skipped: 1-d and the shared embedding
    # a lone parameter receives exactly the closed form (backward passes it through unchanged)
    lin = torch.nn.Linear(5, 3, bias=False)
    orthogonal_regularization(lin, 1e-4).backward()
    assert torch.equal(lin.weight.grad, ortho_value_and_grad(lin.weight, 1e-4)[1])


# ---- training -------------------------------------------------------------------------------------
def test_ema_schedule():
    m = tiny(ema_start=3, ema_decay=0.99)
    assert [m.ema_beta(s, 8) for s in range(5)] == [0.0, 0.0, 0.99, 0.99, 0.99]  # itr = step + 1 < 3 -> copy
    assert BigGAN.ema_buffers is True


def test_losses_decrease_on_fixed_batch():
    m = tiny(num_classes=3, g_ch=2, d_ch=2)
    opt = m.make_optimizers()
    real = torch.rand(4, 3, 32, 32) * 2 - 1
    labels = torch.tensor([0, 1, 2, 0])
    z = m.sample_latents(4)
    values = []
    for step in range(8):
        loss, _ = m.discriminator_loss(m.G, m.D, real, z, step, IDENT, real_labels=labels)
        opt["D"].zero_grad()
        loss.backward()
        opt["D"].step()
        values.append(float(loss.detach()))
    assert values[-1] < values[0] * 0.9, values
    g0, _ = m.generator_loss(m.G, m.D, z, 8, IDENT)
    for _ in range(4):
        g, _ = m.generator_loss(m.G, m.D, z, 8, IDENT)
        opt["G"].zero_grad()
        g.backward()
        opt["G"].step()
    g1, _ = m.generator_loss(m.G, m.D, z, 8, IDENT)
    assert float(g1.detach()) < float(g0.detach())


def test_hinge_loss_and_one_d_forward_on_fakes_then_reals():
    m = tiny(num_classes=3)
    seen = []

    class FixedD(torch.nn.Module):
        def forward(self, x, y):
            seen.append((x.shape[0], y.tolist()))
            return torch.tensor([[-2.0], [0.5], [0.3], [3.0]])[: x.shape[0]]

    z = m.sample_latents(2, labels=torch.tensor([2, 1]))
    _, logs = m.discriminator_loss(m.G, FixedD(), torch.zeros(2, 3, 32, 32), z, 0, IDENT,
                                      real_labels=torch.tensor([0, 1]))
    assert seen == [(4, [2, 1, 0, 1])]  # one D call: [fakes; reals] with [fake classes; real classes]
    assert logs["loss_D_fake"] == pytest.approx((0 + 1.5) / 2)  # relu(1 + d_fake)
    assert logs["loss_D_real"] == pytest.approx((0.7 + 0) / 2)  # relu(1 - d_real)
    m.cfg["ortho_beta"] = 0.0
    g, _ = m.generator_loss(m.G, FixedD(), z, 0, IDENT)
    assert float(g.detach()) == pytest.approx(-(-2.0 + 0.5) / 2)


def _train(m: BigGAN, opt: dict, ema: EMA, steps: range) -> None:
    gen = torch.Generator().manual_seed(5)
    real_all = torch.rand(4, 3, 32, 32, generator=gen) * 2 - 1
    labels_all = torch.tensor([0, 1, 2, 0])
    for step in steps:
        sl = slice((step % 2) * 2, (step % 2) * 2 + 2)
        z = m.sample_latents(2)
        for _ in range(m.d_steps):
            loss, _ = m.discriminator_loss(m.G, m.D, real_all[sl], z, step, IDENT, real_labels=labels_all[sl])
            opt["D"].zero_grad(set_to_none=True)
            loss.backward()
            opt["D"].step()
        loss, _ = m.generator_loss(m.G, m.D, z, step, IDENT)
        opt["G"].zero_grad(set_to_none=True)
        loss.backward()
        opt["G"].step()
        ema.update(m.G, m.ema_beta(step, 2))


def test_bit_exact_continuation_and_snapshot_reload():
    kw = {"g_ch": 2, "d_ch": 2, "d_steps": 2, "ema_start": 3, "ema_decay": 0.9, "ortho_beta": 1e-3}
    steps, cut = 5, 2  # the EMA starts averaging after the cut
    torch.manual_seed(0)
    a = tiny(num_classes=3, **kw)
    opt_a, ema_a = a.make_optimizers(), EMA(a.G, a.ema_buffers)
    _train(a, opt_a, ema_a, range(steps))

    torch.manual_seed(0)
    b = tiny(num_classes=3, **kw)
    opt_b, ema_b = b.make_optimizers(), EMA(b.G, b.ema_buffers)
    _train(b, opt_b, ema_b, range(cut))
    saved = copy.deepcopy({"model": b.state_dict(), "G_ema": ema_b.state_dict(), "G": opt_b["G"].state_dict(),
                           "D": opt_b["D"].state_dict(), "rng": torch.get_rng_state()})
    del b, opt_b, ema_b
    torch.manual_seed(42)
    c = tiny(num_classes=3, **kw)
    opt_c, ema_c = c.make_optimizers(), EMA(c.G, c.ema_buffers)
    c.load_state_dict(saved["model"])
    ema_c.load_state_dict(saved["G_ema"])
    opt_c["G"].load_state_dict(saved["G"])
    opt_c["D"].load_state_dict(saved["D"])
    torch.set_rng_state(saved["rng"])
    _train(c, opt_c, ema_c, range(cut, steps))
    for x, y in ((a.state_dict(), c.state_dict()), (ema_a.state_dict(), ema_c.state_dict()),
                 (opt_a["D"].state_dict()["state"][0], opt_c["D"].state_dict()["state"][0])):
        assert x.keys() == y.keys()
        for k in x:
            assert torch.equal(x[k], y[k]), k
    assert any(k.endswith("running_mean") for k in a.G.state_dict()) and any(k.endswith("_u") for k in a.D.state_dict())

    # what load_snapshot does: rebuild from (cfg, resolution, num_classes), load G_ema, eval
    fresh = BigGAN(c.cfg, 32, num_classes=3)
    fresh.G.load_state_dict(ema_c.state_dict())
    fresh.eval()
    lat = fresh.sample_latents(3, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        assert torch.equal(fresh.generate(fresh.G, lat), c.generate(ema_c.module, lat))
        assert torch.equal(fresh.generate(fresh.G, lat), fresh.generate(fresh.G, lat))  # eval: deterministic
