"""The real-statistics cache (fewgan.metrics.realcache): values read back equal the computed ones, and any change
of the images, the settings or the code computes them again."""

from __future__ import annotations

import logging

import pytest
import torch

from fewgan.metrics import msssim as M
from fewgan.metrics import realcache as R
from fewgan.metrics import swd as S


@pytest.fixture()
def reals() -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    return (torch.rand(10, 3, 32, 32, generator=g) * 255).to(torch.uint8)


def counted(fn):
    calls = []

    def compute():
        calls.append(1)
        return fn()
    return compute, calls


def test_the_floor_and_the_real_pairs_read_back_equal_the_computed_ones(tmp_path, reals, caplog):
    cfg = {"patches_per_image": 8, "directions": 16, "repeats": 2, "min_resolution": 16}
    floor, floor_calls = counted(lambda: S.swd_real_floor(reals, n_desc=40, cfg=cfg, seed=1))
    pairs, pair_calls = counted(lambda: M.msssim_set(reals, 20, seed=1, keep_values=True))
    first = R.cached(tmp_path, "swd_real_floor", reals, {"n_desc": 40, "cfg": cfg, "seed": 1}, floor, (S,))
    with caplog.at_level(logging.INFO, logger="fewgan.metrics.realcache"):
        again = R.cached(tmp_path, "swd_real_floor", reals, {"n_desc": 40, "cfg": cfg, "seed": 1}, floor, (S,))
    assert floor_calls == [1] and "read from" in caplog.text
    assert again == first and again["levels"] == S.swd_real_floor(reals, n_desc=40, cfg=cfg, seed=1)["levels"]
    a = R.cached(tmp_path, "msssim_real", reals, {"pairs": 20, "seed": 1}, pairs, (M,))
    b = R.cached(tmp_path, "msssim_real", reals, {"pairs": 20, "seed": 1}, pairs, (M,))
    assert pair_calls == [1] and torch.equal(a["values"], b["values"]) and a["msssim"] == b["msssim"]
    assert len(list(tmp_path.glob("real-*.pt"))) == 2


def test_other_images_settings_or_code_compute_again(tmp_path, reals, monkeypatch):
    value, calls = counted(lambda: {"mean": float(reals.float().mean())})
    R.cached(tmp_path, "stat", reals, {"seed": 1}, value, (S,))
    R.cached(tmp_path, "stat", reals, {"seed": 2}, value, (S,))                 # settings
    other = reals.clone()
    other[0, 0, 0, 0] ^= 1
    R.cached(tmp_path, "stat", other, {"seed": 1}, value, (S,))                 # one pixel
    R.cached(tmp_path, "stat", reals, {"seed": 1}, value, (M,))                 # the computing module
    threads = torch.get_num_threads()
    torch.set_num_threads(threads + 1)
    try:
        R.cached(tmp_path, "stat", reals, {"seed": 1}, value, (S,))             # another thread count
    finally:
        torch.set_num_threads(threads)
    monkeypatch.setattr(R, "_code_digest", lambda modules: "edited")
    R.cached(tmp_path, "stat", reals, {"seed": 1}, value, (S,))                 # its code edited
    assert len(calls) == 6
    R.cached(None, "stat", reals, {"seed": 1}, value, (S,))                     # no cache folder: always computed
    assert len(calls) == 7


def test_a_damaged_entry_is_recomputed_and_said(tmp_path, reals, caplog):
    value, calls = counted(lambda: {"mean": 1.5})
    R.cached(tmp_path, "stat", reals, {}, value, (S,))
    (entry,) = tmp_path.glob("real-stat-*.pt")
    entry.write_bytes(entry.read_bytes()[:-7])
    with caplog.at_level(logging.WARNING, logger="fewgan.metrics.realcache"):
        assert R.cached(tmp_path, "stat", reals, {}, value, (S,)) == {"mean": 1.5}
    assert len(calls) == 2 and "unreadable" in caplog.text
    assert R.cached(tmp_path, "stat", reals, {}, value, (S,)) == {"mean": 1.5} and len(calls) == 2  # rewritten


def test_a_kind_that_is_not_a_plain_name_is_refused(tmp_path, reals):
    with pytest.raises(ValueError, match="plain name"):
        R.cached(tmp_path, "../escape", reals, {}, lambda: {}, (S,))
