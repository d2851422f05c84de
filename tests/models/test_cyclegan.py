"""CycleGAN (fewgan.models.cyclegan): parameter counts of the official networks, the 70 x 70 PatchGAN, the image
pool, learning and bit-exact resume through the shared loop (CPU-sized configs)."""

from __future__ import annotations

import pytest
import torch

import translation_kit as kit
from fewgan.models.registry import build_model, load_snapshot
from fewgan.models.specs import model_specs

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_spec_declares_translation_only_and_registers():
    spec = model_specs()["cyclegan"]
    assert spec.capabilities == frozenset({"translates"})
    m = build_model("cyclegan", kit.tiny("cyclegan"), 32)
    assert m.capabilities == frozenset({"translates"}) and m.ema_networks == ()
    assert m.networks == ("G_AB", "G_BA", "D_A", "D_B") and m.snapshot_networks == ("G_AB", "G_BA")
    with pytest.raises(TypeError, match="no latents"):
        m.sample_latents(2)


def test_parameter_counts_at_256_equal_the_official_networks():
    """junyanz/pytorch-CycleGAN-and-pix2pix models/networks.py, counted from its definitions:
    ResnetGenerator(3, 3, 64, instance norm, n_blocks=9) = 11,378,179 (convs with bias under instance norm; the
    issue's 11.378 M); NLayerDiscriminator(3, 64, n_layers=3, instance norm) = 2,764,737 (2.765 M)."""
    m = build_model("cyclegan", kit.defaults("cyclegan"), 256)
    d = m.describe()
    assert d["params_G_AB"] == d["params_G_BA"] == 11_378_179
    assert d["params_D_A"] == d["params_D_B"] == 2_764_737


def test_shapes_and_patchgan_receptive_field():
    m = build_model("cyclegan", kit.tiny("cyclegan"), 32).eval()
    a, b = kit.fixed_domains(32)
    with torch.no_grad():
        assert m.translate(a, "AB").shape == a.shape and m.translate(b, "BA").shape == b.shape
        assert m.cycle(a, "AB").shape == a.shape
        assert m.D_A(a).shape == (2, 1, 2, 2)  # 32 / 8 - 2
        out = build_model("cyclegan", kit.tiny("cyclegan"), 128).D_B(torch.zeros(1, 3, 128, 128))
    assert out.shape == (1, 1, 14, 14)
    assert m.D_A.receptive_field() == 70
    with pytest.raises(ValueError, match="direction"):
        m.translate(a, "AC")


def test_image_pool_fills_then_swaps_half_the_time():
    from fewgan.models.translation import ImagePool

    pool = ImagePool(4, (1, 2, 2))
    first = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 2, 2)
    assert torch.equal(pool.query(first), first) and int(pool.count) == 4  # filling: the fakes themselves
    torch.manual_seed(0)
    new = (10 + torch.arange(200.0)).view(200, 1, 1, 1).expand(200, 1, 2, 2)
    out = pool.query(new)
    from_history = int((out[:, 0, 0, 0] != new[:, 0, 0, 0]).sum())
    assert 60 < from_history < 140  # p = 1/2 of returning a stored image
    assert "images" in pool.state_dict() and "count" in pool.state_dict()
    assert torch.equal(ImagePool(0, (1, 2, 2)).query(new), new)  # size 0: no history


def test_learning_rate_is_constant_then_linear_like_lambda_rule():
    m = build_model("cyclegan", kit.tiny("cyclegan", lr=2e-4), 32)
    m.setup(kit.TrainContext(batch_size=1, iterations=200))
    lr = [m.learning_rate("G", s) for s in range(200)]
    assert lr[0] == lr[99] == 2e-4  # --n_epochs 100 constant
    # lambda_rule: 1 - max(0, e + 1 - 100) / 101, epochs read as iterations
    assert lr[100] == pytest.approx(2e-4 * (1 - 1 / 101)) and lr[199] == pytest.approx(2e-4 * (1 - 100 / 101))


def test_cycle_loss_falls_on_a_fixed_batch():
    a, b = kit.fixed_domains(32)
    trainer = kit.trainer_for("cyclegan", kit.tiny("cyclegan"), 32)
    rows = kit.run_steps(trainer, a, b, 12)
    assert [k for k in rows[0] if k.startswith("loss_")] == ["loss_G", "loss_D"]
    first, last = rows[0]["G/cycle"], sum(r["G/cycle"] for r in rows[-3:]) / 3
    assert last < 0.7 * first, (first, last)
    assert {"G/adv", "G/identity", "D/d_A", "D/d_B"} <= set(rows[0])


def test_resume_through_the_shared_loop_is_bit_exact_and_snapshots_translate(tmp_path, monkeypatch):
    from fewgan.models.cyclegan.model import CycleGAN

    kit.serve_toy_domains(monkeypatch, 32)
    params = kit.loop_params("cyclegan", kit.tiny("cyclegan"), 32, {"kind": "domains", "domains": ["cat", "dog"],
                                                                    "edge_fraction": 0.1})
    run = kit.assert_resume_is_bit_exact(tmp_path, monkeypatch, CycleGAN, "cyclegan", params, "discriminator_phase")
    assert [p["name"] for p in run["phases"]] == ["G", "D"] and run["capabilities"] == ["translates"]
    assert run["ema"]["networks"] == [] and "translates" in run["class_use"]
    model, G, meta = load_snapshot(tmp_path / "straight" / "out_dir" / "snapshots" / "snapshot_0000004.pt")
    assert G is model.G_AB and not model.training
    a, _ = kit.fixed_domains(32)
    with torch.no_grad():
        assert model.cycle(a, "AB").shape == a.shape and model.translate(a, "BA").shape == a.shape


def test_translation_model_refuses_a_dataset_without_domains(tmp_path, monkeypatch):
    from fewgan.data.pairs import TranslationConfigError
    from fewgan.train import loop

    kit.serve_toy_domains(monkeypatch, 32)
    params = kit.loop_params("cyclegan", kit.tiny("cyclegan"), 32, {"kind": "none", "domains": None,
                                                                    "edge_fraction": 0.1})
    with pytest.raises(TranslationConfigError, match=r"datasets\.toy\.translation\.kind"):
        loop.train(params, "toy", "cyclegan", threads=1, **kit.train_dirs(tmp_path))


def test_translation_models_in_an_experiment_have_every_cell_stage():
    """Stage.needs: score, select, evaluate need `latents` or `translates`, invert `invertible` or `translates`
    (the cycle / reconstruction errors); a translation model's cell has them all, in the experiment's order."""
    from fewgan.stages import stage_models

    planned = stage_models(["fastgan", "cyclegan", "pix2pix", "nicegan", "dcgan"])
    everyone = ["fastgan", "cyclegan", "pix2pix", "nicegan", "dcgan"]
    assert planned == {"score": everyone, "select": everyone, "invert": everyone, "evaluate": everyone}
    latent_only = stage_models(["dcgan"])
    assert latent_only == {"score": ["dcgan"], "select": ["dcgan"], "invert": ["dcgan"], "evaluate": ["dcgan"]}


def test_too_few_images_of_a_domain_are_drawn_with_replacement_and_named(tmp_path, monkeypatch):
    from fewgan.train import loop

    kit.serve_toy_domains(monkeypatch, 32, n_a=5, n_b=1)
    params = kit.loop_params("cyclegan", kit.tiny("cyclegan"), 32, {"kind": "domains", "domains": ["cat", "dog"],
                                                                    "edge_fraction": 0.1}, iterations=1)
    run = loop.train(params, "toy", "cyclegan", threads=1, **kit.train_dirs(tmp_path)).run
    assert run["fallbacks"] == ["only 1 training images of domain B for a per-process batch of 2: each batch is "
                                "drawn with replacement"]
