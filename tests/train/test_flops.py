"""The compute axis: FLOPs counted per training iteration (fewgan.train.flops) and train.budget."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import fewgan_train_testkit as kit
from fewgan.models.base import TrainContext
from fewgan.train import loop
from fewgan.train.flops import StepFlops, count_flops
from fewgan.train.trainer import Trainer


def test_flop_count_of_a_tiny_conv_net_equals_the_hand_count():
    N, C_in, C_out, H, k, hidden = 2, 3, 8, 16, 3, 10
    net = nn.Sequential(nn.Conv2d(C_in, C_out, k, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(C_out * H * H, hidden))
    x = torch.randn(N, C_in, H, H)  # the input needs no gradient: the conv's backward computes its weight gradient only
    conv = 2 * N * C_out * H * H * C_in * k * k  # 2 FLOPs per multiply-add, one per output element and kernel tap
    linear = 2 * N * (C_out * H * H) * hidden
    assert count_flops(lambda: net(x)) == conv + linear
    # backward: the conv's weight gradient costs its forward again; the linear layer's input and weight gradients
    # cost two forwards
    assert count_flops(lambda: net(x).sum().backward()) == (conv + linear) + conv + 2 * linear


def test_step_flops_count_every_phase_and_leave_training_untouched():
    torch.manual_seed(0)
    gan = kit.TinyGAN({}, kit.RES)
    trainer = Trainer(gan, TrainContext(batch_size=4, iterations=4))
    before = {k: v.clone() for k, v in gan.state_dict().items()}
    rng = torch.get_rng_state()
    flops = StepFlops(trainer, 4, kit.RES, lambda t: t)
    per_step = flops(0)
    assert flops(3) == per_step and list(flops.classes()) == ["None"]  # one cost class, measured once
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in gan.state_dict().items())
    # one D step (D on reals and on fakes, G forward without grad) and one G step, forward and backward
    G_fwd = count_flops(lambda: gan.G(torch.randn(4, gan.z_dim)))
    D_fwd = count_flops(lambda: gan.D(torch.rand(4, 3, kit.RES, kit.RES)))
    assert G_fwd > 0 and D_fwd > 0 and per_step > 2 * D_fwd + G_fwd


def test_stylegan2_and_progan_name_their_cost_classes():
    from fewgan.models.progan.model import ProGAN
    from fewgan.models.stylegan2.model import StyleGAN2
    from fewgan.params import model_cfg

    sg = StyleGAN2(model_cfg("stylegan2", {"r1_interval": 4, "pl_weight": 0}), 32)
    assert [sg.cost_key(s) for s in range(5)] == [(True, False), (False, False), (False, False), (False, False),
                                                   (True, False)]
    pg = ProGAN(model_cfg("progan", {"start_resolution": 8, "stabilize_images": 8, "fade_images": 8}), 16)
    pg.setup(TrainContext(batch_size=4, iterations=10))
    assert [pg.cost_key(s) for s in (0, 1, 2, 3, 4, 5)] == [(3, False), (3, False), (3, False), (4, True), (4, False),
                                                           (4, False)]


@pytest.mark.parametrize("budget, stop", [({"kimg": 0.012}, 3), ({"seconds": 1e-9}, 1), (None, 6)])
def test_budget_stops_training_early_and_says_so(toy_data, dirs, budget, stop):
    res = loop.train(kit.make_params(budget=budget), kit.DATASET, kit.MODEL, threads=1, **dirs)
    run = json.loads((dirs["out_dir"] / "run.json").read_text())
    assert run["iterations"] == stop == res.run["iterations"]
    assert run["budget"] == {"setting": budget, "max_iterations": 6, "reached": budget is not None}
    assert run["snapshots"][-1]["iteration"] == stop  # the last iteration is always a snapshot
    assert run["compute"]["kimg"] == stop * 4 / 1000


def test_flops_budget_stops_at_the_first_iteration_that_spends_it(toy_data, dirs):
    probe = loop.train(kit.make_params(iterations=1), kit.DATASET, kit.MODEL, threads=1, **dirs).run
    per_it = probe["compute"]["flops"]
    run = loop.train(kit.make_params(budget={"flops": 2.5 * per_it}), kit.DATASET, kit.MODEL, threads=1, **dirs).run
    assert run["iterations"] == 3 and run["compute"]["flops"] == 3 * per_it


def test_regularised_steps_are_counted_with_their_gradient_penalty():
    """StyleGAN2's lazy R1 runs autograd.grad on the reals (and ProGAN's WGAN-GP on the mixes): the counter must
    survive it, and an R1 step costs more than a plain one."""
    from fewgan.params import resolve

    smoke = resolve("smoke")[0]["models"]["stylegan2"]
    torch.manual_seed(0)
    trainer = Trainer(kit_build("stylegan2", dict(smoke, r1_interval=2, pl_weight=0), 32), TrainContext(4, 4))
    flops = StepFlops(trainer, 4, 32, lambda t: t)
    with_r1, plain = flops(0), flops(1)
    assert with_r1 > plain > 0 and len(flops.classes()) == 2
    pg = Trainer(kit_build("progan", dict(resolve("smoke")[0]["models"]["progan"]), 32), TrainContext(4, 4))
    assert StepFlops(pg, 4, 32, lambda t: t)(0) > 0


def kit_build(name: str, cfg: dict, resolution: int):
    from fewgan.models.registry import build_model

    return build_model(name, cfg, resolution)
