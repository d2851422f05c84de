"""pix2pix (fewgan.models.pix2pix): parameter counts of the official networks, the 70 x 70 PatchGAN on the pair
(measured by gradients), L1 learning, inference modes and bit-exact resume on edge pairs (CPU-sized)."""

from __future__ import annotations

import pytest
import torch

import translation_kit as kit
from fewgan.models.registry import build_model, load_snapshot

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _count(m):
    return sum(p.numel() for p in m.parameters())


def test_parameter_counts_at_256_equal_the_official_networks():
    """junyanz/pytorch-CycleGAN-and-pix2pix models/networks.py, counted from its definitions:
    UnetGenerator(3, 3, 8, 64, BatchNorm, dropout) = 54,413,955 (54.414 M; the 54.408 M printed in the
    repository's issue #1152 is the 1-channel configuration: 54,407,809, checked below);
    NLayerDiscriminator(6, 64, n_layers=3, BatchNorm) = 2,768,705 (2.769 M)."""
    m = build_model("pix2pix", kit.defaults("pix2pix"), 256)
    d = m.describe()
    assert d["params_G"] == 54_413_955 and d["params_D"] == 2_768_705
    from fewgan.models.pix2pix.nets import UnetGenerator

    assert _count(UnetGenerator(8, 64, 0.5, in_channels=1, out_channels=1)) == 54_407_809
    assert m.snapshot_networks == ("G",) and m.paired and m.directions == ("AB",)
    assert sum(isinstance(x, torch.nn.Dropout) for x in m.G.modules()) == 3  # num_downs - 5 inner levels


def test_patchgan_receptive_field_is_70_from_the_stack_and_from_gradients():
    """One output logit's gradient with respect to the input is non-zero on exactly a 70 x 70 window (eval
    mode: BatchNorm uses its running statistics, so nothing couples distant pixels)."""
    m = build_model("pix2pix", kit.tiny("pix2pix"), 32)
    assert m.D.receptive_field() == 70
    D = m.D.eval()
    x = torch.randn(1, 6, 128, 128, requires_grad=True)
    out = D(x)
    assert out.shape == (1, 1, 14, 14)
    out[0, 0, 7, 7].backward()
    rows = x.grad.abs().sum(dim=(0, 1, 3)).nonzero().flatten()
    cols = x.grad.abs().sum(dim=(0, 1, 2)).nonzero().flatten()
    assert int(rows[-1] - rows[0] + 1) == 70 and int(cols[-1] - cols[0] + 1) == 70


def test_shapes_directions_and_inference_modes():
    m = build_model("pix2pix", kit.tiny("pix2pix"), 64)  # 6 levels: one with dropout
    a, _ = kit.fixed_domains(64, n=3)
    m.eval()
    running = {k: v.clone() for k, v in m.G.named_buffers()}
    torch.manual_seed(1)
    y1 = m.translate(a, "AB")
    torch.manual_seed(2)
    y2 = m.translate(a, "AB")
    assert y1.shape == a.shape and not torch.equal(y1, y2)  # paper mode: dropout at test time
    assert all(torch.equal(v, running[k]) for k, v in m.G.named_buffers())  # running statistics untouched
    assert not m.G.training
    e = build_model("pix2pix", kit.tiny("pix2pix", inference="eval"), 64).eval()
    assert torch.equal(e.translate(a, "AB"), e.translate(a, "AB"))  # eval mode: deterministic
    with pytest.raises(ValueError, match="translates AB"):
        m.translate(a, "BA")
    with pytest.raises(ValueError, match="no cycle"):
        m.cycle(a, "AB")


def test_l1_falls_on_a_fixed_pair():
    a, b = kit.fixed_domains(32)
    trainer = kit.trainer_for("pix2pix", kit.tiny("pix2pix"), 32)
    rows = kit.run_steps(trainer, a, b, 12)
    assert [k for k in rows[0] if k.startswith("loss_")] == ["loss_D", "loss_G"]
    first, last = rows[0]["G/l1"], sum(r["G/l1"] for r in rows[-3:]) / 3
    assert last < 0.85 * first, (first, last)  # measured: 0.281 -> 0.211


def test_resume_on_edge_pairs_is_bit_exact_and_pairs_stay_aligned(tmp_path, monkeypatch):
    from fewgan.models.pix2pix.model import Pix2Pix

    kit.serve_toy_domains(monkeypatch, 32)
    edges = {"kind": "edges", "domains": None, "edge_fraction": 0.1}
    params = kit.loop_params("pix2pix", kit.tiny("pix2pix"), 32, edges)
    params["train"]["xflip"] = True  # a pair is flipped together
    seen = []
    original = Pix2Pix.discriminator_phase

    def spy(self, nets, batch, step, augment):
        seen.append((batch.reals.clone(), batch.reals_b.clone()))
        return original(self, nets, batch, step, augment)

    monkeypatch.setattr(Pix2Pix, "discriminator_phase", spy)
    from fewgan.train import loop

    loop.train(params, "toy", "pix2pix", threads=1, **kit.train_dirs(tmp_path / "spy"))
    monkeypatch.setattr(Pix2Pix, "discriminator_phase", original)
    from fewgan.data.pairs import edge_map
    from fewgan.images import from_uint8, to_uint8

    # the FLOP count runs the phase once on random images (fewgan.train.flops): keep the data's batches only
    seen = [(a, b) for a, b in seen if torch.equal(from_uint8(to_uint8(b)), b)]
    assert len(seen) == 4
    for a, b in seen:  # every input is the edge map of its own target, flips included
        assert torch.equal(from_uint8(edge_map(to_uint8(b), 0.1)), a)
    run = kit.assert_resume_is_bit_exact(tmp_path, monkeypatch, Pix2Pix, "pix2pix", params, "generator_phase")
    assert run["params_G"] > 0 and run["ema"]["networks"] == []
    model, G, _ = load_snapshot(tmp_path / "straight" / "out_dir" / "snapshots" / "snapshot_0000004.pt")
    assert G is model.G and model.translate(torch.zeros(1, 3, 32, 32), "AB").shape == (1, 3, 32, 32)


def test_pix2pix_refuses_unpaired_domains(tmp_path, monkeypatch):
    from fewgan.data.pairs import TranslationConfigError
    from fewgan.train import loop

    kit.serve_toy_domains(monkeypatch, 32)
    params = kit.loop_params("pix2pix", kit.tiny("pix2pix"), 32, {"kind": "domains", "domains": ["cat", "dog"],
                                                                  "edge_fraction": 0.1})
    with pytest.raises(TranslationConfigError, match="aligned pairs"):
        loop.train(params, "toy", "pix2pix", threads=1, **kit.train_dirs(tmp_path))
