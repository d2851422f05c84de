"""Image helpers shared by every stage: the one [-1, 1] <-> uint8 rule and the PNG grid writers."""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch

from fewgan.io import atomic_write_bytes


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> uint8 by the ADA/DiffAugment rule: round((x + 1) * 127.5), clamped (REFERENCE.md §2)."""
    return ((x.detach().float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


def from_uint8(x: torch.Tensor) -> torch.Tensor:
    """uint8 -> [-1, 1] floats (the inverse of `to_uint8` on its grid)."""
    return x.float() / 127.5 - 1.0


def grid(images: torch.Tensor, cols: int) -> torch.Tensor:
    """N x 3 x H x W images (uint8, or floats in [-1, 1]) -> one uint8 3 x (rows*H) x (cols*W) canvas, row-major."""
    u8 = (images if images.dtype == torch.uint8 else to_uint8(images)).cpu()
    n, c, h, w = u8.shape
    rows = -(-n // cols)
    canvas = torch.zeros(c, rows * h, cols * w, dtype=torch.uint8)
    for i in range(n):
        r, k = divmod(i, cols)
        canvas[:, r * h:(r + 1) * h, k * w:(k + 1) * w] = u8[i]
    return canvas


def png_bytes(canvas: torch.Tensor) -> bytes:
    """A uint8 3 x H x W tensor as PNG bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(canvas.permute(1, 2, 0).contiguous().numpy()).save(buf, format="PNG")
    return buf.getvalue()


def save_grid(path: str | os.PathLike, images: torch.Tensor, cols: int) -> None:
    """Write images (uint8 or [-1, 1] floats) as one PNG grid, `cols` images per row (atomic)."""
    atomic_write_bytes(Path(path), png_bytes(grid(images, cols)))


def labelled_rows_png(targets: torch.Tensor, rows: list[tuple[str, torch.Tensor]], max_cols: int) -> bytes:
    """PNG: a label strip on the left, `targets` (uint8) on the first row, then one labelled row per entry
    of `rows` (uint8 images); at most `max_cols` images per row."""
    n = min(max_cols, targets.shape[0])
    return labelled_grid_png([("target", targets[:n])] + [(lab, imgs[:n]) for lab, imgs in rows], max_cols)


def labelled_grid_png(rows: list[tuple[str, torch.Tensor]], max_cols: int) -> bytes:
    """PNG: one labelled row per entry of `rows` (uint8 images of one resolution; rows may differ in length),
    at most `max_cols` images per row."""
    from PIL import Image, ImageDraw

    n = max(1, min(max_cols, max(int(imgs.shape[0]) for _, imgs in rows)))
    res = rows[0][1].shape[-1]
    cell = max(res, 32)
    label_w = 96
    canvas = Image.new("RGB", (label_w + n * cell, len(rows) * cell), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for r, (label, imgs) in enumerate(rows):
        draw.text((4, r * cell + cell // 2 - 5), label, fill=(0, 0, 0))
        for c in range(min(n, int(imgs.shape[0]))):
            tile = Image.fromarray(imgs[c].permute(1, 2, 0).cpu().numpy(), "RGB")
            if cell != res:
                tile = tile.resize((cell, cell), Image.NEAREST)
            canvas.paste(tile, (label_w + c * cell, r * cell))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return buf.getvalue()
