"""DiffAugment: shapes, zero padding, cutout geometry, RNG reproducibility, identity policy, and agreement
with a naive per-pixel oracle written from the paper's definitions (Zhao et al. 2020)."""

from __future__ import annotations

import pytest
import torch

from fewgan.train.diffaugment import augment, parse_policy


def _batch(b=5, c=3, h=16, w=16, seed=0):
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _oracle(x: torch.Tensor, policy: str, g: torch.Generator) -> torch.Tensor:
    """Per-image, per-pixel loops; random draws in the reference's order (see diffaugment.py)."""
    B, C, H, W = x.shape
    x = x.clone()
    for name in parse_policy(policy):
        if name == "color":
            rb = torch.rand(B, generator=g)
            x = torch.stack([x[b] + (rb[b] - 0.5) for b in range(B)])
            rs = torch.rand(B, generator=g)
            x = torch.stack([(x[b] - x[b].mean(0, keepdim=True)) * (rs[b] * 2) + x[b].mean(0, keepdim=True)
                             for b in range(B)])
            rc = torch.rand(B, generator=g)
            x = torch.stack([(x[b] - x[b].mean()) * (rc[b] + 0.5) + x[b].mean() for b in range(B)])
        elif name == "translation":
            dy = torch.randint(-(H // 8), H // 8 + 1, (B,), generator=g)
            dx = torch.randint(-(W // 8), W // 8 + 1, (B,), generator=g)
            out = torch.zeros_like(x)
            for b in range(B):
                for i in range(H):
                    for j in range(W):
                        si, sj = i + int(dy[b]), j + int(dx[b])
                        if 0 <= si < H and 0 <= sj < W:
                            out[b, :, i, j] = x[b, :, si, sj]
            x = out
        elif name.startswith("cutout"):
            r = float(name.partition(":")[2] or 0)  # cutout:R -> int(size * R + 0.5) (Projected GAN diffaug.py)
            ch, cw = (int(H * r + 0.5), int(W * r + 0.5)) if r else (H // 2, W // 2)
            cy = torch.randint(0, H + (1 - ch % 2), (B,), generator=g)
            cx = torch.randint(0, W + (1 - cw % 2), (B,), generator=g)
            for b in range(B):
                top, left = int(cy[b]) - ch // 2, int(cx[b]) - cw // 2
                for i in range(max(top, 0), min(top + ch, H)):
                    for j in range(max(left, 0), min(left + cw, W)):
                        x[b, :, i, j] = 0
    return x


@pytest.mark.parametrize("policy", ["color", "translation", "cutout", "color,translation,cutout", "translation,color",
                                    "cutout:0.2", "color,translation,cutout:0.2"])
@pytest.mark.parametrize("hw", [(16, 16), (12, 20)])
def test_matches_naive_oracle(policy, hw):
    x = _batch(h=hw[0], w=hw[1])
    out = augment(x, policy, torch.Generator().manual_seed(7))
    ref = _oracle(x, policy, torch.Generator().manual_seed(7))
    assert out.shape == x.shape and out.dtype == x.dtype
    if "color" not in policy:  # translation and cutout copy or zero pixels: exact on any CPU
        assert torch.equal(out, ref)
        return
    # colour: the oracle takes each image's mean with x[b].mean(), the implementation with one batched
    # x.mean(dim=[1, 2, 3]): two reductions whose summation order is the kernel's (8 lanes with AVX2, 16 with
    # AVX-512), so the means may differ in their last bits and each of the three colour steps may round an
    # output the other way. Equal here (AVX2); |x| <= 2.7 in these batches (ulp 2.4e-7), so the 1e-6 this
    # allowed was 4 ulps; 1e-5 is ~40. A wrong factor or mean is off by far more (the factors are U(0, 2)).
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)


def test_empty_policy_is_identity_and_draws_nothing():
    x, g = _batch(), torch.Generator().manual_seed(1)
    before = g.get_state()
    assert augment(x, "", g) is x
    assert augment(x, None, g) is x
    assert torch.equal(g.get_state(), before)


def test_same_rng_state_same_output_and_different_state_differs():
    x = _batch()
    a = augment(x, "color,translation,cutout", torch.Generator().manual_seed(3))
    b = augment(x, "color,translation,cutout", torch.Generator().manual_seed(3))
    c = augment(x, "color,translation,cutout", torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    torch.manual_seed(5)
    d = augment(x, "color,translation", None)  # global CPU generator
    torch.manual_seed(5)
    e = augment(x, "color,translation", None)
    assert torch.equal(d, e)


def test_translation_pads_with_zeros_and_shifts_at_most_one_eighth():
    x = torch.ones(64, 3, 16, 16)
    out = augment(x, "translation", torch.Generator().manual_seed(0))
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    shifts = set()
    for img in out[:, 0]:
        rows = (img.sum(1) > 0).nonzero().flatten()
        cols = (img.sum(0) > 0).nonzero().flatten()
        # the kept region is one contiguous block, the rest is zero
        assert img[rows.min():rows.max() + 1, cols.min():cols.max() + 1].eq(1).all()
        zero_rows, zero_cols = 16 - len(rows), 16 - len(cols)
        assert zero_rows <= 2 and zero_cols <= 2  # 16 // 8 = 2
        shifts.add((zero_rows, zero_cols))
    assert len(shifts) > 3  # shifts actually vary per image


def test_cutout_zeroes_half_size_square_clipped_at_border():
    x = torch.ones(200, 3, 16, 16)
    out = augment(x, "cutout", torch.Generator().manual_seed(0))
    zeros = (out[:, 0] == 0).flatten(1).sum(1)
    assert (zeros <= 64).all() and (zeros > 0).all()  # 8 x 8 at most
    assert (zeros == 64).any() and (zeros < 64).any()  # fully inside sometimes, clipped sometimes
    assert torch.equal(out[:, 0], out[:, 2])  # same mask for every channel


def test_color_ranges():
    x = torch.zeros(500, 3, 4, 4)
    shift = augment(x, "color", torch.Generator().manual_seed(0))[:, :, 0, 0]
    # constant image: saturation/contrast leave it as is, brightness adds U(-0.5, 0.5)
    assert shift.min() >= -0.5 and shift.max() < 0.5 and shift.max() - shift.min() > 0.9


def test_differentiable():
    x = _batch().requires_grad_(True)
    augment(x, "color,translation,cutout", torch.Generator().manual_seed(0)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_bad_policy_names_the_problem():
    with pytest.raises(ValueError, match=r"unknown augmentation.*'colour'"):
        augment(_batch(), "colour,translation")


def test_cutout_ratio_token():
    """`cutout:R`: a square of int(size * R + 0.5) (Projected GAN's rand_cutout ratio 0.2: 13 px at 64 px);
    `cutout:0.5` is the reference's `cutout` at even sizes, draw for draw."""
    x = torch.ones(64, 1, 64, 64)
    out = augment(x, "cutout:0.2", torch.Generator().manual_seed(3))
    zeros = (out == 0).flatten(1).sum(1)
    assert int(zeros.max()) == 13 * 13 and bool((zeros > 0).all())
    inside = [int(z) for z in zeros if z == 13 * 13]
    assert len(inside) > 32  # most centres leave the whole square inside the image
    a = augment(_batch(h=16, w=16), "cutout:0.5", torch.Generator().manual_seed(9))
    b = augment(_batch(h=16, w=16), "cutout", torch.Generator().manual_seed(9))
    assert torch.equal(a, b)
    for bad in ("cutout:0", "cutout:1.0", "cutout:.2", "cutout:0.2x"):
        with pytest.raises(ValueError, match="cutout:R"):
            parse_policy(bad)
