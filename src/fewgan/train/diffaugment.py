"""DiffAugment (Zhao et al., "Differentiable Augmentation for Data-Efficient GAN Training", NeurIPS 2020).

Matches the semantics of the paper's PyTorch reference (mit-han-lab/data-efficient-gans,
DiffAugment_pytorch.py), written independently and vectorised:

- color: brightness + U(-0.5, 0.5); saturation (x - mean_c) * U(0, 2); contrast (x - mean_chw) * U(0.5, 1.5)
- translation: integer shift of up to 1/8 of the size per axis, per image, with zero padding
- cutout: a zero square of half the size per axis, centred at a random position (clipped at the border);
  `cutout:R` (0 < R < 1) cuts round(R x size) per axis instead, as int(size * R + 0.5) (Projected GAN's
  pg_modules/diffaug.py uses R = 0.2; `cutout` equals `cutout:0.5` at even sizes)

Random numbers are drawn per image, in the reference's order (brightness, saturation, contrast, shift
rows, shift cols, cutout rows, cutout cols), on the CPU by default (`generator` may be any torch
Generator; its device is used): the same generator state always gives the same augmentation, on any
device, which is what makes resumed training bit-exact.
"""

from __future__ import annotations

import re

import torch

POLICIES = ("color", "translation", "cutout")

#: translation: up to 1/8 of the image size (DiffAugment_pytorch.py, rand_translation ratio)
TRANSLATION_DIVISOR = 8
#: cutout: half the image size (DiffAugment_pytorch.py, rand_cutout ratio)
CUTOUT_DIVISOR = 2
#: `cutout:R`: a cutout of another size ratio R in (0, 1), e.g. `cutout:0.2` (Projected GAN)
CUTOUT_RATIO = re.compile(r"^cutout:(0\.[0-9]*[1-9][0-9]*)$")


def parse_policy(policy: str | None) -> tuple[str, ...]:
    """'color,translation' -> ('color', 'translation'); '' / None -> (). Unknown names raise ValueError."""
    if not policy:
        return ()
    names = tuple(p.strip() for p in policy.split(","))
    bad = [n for n in names if n not in POLICIES and not CUTOUT_RATIO.match(n)]
    if bad:
        raise ValueError(f"DiffAugment policy {policy!r}: unknown augmentation(s) {bad}; "
                         f"use a comma-separated subset of {', '.join(POLICIES)} (cutout:R for a cutout of size "
                         "ratio 0 < R < 1) or '' for none")
    return names


def _rand_dtype(x: torch.Tensor) -> torch.dtype:
    return x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32


def _uniform(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One U[0, 1) number per image, shape (B, 1, 1, 1), on x's device and dtype."""
    dev = generator.device if generator is not None else torch.device("cpu")
    r = torch.rand(x.shape[0], 1, 1, 1, generator=generator, device=dev, dtype=_rand_dtype(x))
    return r.to(device=x.device, dtype=x.dtype)


def _randint(low: int, high: int, n: int, generator: torch.Generator | None, device) -> torch.Tensor:
    dev = generator.device if generator is not None else torch.device("cpu")
    return torch.randint(low, high, (n,), generator=generator, device=dev).to(device)


def brightness(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    return x + (_uniform(x, generator) - 0.5)


def saturation(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (_uniform(x, generator) * 2) + mean


def contrast(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (_uniform(x, generator) + 0.5) + mean


def translation(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """out[b, :, i, j] = x[b, :, i + dy_b, j + dx_b], zero where that falls outside the image."""
    B, C, H, W = x.shape
    sh, sw = H // TRANSLATION_DIVISOR, W // TRANSLATION_DIVISOR
    dy = _randint(-sh, sh + 1, B, generator, x.device)
    dx = _randint(-sw, sw + 1, B, generator, x.device)
    # pad one zero row/column on each side, then gather with indices clamped onto that padding
    xp = torch.nn.functional.pad(x, [1, 1, 1, 1])
    rows = (torch.arange(H, device=x.device)[None, :] + dy[:, None] + 1).clamp_(0, H + 1)  # (B, H)
    cols = (torch.arange(W, device=x.device)[None, :] + dx[:, None] + 1).clamp_(0, W + 1)  # (B, W)
    out = xp.gather(2, rows[:, None, :, None].expand(B, C, H, W + 2))
    return out.gather(3, cols[:, None, None, :].expand(B, C, H, W))


def cutout(x: torch.Tensor, generator: torch.Generator | None = None, ratio: float | None = None) -> torch.Tensor:
    """Zero one square per image; its side is size // 2 (ratio None) or int(size * ratio + 0.5)."""
    B, C, H, W = x.shape
    if ratio is None:
        ch, cw = H // CUTOUT_DIVISOR, W // CUTOUT_DIVISOR
    else:
        ch, cw = int(H * ratio + 0.5), int(W * ratio + 0.5)
    # centre drawn from [0, size] for even cutout sizes, [0, size) for odd ones (as the reference)
    cy = _randint(0, H + (1 - ch % 2), B, generator, x.device)
    cx = _randint(0, W + (1 - cw % 2), B, generator, x.device)
    top, left = cy - ch // 2, cx - cw // 2
    r = torch.arange(H, device=x.device)[None, :]
    c = torch.arange(W, device=x.device)[None, :]
    in_rows = (r >= top[:, None]) & (r < top[:, None] + ch)  # (B, H)
    in_cols = (c >= left[:, None]) & (c < left[:, None] + cw)  # (B, W)
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])  # (B, H, W)
    return x * keep[:, None].to(x.dtype)


_FNS = {
    "color": (brightness, saturation, contrast),
    "translation": (translation,),
    "cutout": (cutout,),
}


def augment(x: torch.Tensor, policy: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply the DiffAugment `policy` to a batch x (N, C, H, W); differentiable w.r.t. x.

    `policy` is '' (identity: x itself is returned) or e.g. 'color,translation,cutout'.
    `generator` None draws from the global CPU generator."""
    if x.dim() != 4:
        raise ValueError(f"DiffAugment expects an NCHW batch, got shape {tuple(x.shape)}")
    for name in parse_policy(policy):
        m = CUTOUT_RATIO.match(name)
        if m:
            x = cutout(x, generator, float(m[1]))
            continue
        for fn in _FNS[name]:
            x = fn(x, generator)
    return x
