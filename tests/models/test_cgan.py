"""Conditional GAN: the survey's architecture (4x4x1025 after the class map, 5x5 stride-2 transposed convs halving
the filters, tanh at 64 px), parameter counts, the class column in the latent, conditioning of G and D, DCGAN init,
the loss on a fixed batch and bit-exact resume through the trainer with class labels."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from fewgan.models.base import TrainContext, registered_models
from fewgan.models.cgan.model import ConditionalGAN as _CGAN
from fewgan.models.cgan.spec import CAPABILITIES, SCHEMA
from fewgan.train.state import capture_rng, restore_rng
from fewgan.train.trainer import build_trainer

REPO = Path(__file__).resolve().parents[2]
YAML_PATH = REPO / "params/models/cgan.yaml"
YAML = yaml.safe_load(YAML_PATH.read_text())
IDENT = lambda x: x  # noqa: E731
TINY = {"z_dim": 8, "g_channels": 32, "d_channels": 4, "embed_dim": 6}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def CGAN(cfg: dict, res: int = 64, num_classes: int = 3) -> _CGAN:  # noqa: N802
    return _CGAN({**YAML, **cfg}, res, num_classes=num_classes)


def test_registered_and_yaml_is_complete():
    assert registered_models()["cgan"] is _CGAN
    assert "conditional" in CAPABILITIES and "conditional" in _CGAN.capabilities
    assert sorted(YAML) == sorted(SCHEMA["properties"]) == sorted(SCHEMA["required"])
    for line in YAML_PATH.read_text().splitlines():
        if line and not line.startswith("#"):
            assert "#" in line, f"uncommented key in {YAML_PATH.name}: {line!r}"
    with pytest.raises(ValueError, match="unknown key"):
        CGAN({"embed": 3})
    with pytest.raises(ValueError, match="resolutions"):
        CGAN({}, 48)


def test_survey_architecture_and_parameter_counts_at_64px():
    m = CGAN({}, 64, num_classes=3)
    G, D = m.G, m.D
    assert (G.fc.in_features, G.fc.out_features) == (100, 4 * 4 * 1024)
    assert G.label.embed.weight.shape == (3, 50) and G.label.fc.out_features == 16  # 50-d embedding -> 4x4 map
    convs = [mod for mod in G.net if isinstance(mod, nn.ConvTranspose2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(1025, 512), (512, 256), (256, 128), (128, 3)]
    assert all(c.kernel_size == (5, 5) and c.stride == (2, 2) for c in convs)
    assert sum(isinstance(mod, nn.BatchNorm2d) for mod in G.net) == 3 and isinstance(G.net[-1], nn.Tanh)
    dconvs = [mod for mod in D.net if isinstance(mod, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in dconvs] == [(4, 64), (64, 128), (128, 256), (256, 512)]
    # G: 100*16384 + BN 2*1024 + embedding 3*50 + 50*16+16 + 1025*512*25 + 512*256*25 + 256*128*25 + 128*3*25+3 + BN
    d = m.describe()
    assert d["params_G"] == 18_868_809 and d["params_D"] == 4_526_295
    assert d["conditional"] is True
    # DCGAN init: weights N(0, 0.02), BatchNorm scale N(1, 0.02)
    assert abs(float(convs[0].weight.detach().std()) - 0.02) < 0.001
    assert abs(float(G.fc_bn.weight.detach().mean()) - 1.0) < 0.005


@pytest.mark.parametrize("res", [32, 64, 128])
def test_shapes(res):
    m = CGAN(TINY, res, num_classes=3)
    z = m.sample_latents(4)
    assert z.shape == (4, 8 + 1)
    img = m.generate(m.G, z)
    assert img.shape == (4, 3, res, res) and float(img.detach().abs().max()) <= 1.0
    assert m.D(img, m.split_latent(z)[1]).shape == (4, 1)


def test_class_column_and_conditioning():
    m = CGAN(TINY, 32, num_classes=3)
    z = m.sample_latents(300, generator=torch.Generator().manual_seed(0))
    assert set(z[:, -1].tolist()) == {0.0, 1.0, 2.0}
    assert m.sample_latents(2, labels=torch.tensor([2, 0]))[:, -1].tolist() == [2.0, 0.0]
    with pytest.raises(ValueError, match="0..2"):
        m.sample_latents(1, labels=torch.tensor([3]))
    with pytest.raises(ValueError, match="real_labels"):
        m.discriminator_loss(m.G, m.D, torch.zeros(2, 3, 32, 32), m.sample_latents(2), 0, IDENT)
    G = m.G.eval()
    zz = torch.randn(1, 8)
    with torch.no_grad():
        a, b = G(zz, torch.tensor([0])), G(zz, torch.tensor([1]))
        assert not torch.allclose(a, b)  # the class changes the image
        G.label.embed.weight[1] += 1.0
        assert torch.equal(G(zz, torch.tensor([0])), a)  # class 0 does not read class 1's embedding
        x = torch.rand(1, 3, 32, 32)
        assert not torch.allclose(m.D(x, torch.tensor([0])), m.D(x, torch.tensor([2])))  # D sees the label
    start = m.inversion_start(G, 2, labels=torch.tensor([1, 2]), generator=torch.Generator().manual_seed(4))
    assert start[:, -1].tolist() == [1.0, 2.0] and float(start[:, :-1].std()) > 0.3  # a N(0, I) start, not zeros
    assert torch.equal(start, m.inversion_start(G, 2, labels=torch.tensor([1, 2]),
                                                generator=torch.Generator().manual_seed(4)))
    lat = start.clone().requires_grad_(True)
    m.synthesize(G, lat).sum().backward()
    assert float(lat.grad[:, -1].abs().sum()) == 0.0 and float(lat.grad[:, :-1].abs().sum()) > 0  # class fixed
    u = CGAN(TINY, 32, num_classes=0)  # one learned class: unconditional latents
    assert u.sample_latents(2).shape == (2, 8) and u.describe()["conditional"] is False
    u.discriminator_loss(u.G, u.D, torch.zeros(4, 3, 32, 32), u.sample_latents(4), 0, IDENT)


@pytest.mark.parametrize("loss", ["nonsaturating", "minimax"])
def test_losses(loss):
    m = CGAN({**TINY, "loss": loss}, 32)

    class FixedD(nn.Module):
        def forward(self, x, y):
            return torch.full((x.shape[0], 1), 0.5)

    z = m.sample_latents(2)
    _, logs = m.discriminator_loss(m.G, FixedD(), torch.zeros(2, 3, 32, 32), z, 0, IDENT,
                                   real_labels=torch.tensor([0, 1]))
    sp = torch.nn.functional.softplus
    assert logs["loss_D_real"] == pytest.approx(float(sp(torch.tensor(-0.5))))
    assert logs["loss_D_fake"] == pytest.approx(float(sp(torch.tensor(0.5))))
    g, _ = m.generator_loss(m.G, FixedD(), z, 0, IDENT)
    want = float(sp(torch.tensor(-0.5))) if loss == "nonsaturating" else -float(sp(torch.tensor(0.5)))
    assert float(g.detach()) == pytest.approx(want)


def test_losses_fall_on_a_fixed_batch():
    m = CGAN(TINY, 32)
    opt = m.make_optimizers()
    assert opt["G"].param_groups[0]["lr"] == 0.0002 and opt["G"].param_groups[0]["betas"] == (0.5, 0.999)
    real = torch.rand(4, 3, 32, 32) * 2 - 1
    labels = torch.tensor([0, 1, 2, 0])
    z = m.sample_latents(4, generator=torch.Generator().manual_seed(1))
    values = []
    for step in range(10):
        loss, logs = m.discriminator_loss(m.G, m.D, real, z, step, IDENT, real_labels=labels)
        opt["D"].zero_grad()
        loss.backward()
        opt["D"].step()
        values.append(float(loss.detach()))
    assert values[-1] < values[0] * 0.8, values
    g0, _ = m.generator_loss(m.G, m.D, z, 10, IDENT)
    for _ in range(5):
        g, _ = m.generator_loss(m.G, m.D, z, 10, IDENT)
        opt["G"].zero_grad()
        g.backward()
        opt["G"].step()
    g1, _ = m.generator_loss(m.G, m.D, z, 10, IDENT)
    assert float(g1.detach()) < float(g0.detach())


def test_bit_exact_resume_through_the_trainer_with_labels():
    images = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(5)) * 2 - 1
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    ctx = TrainContext(batch_size=4, iterations=4)
    cfg = {**YAML, **TINY}

    def fresh(seed=0):
        torch.manual_seed(seed)
        tr = build_trainer("cgan", dict(cfg), 32, ctx, num_classes=3)
        return tr, {"latent": torch.Generator().manual_seed(2)}

    def run(tr, steps, gens):
        for s in steps:
            sl = slice((s % 2) * 4, (s % 2) * 4 + 4)
            tr.step(s, reals=lambda i: (images[sl], labels[sl]),
                    latents=lambda: tr.gan.sample_latents(4, generator=gens["latent"]), augment=IDENT)

    a, ga = fresh()
    run(a, range(4), ga)
    b, gb = fresh()
    run(b, range(2), gb)
    buf = io.BytesIO()
    torch.save({"trainer": b.state(), "rng": capture_rng(gb)}, buf)
    c, gc = fresh(seed=7)
    saved = torch.load(io.BytesIO(buf.getvalue()), weights_only=True)
    c.load_state(saved["trainer"])
    restore_rng(saved["rng"], gc)
    run(c, range(2, 4), gc)
    for x, y in ((a.state()["model"], c.state()["model"]), (a.state()["G_ema"], c.state()["G_ema"])):
        assert x.keys() == y.keys()
        for k in x:
            assert torch.equal(x[k], y[k]), k
    assert any(k.endswith("running_mean") for k in a.state()["G_ema"])
    m = _CGAN(dict(cfg), 32, num_classes=3)  # what load_snapshot builds
    m.G.load_state_dict(a.snapshot_networks()["G_ema"])
    m.eval()
    lat = m.sample_latents(3, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        assert torch.equal(m.generate(m.G, lat), m.generate(a.sampling_network(), lat))


def test_training_loop_on_class_folders_end_to_end(tmp_path, monkeypatch):
    """fewgan.train.loop with a dataset of 3 classes: run.json records the conditional use of the labels, sample
    grids get one class per row, and a 2-iteration run extended to 4 equals a straight 4-iteration run bit for bit."""
    import json

    from fewgan.io import read_yaml, torch_load
    from fewgan.models.registry import load_snapshot
    from fewgan.train import loop

    images = torch.randint(0, 256, (8, 3, 32, 32), generator=torch.Generator().manual_seed(3), dtype=torch.uint8)
    monkeypatch.setattr(loop, "load_train_images", lambda c, s, r: (images.clone(), [f"i{k}.png" for k in range(8)]))
    monkeypatch.setattr(loop, "load_train_labels", lambda split_dir, names: (
        torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]), {"cat": 0, "dog": 1, "wild": 2}))
    train = read_yaml(REPO / "params/train.yaml")
    train.update(iterations=4, batch_size=4, snapshot_every=2, sample_every=2, log_every=1, grid_size=3,
                 interpolation_steps=2)
    weights = read_yaml(REPO / "params/evaluation.yaml")["weights"]

    def run(name, iterations):
        params = {"seed": 0, "device": "cpu", "datasets": {"toy": {"resolution": 32}},
                  "models": {"cgan": {**YAML, **TINY}}, "train": dict(train, iterations=iterations),
                  "evaluation": {"weights": weights}}
        dirs = {k: tmp_path / name / k for k in ("curated_dir", "split_dir", "out_dir", "work_dir")}
        loop.train(params, "toy", "cgan", threads=1, **dirs)
        return dirs

    straight = run("straight", 4)
    run("extended", 2)
    extended = run("extended", 4)
    info = json.loads((straight["out_dir"] / "run.json").read_text())
    assert info["conditional"] is True and "3 classes" in info["class_use"]
    for it in (2, 4):
        a = torch_load(straight["out_dir"] / "snapshots" / f"snapshot_{it:07d}.pt")
        b = torch_load(extended["out_dir"] / "snapshots" / f"snapshot_{it:07d}.pt")
        assert all(torch.equal(a["G_ema"][k], b["G_ema"][k]) for k in a["G_ema"])
    model, G, meta = load_snapshot(straight["out_dir"] / "snapshots" / "snapshot_0000004.pt")
    assert isinstance(model, _CGAN) and model.num_classes == 3 and meta["iteration"] == 4
    with torch.no_grad():
        assert model.generate(G, model.sample_latents(2, labels=torch.tensor([2, 1]))).shape == (2, 3, 32, 32)
