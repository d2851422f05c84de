"""Sliced Wasserstein distance on Laplacian-pyramid patches, as ProGAN defines it
(Karras et al., ICLR 2018, Appendix D; tkarras/progressive_growing_of_gans metrics/sliced_wasserstein.py),
vectorised in torch.

Per set (real, fake) and per pyramid level:
- Laplacian pyramid with the 5x5 binomial kernel [1,4,6,4,1]^T[1,4,6,4,1]/256, mirror boundary
  (reflect without repeating the edge, scipy.ndimage mode='mirror'), down = blur then every 2nd pixel,
  up = zero-insert then blur with 4x the kernel; levels from full size down to `min_resolution` (16 px),
  the last level being the Gaussian low-pass.
- Random 7x7x3 patches fully inside the level (top-left uniform in [0, S-7]).
- The set's descriptors are normalised per colour channel by the set's own mean and std (ddof 0).
- SWD = mean over `repeats` (4) of: project both sets on `directions` (128) random unit vectors, sort,
  mean |difference|. Reported x10^3 per level and averaged over levels.

Equal descriptor counts (the distance needs them; ProGAN fed the same number of images on both sides):
fewgan takes n_desc = min(n_real, n_fake) x patches_per_image descriptors from EACH set, spread as evenly as
possible over ALL the set's images (image i of n gets n_desc // n patches, plus one for the first
n_desc % n images). So the smaller set gives exactly ProGAN's 128 patches per image and the larger set gives
fewer per image but covers every image. With n_real = n_fake this is exactly ProGAN's protocol.
Noise floor: two disjoint random halves of the real set, each giving the same n_desc descriptors (extra
patches per image), compared the same way.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterable

import numpy as np
import torch
import torch.nn.functional as F

# ProGAN sliced_wasserstein.py: gaussian_filter = outer([1,4,6,4,1]) / 256 (matches cv2.pyrDown)
_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=torch.float64)
KERNEL_5x5 = (torch.outer(_BINOMIAL, _BINOMIAL) / 256.0)

# ProGAN sliced_wasserstein.py API.__init__ constants
PATCHES_PER_IMAGE = 128
PATCH_SIZE = 7
DIRECTIONS = 128
REPEATS = 4
MIN_RESOLUTION = 16


def _padded_empty(x: torch.Tensor, h: int, w: int, pad: int) -> torch.Tensor:
    cl = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return torch.empty(*x.shape[:-2], h + 2 * pad, w + 2 * pad, dtype=torch.float32 if x.dtype == torch.uint8
                       else x.dtype, device=x.device,
                       memory_format=torch.channels_last if cl else torch.contiguous_format)


def _mirror_fill2(out: torch.Tensor) -> torch.Tensor:
    """Fill the 2-pixel border of `out` (interior already written) by mirroring (reflect without repeating
    the edge, scipy 'mirror'): one copy of the image instead of two torch.cat passes."""
    h, w = out.shape[-2] - 4, out.shape[-1] - 4
    out[..., 0, 2:w + 2] = out[..., 4, 2:w + 2]
    out[..., 1, 2:w + 2] = out[..., 3, 2:w + 2]
    out[..., h + 2, 2:w + 2] = out[..., h, 2:w + 2]
    out[..., h + 3, 2:w + 2] = out[..., h - 1, 2:w + 2]
    out[..., :, 0] = out[..., :, 4]
    out[..., :, 1] = out[..., :, 3]
    out[..., :, w + 2] = out[..., :, w]
    out[..., :, w + 3] = out[..., :, w - 1]
    return out


def _mirror_pad2(x: torch.Tensor) -> torch.Tensor:
    """Pad H and W by 2 with mirror boundary, keeping the memory format (uint8 becomes float32)."""
    h, w = x.shape[-2:]
    out = _padded_empty(x, h, w, 2)
    out[..., 2:h + 2, 2:w + 2] = x
    return _mirror_fill2(out)


def _up_pad1(x: torch.Tensor) -> torch.Tensor:
    """Pad H and W by 1: mirror at the start, edge repeat at the end. Mirroring the zero-inserted image
    (length 2h) puts x[1] before x[0] and x[h-1] after x[h-1], which is exactly this padding of x."""
    x = torch.cat([x[..., 1:2], x, x[..., -1:]], dim=-1)
    return torch.cat([x[..., 1:2, :], x, x[..., -1:, :]], dim=-2)


def _kernel(x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    return (KERNEL_5x5 * gain).to(device=x.device, dtype=x.dtype).expand(x.shape[1], 1, 5, 5)


def _down_padded(xp: torch.Tensor) -> torch.Tensor:
    return F.conv2d(xp, _kernel(xp), stride=2, groups=xp.shape[1])


def pyr_down(x: torch.Tensor) -> torch.Tensor:
    """Mirror-boundary binomial blur, then every 2nd pixel: computed as one stride-2 depthwise convolution
    (only the kept pixels are filtered; same sums)."""
    return _down_padded(_mirror_pad2(x))


def pyr_up(x: torch.Tensor) -> torch.Tensor:
    """Zero insertion then the mirror-boundary blur with 4x the kernel, computed polyphase as a stride-2
    transposed depthwise convolution of the padded low-pass image (the zeros are never multiplied)."""
    h, w = x.shape[-2:]
    y = F.conv_transpose2d(_up_pad1(x), _kernel(x, 4.0), stride=2, groups=x.shape[1])
    return y[..., 4:4 + 2 * h, 4:4 + 2 * w]


def resolutions(size: int, min_resolution: int = MIN_RESOLUTION) -> list[int]:
    """ProGAN: levels at size, size/2, ... while >= min_resolution."""
    out = []
    res = int(size)
    while res >= min_resolution:
        out.append(res)
        res //= 2
    return out


def laplacian_pyramid(x: torch.Tensor, num_levels: int) -> list[torch.Tensor]:
    pyr = [x]
    for _ in range(1, num_levels):
        low = pyr_down(pyr[-1])
        pyr[-1] = pyr[-1] - pyr_up(low)
        pyr.append(low)
    return pyr


def patches_per_image(n_images: int, n_desc: int) -> torch.Tensor:
    """Even spread of n_desc patches over n_images images (see module doc)."""
    base, extra = divmod(int(n_desc), int(n_images))
    counts = torch.full((n_images,), base, dtype=torch.long)
    counts[:extra] += 1
    return counts


def patches_at(level: torch.Tensor, img: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor,
               patch_size: int) -> torch.Tensor:
    """(n, C, p, p) patches with top-left corners (ys, xs) of images `img` of an (N, C, H, W) level."""
    level = level.contiguous()
    _, c, h, w = level.shape
    flat = _patch_index(img, ys, xs, c, h, w, patch_size, (c * h * w, h * w, w))
    return level.view(-1)[flat].view(-1, c, patch_size, patch_size)


def _patch_index(img: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, c: int, h: int, w: int, p: int,
                 strides: tuple[int, int, int], pixel: int = 1) -> torch.Tensor:
    """Flat element indices (n, c*p*p), order (channel, dy, dx), for strides (image, channel, row) and the
    pixel stride `pixel`."""
    si, sc, sr = strides
    ar = torch.arange(p)
    off = (torch.arange(c)[:, None, None] * sc + ar[None, :, None] * sr + ar[None, None, :] * pixel).view(-1)
    base = img.long() * si + ys.long() * sr + xs.long() * pixel
    return base[:, None] + off[None, :]


def normalize_descriptors(desc: torch.Tensor) -> torch.Tensor:
    """Per-channel mean/std (ddof 0) of the whole set, then flatten: (n, 3, p, p) -> (n, 3p^2)."""
    n, c = desc.shape[:2]
    d = desc.reshape(n, c, -1)
    # two passes over contiguous rows (every channel has n*p*p values, so the mean of the per-position
    # means is the channel mean); ~2x faster and more accurate in float32 than torch.std over (0, 2, 3)
    mean = d.mean(0).mean(1)
    dc = d - mean[None, :, None]
    std = dc.square().mean(0).mean(1).sqrt()
    # a channel with no spread at all (a generator that outputs one constant image) would divide by zero in
    # ProGAN's code (NaN); fewgan leaves it unscaled, so such a set sits far from any real set instead of
    # having no distance. Never happens for real data, so the protocol is unchanged there.
    std = torch.where(std > 0, std, torch.ones_like(std))
    return dc.mul_((1.0 / std)[None, :, None]).reshape(n, -1)


def random_directions(dim: int, directions: int, repeats: int, generator: torch.Generator) -> torch.Tensor:
    """(repeats, dim, directions) unit columns (normalised in float64, used in float32 as ProGAN)."""
    d = torch.randn(repeats, dim, directions, generator=generator, dtype=torch.float64)
    d = d / d.square().sum(dim=1, keepdim=True).sqrt()
    return d.float()


# rows of projections sorted per block (all directions of all repeats share one matmul per block);
# 128 rows x 65,536 descriptors = 32 MiB per set
_SORT_BLOCK_ELEMS = 1 << 23
_POOL: ThreadPoolExecutor | None = None
_POOL_SIZE = 0


def _pool(n: int) -> ThreadPoolExecutor:
    global _POOL, _POOL_SIZE
    if _POOL is None or _POOL_SIZE != n:
        if _POOL is not None:
            _POOL.shutdown(wait=False)
        _POOL, _POOL_SIZE = ThreadPoolExecutor(max_workers=n, thread_name_prefix="fewgan-swd-sort"), n
    return _POOL


def _abs_diff_sorted_rows(pa: np.ndarray, pb: np.ndarray) -> np.ndarray:
    """Sort each row of pa and pb in place and return the float64 sum of |pa - pb| per row."""
    pa.sort(axis=-1)
    pb.sort(axis=-1)
    return np.abs(pa - pb).sum(axis=-1, dtype=np.float64)


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, dirs: torch.Tensor) -> float:
    """ProGAN's sliced_wasserstein for given directions (repeats, dim, k): mean over repeats of the
    mean |sorted projection difference|."""
    if a.shape != b.shape or a.dim() != 2:
        raise ValueError(f"SWD needs equal descriptor counts, got {tuple(a.shape)} vs {tuple(b.shape)}")
    repeats, dim, k = dirs.shape
    n = a.shape[0]
    d = dirs.to(device=a.device, dtype=a.dtype).permute(0, 2, 1).reshape(repeats * k, dim)  # one row per direction
    if a.is_cuda:
        sums = []
        for r in range(repeats):
            pa = torch.sort(d[r * k:(r + 1) * k] @ a.T, dim=-1).values
            pb = torch.sort(d[r * k:(r + 1) * k] @ b.T, dim=-1).values
            sums.append((pa - pb).abs().sum(dim=-1, dtype=torch.float64))
        row = torch.cat(sums).cpu().numpy()
    else:
        # CPU: one matmul per block of directions in numpy (its OpenBLAS ran this shape ~1.8x faster than
        # torch's BLAS on the 2-core CI machine), rows sorted by numpy (SIMD sort, ~10x torch.sort), the
        # rows split over torch's thread count (np.sort releases the GIL)
        threads = max(1, min(torch.get_num_threads(), 8))
        block = max(threads, min(repeats * k, _SORT_BLOCK_ELEMS // max(n, 1)))
        dn = d.contiguous().numpy()
        at, bt = a.contiguous().numpy().T, b.contiguous().numpy().T
        row = np.empty(repeats * k, dtype=np.float64)
        for s in range(0, repeats * k, block):
            e = min(s + block, repeats * k)
            pa = dn[s:e] @ at
            pb = dn[s:e] @ bt
            if threads == 1 or e - s < 2 * threads:
                row[s:e] = _abs_diff_sorted_rows(pa, pb)
            else:
                cuts = np.linspace(0, e - s, threads + 1).astype(int)
                parts = [(cuts[i], cuts[i + 1]) for i in range(threads)]
                outs = _pool(threads).map(lambda ij: _abs_diff_sorted_rows(pa[ij[0]:ij[1]], pb[ij[0]:ij[1]]),
                                          parts)
                for (i, j), o in zip(parts, outs):
                    row[s + i:s + j] = o
    per_repeat = row.reshape(repeats, k).sum(axis=1) / (k * n)
    return float(per_repeat.mean())


# images whose pyramid is built at once (a few MiB at 256 px: stays in cache)
_PYR_CHUNK = 8


class DescriptorSet:
    """Accumulates one set's patch descriptors over batches of images (streaming-friendly)."""

    def __init__(self, n_images: int, n_desc: int, num_levels: int, patch_size: int, seed: int):
        self.counts = patches_per_image(n_images, n_desc)
        self.n_images = int(n_images)
        self.num_levels = num_levels
        self.patch_size = patch_size
        # positions drawn up front (uniform in [0, 1) per patch, per level), so that how the images are
        # split into batches never changes which patches are taken
        gen = torch.Generator().manual_seed(int(seed))
        self.uniform = torch.rand(num_levels, 2, int(self.counts.sum()), generator=gen, dtype=torch.float64)
        self.offsets = torch.cat([torch.zeros(1, dtype=torch.long), self.counts.cumsum(0)])
        self.levels: list[list[torch.Tensor]] = [[] for _ in range(num_levels)]
        self.seen = 0

    def add(self, images: torch.Tensor) -> None:
        b = images.shape[0]
        if self.seen + b > self.n_images:
            b = self.n_images - self.seen
            images = images[:b]
        if b <= 0:
            return
        for i in range(0, b, _PYR_CHUNK):
            self._add(images[i:i + _PYR_CHUNK])

    def _add(self, images: torch.Tensor) -> None:
        b, c = images.shape[:2]
        counts = self.counts[self.seen:self.seen + b]
        lo, hi = int(self.offsets[self.seen]), int(self.offsets[self.seen + b])
        img = torch.repeat_interleave(torch.arange(b), counts)
        p = self.patch_size
        # ProGAN works on the 0..255 values. The chunk is one (1, b*c, H, W) channels-last tensor: depthwise
        # convolutions run several times faster on it than on (b, c, H, W)
        h0, w0 = images.shape[-2:]
        xp = torch.empty(1, b * c, h0 + 4, w0 + 4, memory_format=torch.channels_last)
        xp[..., 2:h0 + 2, 2:w0 + 2] = images.reshape(1, b * c, h0, w0)  # uint8 -> float32, once
        cur = xp[..., 2:h0 + 2, 2:w0 + 2]
        for lod in range(self.num_levels):
            if lod + 1 < self.num_levels:
                low = _down_padded(_mirror_fill2(xp))
                level = cur - pyr_up(low)
                if lod + 2 < self.num_levels:
                    xp = _mirror_pad2(low)
            else:
                low, level = cur, cur
            h, w = level.shape[-2:]
            if h < p or w < p:
                raise ValueError(f"SWD level {h}x{w} is smaller than the {p}px patch; "
                                 "raise evaluation.swd.min_resolution")
            ys = (self.uniform[lod, 0, lo:hi] * (h - p + 1)).long()  # top-left uniform in [0, S-p]
            xs = (self.uniform[lod, 1, lo:hi] * (w - p + 1)).long()
            # channels-last memory is (H, W, image, channel)
            level = level.contiguous(memory_format=torch.channels_last)
            flat = _patch_index(img, ys, xs, c, h, w, p, (c, 1, w * b * c), pixel=b * c)
            self.levels[lod].append(level.permute(0, 2, 3, 1).reshape(-1)[flat])
            cur = low
        self.seen += b

    def finalize(self) -> list[torch.Tensor]:
        if self.seen != self.n_images:
            raise ValueError(f"SWD expected {self.n_images} images, got {self.seen}")
        p = self.patch_size
        return [normalize_descriptors(torch.cat(lv).view(-1, lv[0].shape[1] // (p * p), p, p))
                for lv in self.levels]


def _cfg(params_swd: dict | None) -> dict[str, Any]:
    c = {"patches_per_image": PATCHES_PER_IMAGE, "patch_size": PATCH_SIZE, "min_resolution": MIN_RESOLUTION,
         "directions": DIRECTIONS, "repeats": REPEATS, "batch_size": 32}
    c.update({k: v for k, v in (params_swd or {}).items() if k in c})
    if c["patch_size"] % 2 != 1:
        raise ValueError(f"evaluation.swd.patch_size must be odd (ProGAN: 7), got {c['patch_size']}")
    return c


def distances(desc_a: list[torch.Tensor], desc_b: list[torch.Tensor], res: list[int], repeats: int,
              directions: int, seed: int) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(int(seed) + 1)
    per_level = {}
    for r, a, b in zip(res, desc_a, desc_b):
        dirs = random_directions(a.shape[1], directions, repeats, gen)
        per_level[str(r)] = 1e3 * sliced_wasserstein(a, b, dirs)  # ProGAN: x 10^3
    return {"levels": per_level, "mean": float(sum(per_level.values()) / len(per_level))}


def _batches(x: torch.Tensor, bs: int) -> Iterable[torch.Tensor]:
    for i in range(0, x.shape[0], bs):
        yield x[i:i + bs]


class SWDStream:
    """SWD between a fixed real set and fakes fed batch by batch (n_fake known in advance)."""

    def __init__(self, real: torch.Tensor, n_fake: int, cfg: dict | None = None, seed: int = 0):
        c = self.cfg = _cfg(cfg)
        self.size = int(real.shape[-1])
        self.res = resolutions(self.size, c["min_resolution"])
        if not self.res:
            raise ValueError(f"images of {self.size}px are below evaluation.swd.min_resolution={c['min_resolution']}")
        self.n_real, self.n_fake, self.seed = int(real.shape[0]), int(n_fake), int(seed)
        self.n_desc = min(self.n_real, self.n_fake) * c["patches_per_image"]
        ds_real = DescriptorSet(self.n_real, self.n_desc, len(self.res), c["patch_size"], self.seed * 1000 + 11)
        for b in _batches(real, c["batch_size"]):
            ds_real.add(b)
        self.real_desc = ds_real.finalize()
        self.real_counts = ds_real.counts  # descriptors per real image (the bootstrap resamples images)
        self.fake_desc: list[torch.Tensor] | None = None
        self.fake = DescriptorSet(self.n_fake, self.n_desc, len(self.res), c["patch_size"], self.seed * 1000 + 12)

    def fresh(self) -> "SWDStream":
        """A stream against the same real descriptors with no fakes yet (score: one per snapshot)."""
        other = object.__new__(SWDStream)
        other.__dict__.update(self.__dict__)
        other.fake = DescriptorSet(self.n_fake, self.n_desc, len(self.res), self.cfg["patch_size"], self.seed * 1000 + 12)
        other.fake_desc = None
        return other

    def add(self, batch: torch.Tensor) -> None:
        if batch.shape[-1] != self.size:
            raise ValueError(f"fakes are {batch.shape[-1]}px but reals {self.size}px")
        self.fake.add(batch)

    def result(self) -> dict[str, Any]:
        c = self.cfg
        self.fake_desc = self.fake.finalize()  # kept for the bootstrap (fewgan.metrics.bootstrap.swd_samples)
        out = distances(self.real_desc, self.fake_desc, self.res, c["repeats"], c["directions"], self.seed)
        out.update(n_desc=self.n_desc, n_real=self.n_real, n_fake=self.n_fake, resolutions=self.res,
                   protocol=PROTOCOL)
        return out


def swd(real: torch.Tensor, fake: torch.Tensor | Iterable[torch.Tensor], *, n_fake: int | None = None,
        cfg: dict | None = None, seed: int = 0) -> dict[str, Any]:
    """SWD x10^3 per level and mean between uint8 (N, 3, R, R) real images and fakes (a tensor or an
    iterable of batches with `n_fake` images in total)."""
    c = _cfg(cfg)
    if torch.is_tensor(fake):
        n_fake = fake.shape[0]
        fake_iter: Iterable[torch.Tensor] = _batches(fake, c["batch_size"])
    else:
        if n_fake is None:
            raise ValueError("swd(): give n_fake when fakes come as batches")
        fake_iter = fake
    stream = SWDStream(real, n_fake, c, seed)
    for b in fake_iter:
        stream.add(b)
    return stream.result()


def swd_real_floor(real: torch.Tensor, *, n_desc: int | None = None, cfg: dict | None = None,
                   seed: int = 0) -> dict[str, Any]:
    """SWD between two disjoint random halves of the real set (noise floor), each giving `n_desc`
    descriptors (default: the count the real-vs-fake comparison uses, n_real x patches_per_image)."""
    c = _cfg(cfg)
    n = real.shape[0]
    if n < 2:
        raise ValueError("the SWD noise floor needs at least 2 real images")
    half = n // 2
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed) + 7))
    a, b = real[perm[:half]], real[perm[half:2 * half]]
    n_desc = int(n_desc or n * c["patches_per_image"])
    res = resolutions(real.shape[-1], c["min_resolution"])
    sets = []
    for i, part in enumerate((a, b)):
        ds = DescriptorSet(half, n_desc, len(res), c["patch_size"], seed * 1000 + 21 + i)
        for bb in _batches(part, c["batch_size"]):
            ds.add(bb)
        sets.append(ds.finalize())
    out = distances(sets[0], sets[1], res, c["repeats"], c["directions"], seed + 99)
    out.update(n_desc=n_desc, halves=half, resolutions=res,
               method="two disjoint random halves of the real set, each with the same descriptor count "
                      "as the real-vs-fake comparison")
    return out


PROTOCOL = ("ProGAN SWD (metrics/sliced_wasserstein.py): binomial 5x5 Laplacian pyramid, mirror boundary, "
            "levels down to 16 px, 7x7 patches, per-set channel normalisation, 4x128 random directions, x1e3. "
            "Equal counts: n_desc = min(n_real, n_fake) x 128 descriptors per set, spread evenly over all "
            "images of each set.")
