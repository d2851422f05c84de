"""SWD and MS-SSIM against independent numpy references written from ProGAN's published description
(same patches, directions and pairs), plus behaviour checks."""

from __future__ import annotations

import math
import numpy as np
import pytest
import scipy.ndimage
import scipy.signal
import torch

from fewgan.metrics import msssim as M
from fewgan.metrics import swd as S


def _imgs(n, res, seed):
    """Smooth-ish random uint8 images (blurred noise + colour offsets)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, res // 4, res // 4, generator=g)
    x = torch.nn.functional.interpolate(x, size=(res, res), mode="bilinear", align_corners=False)
    x = 0.7 * x + 0.3 * torch.rand(n, 3, res, res, generator=g)
    return (x * 255).round().clamp(0, 255).to(torch.uint8)


# ---------------------------------------------------------------- numpy reference: SWD (ProGAN, App. D)
_K = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]).astype(np.float64) / 256.0


def ref_pyramid(x, levels):
    """Laplacian pyramid: mirror-boundary binomial blur, decimate; up = zero insert + 4x kernel."""
    def blur(img, gain):
        return scipy.ndimage.convolve(img, (_K * gain)[None, None], mode="mirror")
    pyr = [x.astype(np.float64)]
    for _ in range(1, levels):
        low = blur(pyr[-1], 1.0)[:, :, ::2, ::2]
        up = np.zeros_like(pyr[-1])
        up[:, :, ::2, ::2] = low
        pyr[-1] = pyr[-1] - blur(up, 4.0)
        pyr.append(low)
    return pyr


def ref_descriptors(level, img, ys, xs, p):
    out = np.empty((len(img), 3, p, p))
    for k in range(len(img)):
        out[k] = level[img[k], :, ys[k]:ys[k] + p, xs[k]:xs[k] + p]
    for c in range(3):
        mu, sd = out[:, c].mean(), out[:, c].std()
        out[:, c] = (out[:, c] - mu) / sd
    return out.reshape(len(img), -1)


def ref_swd(a, b, dirs):
    vals = []
    for r in range(dirs.shape[0]):
        pa, pb = np.sort(a @ dirs[r], axis=0), np.sort(b @ dirs[r], axis=0)
        vals.append(np.mean(np.abs(pa - pb)))
    return float(np.mean(vals))


def test_swd_matches_numpy_reference_on_same_patches_and_directions():
    real, fake = _imgs(6, 64, 1), _imgs(10, 64, 2)
    res = S.resolutions(64)
    assert res == [64, 32, 16]
    n_desc = 6 * 20
    g = torch.Generator().manual_seed(3)
    ours_pyr_r = S.laplacian_pyramid(real.double(), len(res))
    ours_pyr_f = S.laplacian_pyramid(fake.double(), len(res))
    ref_pyr_r = ref_pyramid(real.numpy(), len(res))
    ref_pyr_f = ref_pyramid(fake.numpy(), len(res))
    for lo, lr in zip(ours_pyr_r, ref_pyr_r):
        assert np.allclose(lo.numpy(), lr, atol=1e-9)
    for lod, r in enumerate(res):
        pos = []
        for n in (6, 10):
            counts = S.patches_per_image(n, n_desc)
            assert counts.sum() == n_desc and counts.max() - counts.min() <= 1
            img = torch.repeat_interleave(torch.arange(n), counts)
            ys = torch.randint(0, r - 7 + 1, (n_desc,), generator=g)
            xs = torch.randint(0, r - 7 + 1, (n_desc,), generator=g)
            pos.append((img, ys, xs))
        da = S.normalize_descriptors(S.patches_at(ours_pyr_r[lod].float(), *pos[0], 7))
        db = S.normalize_descriptors(S.patches_at(ours_pyr_f[lod].float(), *pos[1], 7))
        dirs = S.random_directions(147, 32, 4, g)
        ours = S.sliced_wasserstein(da, db, dirs)
        ra = ref_descriptors(ref_pyr_r[lod], *(t.numpy() for t in pos[0]), 7)
        rb = ref_descriptors(ref_pyr_f[lod], *(t.numpy() for t in pos[1]), 7)
        want = ref_swd(ra, rb, dirs.double().numpy())
        assert ours == pytest.approx(want, rel=1e-4)


def test_swd_grows_with_blur_and_colour_shift_and_floor_is_small():
    real, other = _imgs(32, 32, 5), _imgs(32, 32, 6)  # two samples of one distribution
    cfg = {"patches_per_image": 128, "directions": 32, "repeats": 2}

    # colour shift = channel mixing (a global per-channel offset or gain is removed by the per-set
    # channel normalisation, exactly as in ProGAN)
    def mix(x, t):
        return ((1 - t) * x.float() + t * x[:, [1, 2, 0]].float()).round().to(torch.uint8)

    base = S.swd(real, other, cfg=cfg, seed=0)
    shifted = [S.swd(real, mix(other, t), cfg=cfg, seed=0) for t in (0.25, 0.5)]
    assert base["mean"] < shifted[0]["mean"] < shifted[1]["mean"]
    assert base["n_desc"] == 32 * 128

    k = torch.ones(3, 1, 3, 3) / 9

    def blur(x, times):
        y = x.float()
        for _ in range(times):
            y = torch.nn.functional.conv2d(torch.nn.functional.pad(y, (1, 1, 1, 1), mode="reflect"), k, groups=3)
        return y.round().clamp(0, 255).to(torch.uint8)

    blurred = [S.swd(real, blur(other, t), cfg=cfg, seed=0)["levels"]["32"] for t in (1, 3)]
    assert base["levels"]["32"] < blurred[0] < blurred[1]
    floor = S.swd_real_floor(real, cfg=cfg, seed=0)
    assert floor["n_desc"] == 32 * 128 and floor["halves"] == 16
    # the finest level's floor sits near the same-distribution value, far below the perturbed ones
    assert floor["levels"]["32"] < 0.8 * shifted[1]["levels"]["32"]
    assert floor["levels"]["32"] < 0.5 * blurred[0]


def test_swd_equal_counts_streaming_and_seeding():
    real, fake = _imgs(4, 32, 7), _imgs(9, 32, 8)
    cfg = {"patches_per_image": 16, "directions": 16, "repeats": 2, "batch_size": 3}
    a = S.swd(real, fake, cfg=cfg, seed=1)
    assert a["n_desc"] == 4 * 16 and a["resolutions"] == [32, 16] and set(a["levels"]) == {"32", "16"}
    b = S.swd(real, (fake[i:i + 2] for i in range(0, 9, 2)), n_fake=9, cfg=cfg, seed=1)
    assert a["levels"] == b["levels"]  # batch boundaries do not change the draw
    c = S.swd(real, fake, cfg=cfg, seed=2)
    assert c["levels"] != a["levels"]
    assert S.swd(real, real, cfg=cfg, seed=1)["mean"] < a["mean"]
    with pytest.raises(ValueError, match="odd"):
        S.swd(real, fake, cfg={"patch_size": 6})


# ---------------------------------------------------------------- numpy reference: MS-SSIM (Wang 2003)
def ref_window(size, sigma):
    radius = size // 2
    if size % 2:
        coords = np.arange(-radius, radius + 1, dtype=np.float64)
    else:
        coords = np.arange(-radius, radius, dtype=np.float64) + 0.5
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    w = np.exp(-(xx ** 2 + yy ** 2) / (2 * sigma ** 2))
    return w / w.sum()


def ref_msssim(a, b):
    """One pair, HWC float64 0..255, straight from the description (loops over channels)."""
    weights = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    ss, cs = [], []
    x, y = a.astype(np.float64), b.astype(np.float64)
    for level in range(5):
        size = min(11, x.shape[0], x.shape[1])
        win = ref_window(size, size * 1.5 / 11)
        smap, cmap = [], []
        for ch in range(x.shape[2]):
            f = lambda im: scipy.signal.correlate2d(im, win, mode="valid")  # noqa: E731
            mx, my = f(x[:, :, ch]), f(y[:, :, ch])
            sxx = f(x[:, :, ch] ** 2) - mx ** 2
            syy = f(y[:, :, ch] ** 2) - my ** 2
            sxy = f(x[:, :, ch] * y[:, :, ch]) - mx * my
            cmap.append((2 * sxy + c2) / (sxx + syy + c2))
            smap.append((2 * mx * my + c1) / (mx ** 2 + my ** 2 + c1) * cmap[-1])
        ss.append(max(np.mean(smap), 0.0))
        cs.append(max(np.mean(cmap), 0.0))
        h, w = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
        x = (x[0:h:2, 0:w:2] + x[1:h:2, 0:w:2] + x[0:h:2, 1:w:2] + x[1:h:2, 1:w:2]) / 4
        y = (y[0:h:2, 0:w:2] + y[1:h:2, 0:w:2] + y[0:h:2, 1:w:2] + y[1:h:2, 1:w:2]) / 4
    return float(np.prod(np.array(cs[:-1]) ** weights[:-1]) * ss[-1] ** weights[-1])


@pytest.mark.parametrize("res", [32, 176])
def test_msssim_matches_numpy_reference(res):
    # 176 px: all five scales keep the 11-px window; 32 px: it shrinks to 8, 4 and 2 px (even windows)
    a, b = _imgs(3, res, 11), _imgs(3, res, 12)
    b[2] = a[2] // 2 + b[2] // 2  # one similar pair
    ours = M.msssim_pairs(a, b)
    for k in range(3):
        want = ref_msssim(a[k].permute(1, 2, 0).numpy(), b[k].permute(1, 2, 0).numpy())
        assert ours[k].item() == pytest.approx(want, rel=1e-4)
    assert ours[2] > ours[0]


def test_msssim_identity_pairs_and_streaming():
    a = _imgs(6, 32, 13)
    assert torch.allclose(M.msssim_pairs(a, a), torch.ones(6, dtype=torch.float64), atol=1e-6)
    # stream of independent fakes: consecutive pairs, across uneven batch boundaries
    stream = [a[:3], a[3:4], a[4:]]
    got = M.msssim_fakes(stream, pairs=10)
    want = M.msssim_pairs(a[0::2], a[1::2]).mean().item()
    assert got["pairs"] == 3 and got["msssim"] == pytest.approx(want, rel=1e-9)
    assert M.msssim_fakes([a], pairs=2)["pairs"] == 2
    i, j = M.all_or_random_pairs(6, 100, 0)
    assert i.numel() == 15 and bool((i < j).all())
    i2, j2 = M.all_or_random_pairs(6, 5, 0)
    assert i2.numel() == 5 and len(set(zip(i2.tolist(), j2.tolist()))) == 5
    r = M.msssim_set(a, pairs=100)
    assert r["pairs"] == 15 and r["method"] == "all distinct pairs" and 0 < r["msssim"] < 1
    with pytest.raises(ValueError, match="equal shape"):
        M.msssim_pairs(a[:2], a[:3])


def test_swd_of_a_constant_generator_is_large_not_nan():
    """A collapsed generator emitting one flat image has zero descriptor spread; ProGAN's code divides by it.
    fewgan leaves such a channel unscaled, so the distance is finite and far above a real-vs-real one."""
    from fewgan.metrics.swd import swd

    g = torch.Generator().manual_seed(0)
    real = (torch.rand(8, 3, 32, 32, generator=g) * 255).to(torch.uint8)
    flat = torch.full((8, 3, 32, 32), 128, dtype=torch.uint8)
    cfg = {"patches_per_image": 16, "directions": 16, "repeats": 2}
    d_flat = swd(real, flat, cfg=cfg)["mean"]
    d_real = swd(real, (torch.rand(8, 3, 32, 32, generator=g) * 255).to(torch.uint8), cfg=cfg)["mean"]
    assert math.isfinite(d_flat) and d_flat > 3 * d_real
