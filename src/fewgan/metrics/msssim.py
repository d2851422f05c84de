"""MS-SSIM between pairs of images, as ProGAN computes it for diversity
(tkarras/progressive_growing_of_gans metrics/ms_ssim.py, itself the TensorFlow compression port of
Wang et al. 2003), vectorised in torch.

Per pair, 5 scales with weights [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]:
- Gaussian window 11, sigma 1.5; when a scale is smaller than 11 px the window shrinks to the image size
  and sigma scales with it (size * 1.5 / 11); an even window is centred between pixels (MATLAB fspecial).
- 'valid' convolution per channel; K1 0.01, K2 0.03, range 255.
- ssim and cs maps averaged over H, W and C (channel-averaged).
- 2x2 box down-sampling between scales (an odd row/column is dropped; ProGAN's code requires even sizes).
- negatives clipped to 0; score = prod_{s<5} cs_s^w_s * ssim_5^w_5; averaged over pairs.
Lower = more diverse. fewgan filters 4 planes per channel, p = x + y - 255 and q = x - y, and their squares
(the same sums: see _ssim_cs_hwk; the centred values keep float32 cancellation small), a few pairs at a time
in an (H, W, pair*channel) layout so that the work stays in cache.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
import torch.nn.functional as F

# ProGAN ms_ssim.py msssim(): default weights (Wang et al. 2003), filter_size 11, sigma 1.5, k1, k2, max_val
WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
FILTER_SIZE = 11
FILTER_SIGMA = 1.5
K1, K2 = 0.01, 0.03
MAX_VAL = 255.0


def gaussian_1d(size: int, sigma: float) -> torch.Tensor:
    """1-D factor of ProGAN's _FSpecialGauss (the 2-D window is its outer product), float64."""
    radius = size // 2
    offset = 0.5 if size % 2 == 0 else 0.0
    start, stop = -radius, radius + 1
    if size % 2 == 0:
        stop -= 1
    x = torch.arange(start, stop, dtype=torch.float64) + offset
    g = torch.exp(-(x ** 2) / (2.0 * sigma ** 2))
    return g / g.sum()


def _filter_hwk(m: torch.Tensor, gh: torch.Tensor, gv: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' filtering of K planes stored (H, W, K) contiguous -> (H', W', K) contiguous.
    One (1, K, H, W) channels-last depthwise convolution: several times faster on CPU than a batch of
    3-channel images, and no layout conversion."""
    h, w, k = m.shape
    t = m.view(1, h, w, k).permute(0, 3, 1, 2)
    t = F.conv2d(t, gh.expand(k, 1, 1, gh.shape[-1]), groups=k)
    t = F.conv2d(t, gv.expand(k, 1, gv.shape[-2], 1), groups=k)
    return t.permute(0, 2, 3, 1)[0]


_C1 = 2.0 * (K1 * MAX_VAL) ** 2
_C2 = 2.0 * (K2 * MAX_VAL) ** 2


def _ssim_cs_hwk(x: torch.Tensor, y: torch.Tensor, b: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pair mean SSIM and cs at one scale for b pairs stored (H, W, b*C) (0..255, float32).

    Same quantities as ssim_cs, from 4 filtered planes instead of 5: with p = x + y - 255 and q = x - y,
    s11 + s22 = (var p + var q) / 2 and 2 s12 = (var p - var q) / 2, 2 mx my = ((mx+my)^2 - (mx-my)^2) / 2,
    mx^2 + my^2 = ((mx+my)^2 + (mx-my)^2) / 2 (the 1/2 cancels in each ratio, the constants double)."""
    h, w, k = x.shape
    size = min(FILTER_SIZE, h, w)
    g = gaussian_1d(size, size * FILTER_SIGMA / FILTER_SIZE).to(x.dtype)
    gh, gv = g.view(1, 1, 1, -1), g.view(1, 1, -1, 1)
    p = torch.add(x, y).sub_(2 * 127.5)
    q = torch.sub(x, y)
    mp = _filter_hwk(p, gh, gv)
    ep = _filter_hwk(p.mul_(p), gh, gv)
    mq = _filter_hwk(q, gh, gv)
    eq = _filter_hwk(q.mul_(q), gh, gv)
    vp = torch.addcmul(ep, mp, mp, value=-1.0)
    vq = torch.addcmul(eq, mq, mq, value=-1.0)
    cs = torch.sub(vp, vq).add_(_C2).div_(vp.add_(vq).add_(_C2))
    pp = mp.add_(2 * 127.5).square_()
    qq = mq.square_()
    lum = torch.sub(pp, qq).add_(_C1).div_(pp.add_(qq).add_(_C1))
    n = cs.shape[0] * cs.shape[1] * (k // b)
    cs_mean = cs.view(-1, k).sum(0).double().view(b, -1).sum(1) / n
    ss_mean = lum.mul_(cs).view(-1, k).sum(0).double().view(b, -1).sum(1) / n
    return ss_mean, cs_mean


def ssim_cs(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pair mean SSIM and contrast-structure term at one scale (float (N, C, H, W) images in 0..255)."""
    n, c, h, w = a.shape
    x = a.permute(2, 3, 0, 1).reshape(h, w, n * c).to(torch.float32, memory_format=torch.contiguous_format)
    y = b.permute(2, 3, 0, 1).reshape(h, w, n * c).to(torch.float32, memory_format=torch.contiguous_format)
    return _ssim_cs_hwk(x.contiguous(), y.contiguous(), n)


def _down_hwk(x: torch.Tensor) -> torch.Tensor:
    """2x2 box down-sampling of (H, W, K) (an odd row/column is dropped). Exact in float32 here: the values
    are uint8 sums with at most 2 more fraction bits per scale."""
    h, w, k = x.shape
    x = x[: h // 2 * 2, : w // 2 * 2].reshape(h // 2, 2, w // 2, 2 * k)
    s = torch.add(x[:, 0], x[:, 1]).view(h // 2, w // 2, 2, k)
    return torch.add(s[:, :, 0], s[:, :, 1]).mul_(0.25)


# pairs filtered together: 4 pairs x 3 channels = 12 planes of 256 x 256 (3 MiB per plane set) stay in cache
_CHUNK_PAIRS = 4


def msssim_pairs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """MS-SSIM of each pair (a[i], b[i]); uint8 or 0..255 float (N, C, H, W) -> (N,) float64."""
    if a.shape != b.shape or a.dim() != 4:
        raise ValueError(f"MS-SSIM needs two (N, C, H, W) batches of equal shape, got {tuple(a.shape)}, "
                         f"{tuple(b.shape)}")
    n, c, h, w = a.shape
    if min(h, w) >> (len(WEIGHTS) - 1) < 1:
        raise ValueError(f"images of {a.shape[-1]}px are too small for {len(WEIGHTS)} MS-SSIM scales")
    wts = torch.tensor(WEIGHTS, dtype=torch.float64)
    out = []
    for i in range(0, n, _CHUNK_PAIRS):
        k = min(_CHUNK_PAIRS, n - i)
        # (H, W, pair, channel) float32: every plane operation below runs on contiguous memory
        x = torch.empty(h, w, k, c).copy_(a[i:i + k].permute(2, 3, 0, 1)).view(h, w, k * c)
        y = torch.empty(h, w, k, c).copy_(b[i:i + k].permute(2, 3, 0, 1)).view(h, w, k * c)
        ssims, css = [], []
        for level in range(len(WEIGHTS)):
            s, cs = _ssim_cs_hwk(x, y, k)
            ssims.append(s)
            css.append(cs)
            if level + 1 < len(WEIGHTS):
                x, y = _down_hwk(x), _down_hwk(y)  # ProGAN _HoxDownsample (2x2 box)
        ms = torch.stack(ssims).clamp_min(0.0)  # ProGAN: "Clip to zero. Otherwise we get NaNs."
        mc = torch.stack(css).clamp_min(0.0)
        out.append(torch.prod(mc[:-1] ** wts[:-1, None], dim=0) * ms[-1] ** wts[-1])
    return torch.cat(out)


def all_or_random_pairs(n: int, pairs: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Distinct unordered pairs (i < j) of n images: all of them when `pairs` >= n(n-1)/2, else `pairs`
    drawn without replacement (seeded)."""
    if n < 2:
        raise ValueError("MS-SSIM needs at least 2 images")
    total = n * (n - 1) // 2
    iu = torch.triu_indices(n, n, offset=1) if total <= 20_000_000 else None
    if pairs >= total:
        return iu[0], iu[1]
    g = torch.Generator().manual_seed(int(seed))
    if iu is not None:
        pick = torch.randperm(total, generator=g)[:pairs]
        return iu[0][pick], iu[1][pick]
    i = torch.randint(0, n, (pairs,), generator=g)  # huge n: independent draws, i != j
    j = (i + torch.randint(1, n, (pairs,), generator=g)) % n
    return i, j


def msssim_pair_values(images: torch.Tensor, i: torch.Tensor, j: torch.Tensor, batch_size: int = 100) -> torch.Tensor:
    """MS-SSIM of each pair (images[i[k]], images[j[k]]), float64."""
    return torch.cat([msssim_pairs(images[i[k:k + batch_size]], images[j[k:k + batch_size]])
                      for k in range(0, i.numel(), batch_size)])


def msssim_of_pairs(images: torch.Tensor, i: torch.Tensor, j: torch.Tensor, batch_size: int = 100) -> float:
    return float(msssim_pair_values(images, i, j, batch_size).mean())


def msssim_set(images: torch.Tensor, pairs: int, seed: int = 0, batch_size: int = 100, *,
               keep_values: bool = False) -> dict[str, Any]:
    """Mean MS-SSIM over distinct random pairs of one image set (the real set's own diversity);
    `keep_values`: also the per-pair values ("values", for the bootstrap)."""
    i, j = all_or_random_pairs(images.shape[0], pairs, seed)
    values = msssim_pair_values(images, i, j, batch_size)
    out = {"msssim": float(values.mean()), "pairs": int(i.numel()),
           "method": "all distinct pairs" if i.numel() == images.shape[0] * (images.shape[0] - 1) // 2
           else "distinct random pairs"}
    return out | ({"values": values} if keep_values else {})


class PairStream:
    """MS-SSIM over consecutive pairs (2k, 2k+1) of a stream of independent fakes (ProGAN's feed)."""

    def __init__(self, pairs: int):
        self.pairs = int(pairs)
        self.scores: list[torch.Tensor] = []
        self.done = 0
        self._pending: torch.Tensor | None = None

    def add(self, batch: torch.Tensor) -> None:
        if self.done >= self.pairs:
            return
        if self._pending is not None:
            batch = torch.cat([self._pending, batch])
            self._pending = None
        m = min(batch.shape[0] // 2, self.pairs - self.done)
        if m > 0:
            self.scores.append(msssim_pairs(batch[0:2 * m:2], batch[1:2 * m:2]))
            self.done += m
        if self.done < self.pairs and batch.shape[0] > 2 * m:
            self._pending = batch[2 * m:]

    def values(self) -> torch.Tensor:
        """MS-SSIM of each pair fed so far (float64), in stream order."""
        return torch.cat(self.scores) if self.scores else torch.zeros(0, dtype=torch.float64)

    def result(self) -> dict[str, Any]:
        if self.done == 0:
            raise ValueError("MS-SSIM: no fake pairs were fed")
        return {"msssim": float(self.values().mean()), "pairs": self.done,
                "method": "consecutive pairs of independent fakes (ProGAN)"}


def msssim_fakes(batches: Iterable[torch.Tensor], pairs: int) -> dict[str, Any]:
    ps = PairStream(pairs)
    for b in batches:
        ps.add(b)
    return ps.result()


