"""Controlled degradations of real image sets, to check which way a metric's verdicts go.

A metric used to pick snapshots or rank models must at least order *known* degradations of real images
correctly: a set of real photos must beat blurred, noisy or JPEG-compressed copies of the same photos, a
stronger degradation must score worse than a weaker one, and smooth colour blobs (what a collapsed GAN
draws early on) must score worse than mildly degraded photos; and a mode-collapsed set (k distinct real
images repeated to the set's size, k shrinking) must score worse as k shrinks, with recall falling.
`tests/metrics/test_verdicts.py` asserts this for SWD, FID with the untrained Inception fallback and the
EfficientNet-Lite0 metrics (FD, KID, precision/recall); `bench/verdicts.py` prints the table.

Every function takes and returns uint8 image batches (N, 3, H, W) and is deterministic (seeded).
Strengths are in pixels of the working resolution (blur sigma) or in 0..255 grey levels (noise sigma).
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

#: Degradation families and their strengths, weakest first (doubling ladders; JPEG quality falling).
FAMILIES: dict[str, tuple[float, ...]] = {
    "blur": (0.5, 1.0, 2.0, 4.0),      # Gaussian blur sigma, pixels
    "noise": (4.0, 8.0, 16.0, 32.0),   # additive Gaussian noise sigma, grey levels of 255
    "jpeg": (90.0, 50.0, 20.0, 5.0),   # JPEG quality (Pillow/libjpeg, 4:2:0 chroma subsampling)
}
#: How many of each family's weakest steps count as "mild" (blur <= 1 px, noise <= 8/255, JPEG >= 50).
MILD_STEPS = 2
BLOBS = "blobs"
GRAINY_BLOBS = "blobs-grainy"
REAL = "real"
#: Mode collapse: B's first k images repeated to |B|, k = |B| / 2, / 4, / 8 (rounded down, at least 2), then 1.
COLLAPSE_DIVISORS = (2, 4, 8)

#: The real-image domains of the verdict experiment: folder under ../shared/data and images per set
#: (A and B each). 28 = all 56 CelebA-HQ faces split in two; flowers use the same count; AFHQ has 41
#: images (3 species), so 20 per set.
DOMAINS: dict[str, tuple[str, int]] = {
    "celebahq": ("celebahq-stargan-v2", 28),
    "flowers": ("tf-flowers-daisy-128", 28),
    "afhq": ("afhq-stargan-v2", 20),
}
#: Working resolution of the experiment (see tests/metrics/test_verdicts.py for why 128 px).
SIZE = 128


def _check(x: torch.Tensor, what: str = "images") -> torch.Tensor:
    if not torch.is_tensor(x) or x.dtype != torch.uint8 or x.dim() != 4 or x.shape[1] != 3:
        got = f"{x.dtype} {tuple(x.shape)}" if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f"{what}: expected uint8 images (N, 3, H, W), got {got}")
    return x


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return x.round().clamp(0, 255).to(torch.uint8)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur (kernel radius ceil(3 sigma), mirror boundary), rounded back to uint8."""
    _check(x)
    if sigma <= 0:
        return x.clone()
    r = math.ceil(3.0 * sigma)
    if r >= min(x.shape[-2:]):
        raise ValueError(f"blur sigma {sigma} needs a {2 * r + 1}-px kernel, too large for "
                         f"{x.shape[-1]}-px images")
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = (k / k.sum()).float()
    c = x.shape[1]
    y = x.float()
    y = F.conv2d(F.pad(y, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return _to_uint8(y)


def gaussian_noise(x: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    """Additive i.i.d. Gaussian noise of std `sigma` grey levels per pixel and channel, rounded, clipped."""
    _check(x)
    g = torch.Generator().manual_seed(int(seed))
    noise = torch.randn(x.shape, generator=g, dtype=torch.float32) * float(sigma)
    return _to_uint8(x.float() + noise)


def jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """Encode each image as JPEG at `quality` (Pillow, 4:2:0 chroma subsampling, baseline) and decode."""
    _check(x)
    q = int(quality)
    if not 1 <= q <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    out = []
    for img in x.permute(0, 2, 3, 1).numpy():
        buf = io.BytesIO()
        Image.fromarray(img, "RGB").save(buf, format="JPEG", quality=q, subsampling="4:2:0")
        buf.seek(0)
        with Image.open(buf) as im:
            out.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


def colour_blobs(n: int, size: int, like: torch.Tensor, seed: int = 0, blobs: tuple[int, int] = (3, 6)) -> torch.Tensor:
    """`n` images of smooth random colour blobs, imitating a collapsed GAN's early samples.

    Each image: a flat background plus 3-6 soft elliptical Gaussian blobs (radii 8-35% of the side,
    random orientation), background and blob colours drawn around the mean colour of `like` with its
    per-channel spread of pixel values. The set is then shifted per channel so its mean colour equals
    `like`'s ("matched in mean colour to the data"). No edges, no texture, no object.
    """
    _check(like, "blob reference images")
    g = torch.Generator().manual_seed(int(seed))
    ref = like.double()
    mean = ref.mean(dim=(0, 2, 3))
    std = ref.std(dim=(0, 2, 3))
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float64) + 0.5,
                            torch.arange(size, dtype=torch.float64) + 0.5, indexing="ij")
    out = torch.empty(n, 3, size, size, dtype=torch.float64)
    for i in range(n):
        bg = mean + 0.5 * std * torch.randn(3, generator=g, dtype=torch.float64)
        img = bg.view(3, 1, 1).expand(3, size, size).clone()
        k = int(torch.randint(blobs[0], blobs[1] + 1, (1,), generator=g))
        for _ in range(k):
            cy, cx = (torch.rand(2, generator=g, dtype=torch.float64) * size).tolist()
            ry, rx = ((0.08 + 0.27 * torch.rand(2, generator=g, dtype=torch.float64)) * size).tolist()
            th = float(torch.rand(1, generator=g, dtype=torch.float64)) * math.pi
            dy, dx = yy - cy, xx - cx
            u = dx * math.cos(th) + dy * math.sin(th)
            v = -dx * math.sin(th) + dy * math.cos(th)
            alpha = torch.exp(-0.5 * ((u / rx) ** 2 + (v / ry) ** 2))
            col = mean + std * torch.randn(3, generator=g, dtype=torch.float64)
            img = img * (1 - alpha) + col.view(3, 1, 1) * alpha
        out[i] = img
    out += (mean - out.mean(dim=(0, 2, 3))).view(1, 3, 1, 1)
    return _to_uint8(out)


def grainy_blobs(n: int, size: int, seed: int = 0, grain: float = 16.0) -> torch.Tensor:
    """`n` images imitating the StyleGAN2 samples that the untrained-Inception FID ranked first in
    reports/celebahq128 (figures/overview.png): 2-5 saturated colour blobs (random hue, saturation and
    value 0.6-1) on a dark background (0-40 grey levels per channel), plus per-pixel Gaussian grain of
    std `grain` grey levels. Not matched to any data set's colours."""
    g = torch.Generator().manual_seed(int(seed))
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float64) + 0.5,
                            torch.arange(size, dtype=torch.float64) + 0.5, indexing="ij")
    out = torch.empty(n, 3, size, size, dtype=torch.float64)
    for i in range(n):
        img = (40.0 * torch.rand(3, generator=g, dtype=torch.float64)).view(3, 1, 1).expand(3, size, size).clone()
        for _ in range(int(torch.randint(2, 6, (1,), generator=g))):
            cy, cx = (torch.rand(2, generator=g, dtype=torch.float64) * size).tolist()
            ry, rx = ((0.10 + 0.20 * torch.rand(2, generator=g, dtype=torch.float64)) * size).tolist()
            alpha = torch.exp(-0.5 * (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2))
            h, sat, val = torch.rand(3, generator=g, dtype=torch.float64).tolist()
            sat, val = 0.6 + 0.4 * sat, 0.6 + 0.4 * val
            col = torch.tensor(_hsv_to_rgb(h, sat, val), dtype=torch.float64) * 255.0
            img = img * (1 - alpha) + col.view(3, 1, 1) * alpha
        out[i] = img + grain * torch.randn(3, size, size, generator=g, dtype=torch.float64)
    return _to_uint8(out)


def _hsv_to_rgb(h: float, s: float, v: float) -> tuple[float, float, float]:
    import colorsys

    return colorsys.hsv_to_rgb(h, s, v)


def degrade(x: torch.Tensor, family: str, strength: float, seed: int = 0) -> torch.Tensor:
    if family == "blur":
        return gaussian_blur(x, strength)
    if family == "noise":
        return gaussian_noise(x, strength, seed)
    if family == "jpeg":
        return jpeg(x, int(strength))
    raise ValueError(f"unknown degradation family {family!r}; known: {', '.join(FAMILIES)}")


def collapse_ks(n: int) -> list[int]:
    """The distinct-image counts of the mode-collapse series for a set of n images, largest first."""
    ks = [max(2, n // d) for d in COLLAPSE_DIVISORS] + [1]
    return sorted(set(k for k in ks if k < n), reverse=True)


def collapse_name(k: int) -> str:
    return f"collapse k={k}"


def collapsed(x: torch.Tensor, k: int) -> torch.Tensor:
    """A mode-collapsed copy of x: its first k images repeated, in order, to x's size."""
    _check(x)
    if not 1 <= k <= x.shape[0]:
        raise ValueError(f"collapse to k = {k} distinct images of a set of {x.shape[0]}")
    return x[torch.arange(x.shape[0]) % int(k)].clone()


def candidate_name(family: str, strength: float) -> str:
    return {"blur": f"blur s={strength:g}", "noise": f"noise s={strength:g}", "jpeg": f"jpeg q={strength:g}"}[family]


def candidates(b: torch.Tensor, *, seed: int = 0, families: dict[str, Sequence[float]] | None = None,
               blob_like: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The candidate sets, in a fixed order: B itself ("real"), each family's degraded copies of B
    (weakest first), smooth colour blobs (as many as B, mean colour of `blob_like`, default B), grainy
    saturated blobs, and the mode-collapse series (`collapsed`, k = collapse_ks(|B|), largest first)."""
    _check(b, "candidate base set B")
    out = {REAL: b}
    for fam, steps in (families or FAMILIES).items():
        for s in steps:
            out[candidate_name(fam, s)] = degrade(b, fam, s, seed=seed + 1)
    out[BLOBS] = colour_blobs(b.shape[0], b.shape[-1], b if blob_like is None else blob_like, seed=seed + 2)
    out[GRAINY_BLOBS] = grainy_blobs(b.shape[0], b.shape[-1], seed=seed + 3)
    for k in collapse_ks(b.shape[0]):
        out[collapse_name(k)] = collapsed(b, k)
    return out


def mild_names(families: dict[str, Sequence[float]] | None = None, steps: int = MILD_STEPS) -> list[str]:
    return [candidate_name(f, s) for f, ss in (families or FAMILIES).items() for s in list(ss)[:steps]]


# ------------------------------------------------------------------------------------------------
# real image sets from a folder
# ------------------------------------------------------------------------------------------------
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


def list_images(folder: Path, recursive: bool = True) -> list[Path]:
    """Image files under `folder`, sorted by their path relative to it (deterministic)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: image folder not found")
    it: Iterable[Path] = folder.rglob("*") if recursive else folder.iterdir()
    files = sorted((p for p in it if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                   key=lambda p: p.relative_to(folder).as_posix())
    if not files:
        raise FileNotFoundError(f"{folder}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    return files


def load_square(paths: Sequence[Path], size: int) -> torch.Tensor:
    """Decode, centre-crop to a square and resize with Lanczos (antialiased) to `size`: uint8 (N, 3, S, S)."""
    from fewgan.data.decode import decode_image

    arrays = []
    for p in paths:
        im = decode_image(p).image
        w, h = im.size
        s = min(w, h)
        if w != h:
            left, top = (w - s) // 2, (h - s) // 2
            im = im.crop((left, top, left + s, top + s))
        if s != size:
            im = im.resize((size, size), Image.LANCZOS)
        arrays.append(np.asarray(im, dtype=np.uint8))
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def split_ab(paths: Sequence[Path], n_per_set: int, seed: int = 0) -> tuple[list[Path], list[Path]]:
    """Deterministic disjoint split: a seeded permutation of the (sorted) paths; the first `n_per_set`
    form the reference set A, the next `n_per_set` the candidate base set B."""
    paths = list(paths)
    if 2 * n_per_set > len(paths):
        raise ValueError(f"need {2 * n_per_set} images for two disjoint sets of {n_per_set}, "
                         f"found {len(paths)}")
    perm = torch.randperm(len(paths), generator=torch.Generator().manual_seed(int(seed))).tolist()
    a = [paths[i] for i in perm[:n_per_set]]
    b = [paths[i] for i in perm[n_per_set:2 * n_per_set]]
    return a, b


def domain_sets(root: Path, domain: str, *, size: int = SIZE, seed: int = 0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The verdict experiment's sets for one domain of DOMAINS: reference set A (uint8) and the
    candidates built from the disjoint set B (see `candidates`)."""
    if domain not in DOMAINS:
        raise KeyError(f"unknown verdict domain {domain!r}; known: {', '.join(DOMAINS)}")
    folder, n = DOMAINS[domain]
    pa, pb = split_ab(list_images(Path(root) / folder), n, seed=seed)
    if set(pa) & set(pb):  # cannot happen (disjoint slices of one permutation); checked anyway
        raise AssertionError("A and B overlap")
    return load_square(pa, size), candidates(load_square(pb, size), seed=seed)
