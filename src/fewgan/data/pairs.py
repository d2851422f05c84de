"""Two domains for image-to-image translation (params `datasets.<name>.translation`).

A translation dataset is an ordinary dataset (curated and split 9:1 by the existing machinery); its
`translation` block says how its images become two domains A and B:

- `kind: none` (default): not a translation dataset.
- `kind: domains`, `domains: [A, B]`: unpaired. A and B are two classes of the dataset (its `classes`
  block, e.g. AFHQ's `cat/` and `dog/` sub-folders): since the split is stratified by class, each domain
  is split 9:1 on its own (NICE-GAN's trainA/testA, trainB/testB). Images of other classes are unused.
- `kind: edges`: paired, built from one domain, as pix2pix's edges2shoes was: B is the photo, A its edge
  map drawn by `edge_map`. **Deviation**: edges2shoes used HED edges (Xie & Tu 2015), which needs pretrained
  weights; `edge_map` is a deterministic filter in integer arithmetic (a 3x3 binomial blur, Sobel, L1
  magnitude, each image's strongest `edge_fraction` of pixels drawn black on white). The pair (A[i], B[i])
  is aligned, and the split of the photos is the split of the pairs.

`domain_images(translation, images, labels, class_index)` turns the images of one split into (A, B, paired);
training (`fewgan.train.data.train_batches`) and later stages use the same function.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

KINDS = ("none", "domains", "edges")
#: ITU-R BT.601 luma weights in thousandths (PIL's "L" conversion uses the same ones)
_LUMA = (299, 587, 114)


class TranslationConfigError(ValueError):
    """A dataset's translation block does not fit its images (e.g. a domain that is not one of its classes)."""


def edge_map(images: torch.Tensor, edge_fraction: float) -> torch.Tensor:
    """Edge drawings of uint8 images (N, 3, H, W): uint8 (N, 3, H, W), 0 (black) on edges, 255 elsewhere.

    Integer arithmetic only, so the result is identical on every machine: luma = (299 R + 587 G + 114 B + 500)
    // 1000; a separable [1, 2, 1] binomial blur (sum 16, edge-replicated borders); Sobel gx, gy; magnitude
    |gx| + |gy|. Per image, the k = round(edge_fraction * H * W) largest magnitudes set the threshold t (the
    k-th largest value); pixels with magnitude >= t and > 0 are edges (ties at t are all kept)."""
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"edge_map expects uint8 images (N, 3, H, W), got {images.dtype} {tuple(images.shape)}")
    if not 0 < edge_fraction < 1:
        raise ValueError(f"edge_fraction must be in (0, 1), got {edge_fraction}")
    x = images.numpy().astype(np.int64)
    luma = (_LUMA[0] * x[:, 0] + _LUMA[1] * x[:, 1] + _LUMA[2] * x[:, 2] + 500) // 1000  # (N, H, W)
    p = np.pad(luma, ((0, 0), (1, 1), (1, 1)), mode="edge")
    # separable binomial blur: rows then columns, weights 1 2 1 (total 16, kept as integers)
    rows = p[:, :, :-2] + 2 * p[:, :, 1:-1] + p[:, :, 2:]
    blur = rows[:, :-2] + 2 * rows[:, 1:-1] + rows[:, 2:]  # (N, H, W), 16 x luma scale
    q = np.pad(blur, ((0, 0), (1, 1), (1, 1)), mode="edge")
    gx = (q[:, :-2, 2:] + 2 * q[:, 1:-1, 2:] + q[:, 2:, 2:]) - (q[:, :-2, :-2] + 2 * q[:, 1:-1, :-2] + q[:, 2:, :-2])
    gy = (q[:, 2:, :-2] + 2 * q[:, 2:, 1:-1] + q[:, 2:, 2:]) - (q[:, :-2, :-2] + 2 * q[:, :-2, 1:-1] + q[:, :-2, 2:])
    mag = np.abs(gx) + np.abs(gy)
    n, h, w = mag.shape
    k = max(1, int(round(edge_fraction * h * w)))
    flat = mag.reshape(n, -1)
    t = np.partition(flat, h * w - k, axis=1)[:, h * w - k]  # the k-th largest magnitude of each image
    edges = (mag >= t[:, None, None]) & (mag > 0)
    out = np.where(edges, 0, 255).astype(np.uint8)
    return torch.from_numpy(np.repeat(out[:, None], 3, axis=1)).contiguous()


def domain_images(translation: Mapping[str, Any], images: torch.Tensor, labels: torch.Tensor | None,
                  class_index: Mapping[str, int], *, dataset: str = "?") -> tuple[torch.Tensor, torch.Tensor, bool]:
    """(domain A images, domain B images, paired) of one split's uint8 images (N, 3, H, W).

    domains: the images of class A and of class B (both must be classes of the split, with >= 1 image);
    edges: (edge_map(images), images, True)."""
    kind = translation["kind"]
    where = f"datasets.{dataset}.translation"
    if kind == "edges":
        return edge_map(images, float(translation["edge_fraction"])), images, True
    if kind == "domains":
        a, b = translation["domains"]
        missing = [c for c in (a, b) if c not in class_index]
        if labels is None or missing:
            raise TranslationConfigError(f"{where}.domains names {missing or [a, b]}, which are not classes of the "
                                         f"split (classes: {sorted(class_index)}); fix the domains or the dataset's "
                                         "classes block, then re-run curate/split")
        picked = []
        for c in (a, b):
            sel = labels == class_index[c]
            if not bool(sel.any()):
                raise TranslationConfigError(f"{where}: domain {c!r} has no image in this split")
            picked.append(images[sel])
        return picked[0], picked[1], False
    raise TranslationConfigError(f"{where}.kind is {kind!r}: dataset {dataset!r} is not a translation dataset "
                                 f"(kinds: {', '.join(k for k in KINDS if k != 'none')}); a translation model "
                                 "needs one (params/datasets.yaml)")
