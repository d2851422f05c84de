"""NICE-GAN (fewgan.models.nicegan): parameter counts of the official networks, the encoder inside the
discriminator, decoupled training, lambda = 0 at init, receptive fields 70 / 286, learning and bit-exact resume
through the shared loop (CPU-sized: ch 4, n_res 1, n_dis 6 at 64 px)."""

from __future__ import annotations

import pytest
import torch

import translation_kit as kit
from fewgan.models.registry import build_model, load_snapshot

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_parameter_counts_at_256_equal_the_official_networks():
    """alpc91/NICE-GAN-pytorch networks.py (commit 1b114f1d), counted by instantiating its classes:
    ResnetGenerator(3, 3, 64, n_blocks=6, img_size=256, light=True) = 8,104,640 (the issue's ~8.10 M),
    light=False = 276,474,560; Discriminator(3, 64, n_layers=7) = 46,874,433 (~46.87 M)."""
    m = build_model("nicegan", kit.defaults("nicegan"), 256)
    d = m.describe()
    assert d["params_G_AB"] == d["params_G_BA"] == 8_104_640
    assert d["params_D_A"] == d["params_D_B"] == 46_874_433
    from fewgan.models.nicegan.nets import NiceGenerator

    assert sum(p.numel() for p in NiceGenerator(64, 6, 256, light=False).parameters()) == 276_474_560


def test_receptive_fields_lambda_and_shapes():
    m = build_model("nicegan", kit.tiny("nicegan"), 64)
    assert m.D_A.lamda.item() == 0.0 and m.D_B.lamda.item() == 0.0  # residual attention starts as identity
    full = build_model("nicegan", kit.defaults("nicegan"), 256)
    assert full.D_A.receptive_fields() == {"local": 70, "global": 286}
    a, b = kit.fixed_domains(64)
    m.eval()
    with torch.no_grad():
        local, glob, cam, heatmap, z = m.D_A(a)
        assert z.shape == (2, 8, 16, 16) and cam.shape == (2, 1) and heatmap.shape == (2, 1, 16, 16)
        assert local.shape == (2, 1, 14, 14) and glob.shape == (2, 1, 2, 2)
        assert m.translate(a, "AB").shape == a.shape and m.cycle(b, "BA").shape == b.shape
    with pytest.raises(ValueError, match="resolution >= 128"):
        build_model("nicegan", kit.tiny("nicegan", n_dis=7), 64)


def test_encoder_is_updated_only_by_the_discriminator_loss():
    """Decoupled training: through one iteration, the encoders (the discriminators' first layers) change in
    the D step and not in the G step, although the G loss reaches them (non-zero gradients); the generators
    change only in the G step."""
    from fewgan.models.nicegan.model import NICEGAN

    a, b = kit.fixed_domains(64)
    trainer = kit.trainer_for("nicegan", kit.tiny("nicegan"), 64)
    gan = trainer.gan
    enc = lambda: [p.detach().clone() for D in (gan.D_A, gan.D_B) for p in D.encoder_parameters()]  # noqa: E731
    gen = lambda: [p.detach().clone() for p in (*gan.G_AB.parameters(), *gan.G_BA.parameters())]  # noqa: E731
    same = lambda xs, ys: all(torch.equal(x, y) for x, y in zip(xs, ys))  # noqa: E731
    marks = {}
    d_phase, g_phase = NICEGAN.discriminator_phase, NICEGAN.generator_phase

    def d_spy(self, *args):
        marks["before_D"] = (enc(), gen())
        return d_phase(self, *args)

    def g_spy(self, *args):
        marks["before_G"] = (enc(), gen())
        return g_phase(self, *args)

    gan.discriminator_phase = d_spy.__get__(gan)
    gan.generator_phase = g_spy.__get__(gan)
    kit.run_steps(trainer, a, b, 2)  # step 0 warms Adam up; step 1 is checked
    after = (enc(), gen())
    assert not same(marks["before_D"][0], marks["before_G"][0])  # the D step moved the encoders
    assert same(marks["before_G"][0], after[0])                   # the G step did not
    assert same(marks["before_D"][1], marks["before_G"][1])       # the D step left the generators
    assert not same(marks["before_G"][1], after[1])               # the G step moved them
    # the G loss did reach the encoders: their gradients after the G step are non-zero (cleared before the D step)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in gan.D_A.encoder_parameters())


def test_learning_rate_decays_linearly_to_zero_over_the_second_half():
    m = build_model("nicegan", kit.tiny("nicegan", lr=1e-4), 64)
    m.setup(kit.TrainContext(batch_size=1, iterations=10))
    lr = [m.learning_rate("D", s) for s in range(10)]
    # NICE.py: at 1-based step s > T // 2, lr = lr0 - lr0 / (T // 2) * (s - T // 2)
    assert lr == pytest.approx([1e-4] * 5 + [1e-4 * (1 - k / 5) for k in range(1, 6)])
    assert lr[-1] == 0.0


def test_cycle_and_reconstruction_fall_on_a_fixed_batch():
    a, b = kit.fixed_domains(64)
    trainer = kit.trainer_for("nicegan", kit.tiny("nicegan"), 64)
    rows = kit.run_steps(trainer, a, b, 10)
    assert [k for k in rows[0] if k.startswith("loss_")] == ["loss_D", "loss_G"]
    term = lambda r: r["G/recon"] + r["G/cycle"]  # noqa: E731
    first, last = term(rows[0]), sum(term(r) for r in rows[-3:]) / 3
    assert last < 0.85 * first, (first, last)


def test_resume_through_the_shared_loop_is_bit_exact_and_snapshots_hold_the_encoders(tmp_path, monkeypatch):
    from fewgan.models.nicegan.model import NICEGAN

    kit.serve_toy_domains(monkeypatch, 64)
    params = kit.loop_params("nicegan", kit.tiny("nicegan"), 64, {"kind": "domains", "domains": ["cat", "dog"],
                                                                  "edge_fraction": 0.1})
    run = kit.assert_resume_is_bit_exact(tmp_path, monkeypatch, NICEGAN, "nicegan", params, "generator_phase")
    assert [p["name"] for p in run["phases"]] == ["D", "G"]
    snap = tmp_path / "straight" / "out_dir" / "snapshots" / "snapshot_0000004.pt"
    model, G, meta = load_snapshot(snap)
    assert G is model.G_AB and meta["model"] == "nicegan"
    from fewgan.io import torch_load

    assert {"G_AB", "G_BA", "D_A", "D_B"} <= set(torch_load(snap))
    a, _ = kit.fixed_domains(64)
    with torch.no_grad():
        assert model.cycle(a, "AB").shape == a.shape
