from __future__ import annotations

import pytest
import torch
from torch import nn

from fewgan.train.ema import EMA


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 2))
    net.train()
    net(torch.randn(16, 4) * 3 + 1)  # move BN running stats away from their init
    return net


def _perturb(net: nn.Module, seed: int) -> None:
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p))
    net(torch.randn(16, 4) * 2 - 3)  # new BN stats, num_batches_tracked + 1


@pytest.mark.parametrize("average_buffers", [True, False])
def test_beta_zero_copies_everything_exactly(average_buffers):
    G = _net(0)
    ema = EMA(G, average_buffers)
    _perturb(G, 1)
    ema.update(G, 0.0)
    for (k, a), b in zip(ema.state_dict().items(), G.state_dict().values()):
        assert torch.equal(a, b), k


def test_beta_one_keeps_parameters():
    G = _net(0)
    ema = EMA(G, True)
    before = {k: v.clone() for k, v in ema.state_dict().items()}
    _perturb(G, 1)
    ema.update(G, 1.0)
    for k, p in ema.module.named_parameters():
        assert torch.equal(p, before[k]), k


def test_average_of_parameters_and_buffers():
    G = _net(0)
    ema = EMA(G, average_buffers=True)
    old = {k: v.clone() for k, v in ema.state_dict().items()}
    _perturb(G, 1)
    ema.update(G, 0.9)
    live = G.state_dict()
    for k, v in ema.state_dict().items():
        if v.is_floating_point():  # weights, biases, running_mean, running_var
            torch.testing.assert_close(v, 0.9 * old[k] + 0.1 * live[k], rtol=1e-6, atol=1e-7)
        else:  # num_batches_tracked is copied
            assert torch.equal(v, live[k]), k
    assert not torch.equal(ema.module[1].running_mean, live["1.running_mean"])


def test_parameters_only_copies_buffers_from_live_generator():
    """FastGAN official: averaged parameters next to the live G's current BatchNorm statistics."""
    G = _net(0)
    ema = EMA(G, average_buffers=False)
    old = {k: v.clone() for k, v in ema.state_dict().items()}
    _perturb(G, 1)
    ema.update(G, 0.9)
    live = G.state_dict()
    for k, _ in G.named_buffers():
        assert torch.equal(ema.state_dict()[k], live[k]), k
    for k, _ in G.named_parameters():
        torch.testing.assert_close(ema.state_dict()[k], 0.9 * old[k] + 0.1 * live[k], rtol=1e-6, atol=1e-7)


def test_ema_copy_is_frozen_eval_and_independent():
    G = _net(0)
    ema = EMA(G)
    assert not ema.module.training
    assert all(not p.requires_grad for p in ema.module.parameters())
    with torch.no_grad():
        G[0].weight.add_(1)
    assert not torch.equal(G[0].weight, ema.module[0].weight)
    with pytest.raises(ValueError, match="beta"):
        ema.update(G, 1.5)


def test_spectral_norm_vectors_are_copied_not_averaged():
    """Averaged power-iteration vectors are not unit length; eval-mode spectral norm would mis-scale W."""
    torch.manual_seed(0)
    G = nn.Sequential(nn.utils.spectral_norm(nn.Linear(5, 7)), nn.BatchNorm1d(7))
    G.train()
    ema = EMA(G, average_buffers=True)
    old_mean = ema.module[1].running_mean.clone()
    _ = [G(torch.randn(8, 5) * 3) for _ in range(3)]  # moves u, v and the BN statistics
    ema.update(G, 0.5)
    assert torch.equal(ema.module[0].weight_u, G[0].weight_u)
    assert torch.equal(ema.module[0].weight_v, G[0].weight_v)
    torch.testing.assert_close(ema.module[0].weight_u.norm(), torch.tensor(1.0))
    torch.testing.assert_close(ema.module[1].running_mean, 0.5 * old_mean + 0.5 * G[1].running_mean)


def test_parametrized_spectral_norm_vectors_are_copied():
    """FastGAN uses torch.nn.utils.parametrizations.spectral_norm (buffers ..._u, ..._v)."""
    from torch.nn.utils.parametrizations import spectral_norm

    torch.manual_seed(0)
    G = nn.Sequential(spectral_norm(nn.Linear(5, 7)), nn.BatchNorm1d(7))
    G.train()
    ema = EMA(G, average_buffers=True)
    _ = [G(torch.randn(8, 5) * 3) for _ in range(3)]
    ema.update(G, 0.5)
    live = dict(G.named_buffers())
    for name, buf in ema.module.named_buffers():
        if name.endswith(("_u", "_v")):
            assert torch.equal(buf, live[name]), name
            torch.testing.assert_close(buf.norm(), torch.tensor(1.0))
