"""The seeded random LPIPS (no pretrained VGG16 here) is built once and read back equal, tensor for tensor."""

from __future__ import annotations

import logging

import torch

from fewgan.nets import lpips as L


def _params(tmp_path) -> dict:
    return {"evaluation": {"weights": {"cache_dir": str(tmp_path / "weights")}}}


def _assert_same(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and len(sa) > 20
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k


def test_read_back_equals_the_seeded_build_and_leaves_the_rng_alone(tmp_path):
    params = _params(tmp_path)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    reference = L._seeded_build("vgg")
    path = L.random_backbone_file("vgg", params)
    assert not path.exists()
    first = L.random_backbone("vgg", params)  # builds and writes the file
    assert path.is_file() and f"seed{L.RANDOM_BACKBONE_SEED}" in path.name and torch.__version__ in path.name
    second = L.random_backbone("vgg", params)  # reads it back (meta build + load)
    assert torch.equal(torch.get_rng_state(), before)
    _assert_same(reference, first)
    _assert_same(reference, second)
    assert all(not t.is_meta for t in list(second.parameters()) + list(second.buffers()))
    x, y = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(reference.eval()(x, y), second.eval()(x, y))
    # the distance fewgan builds from it: the same values as lpips' own module
    dist, desc = L.build_lpips("vgg", {"evaluation": {"weights": {"cache_dir": str(tmp_path / "weights"),
                                                                   "allow_untrained_fallback": True,
                                                                   "download": False}}})
    if desc["backbone"].get("path") is None:  # no pretrained VGG16 on this machine: the random backbone
        with torch.no_grad():
            assert torch.equal(dist(x, y), reference(x, y).reshape(-1))


def test_a_damaged_file_is_rebuilt_and_said(tmp_path, caplog):
    params = _params(tmp_path)
    path = L.random_backbone_file("vgg", params)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    with caplog.at_level(logging.WARNING):
        model = L.random_backbone("vgg", params)
    assert "not usable" in caplog.text and str(path) in caplog.text
    _assert_same(L._seeded_build("vgg"), model)
    assert path.stat().st_size > 10_000_000  # rewritten whole (VGG16's convolutions, float32)
