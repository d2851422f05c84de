"""The training split as batches: a pure function of (seed, batch index, rank)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from fewgan.images import from_uint8
from fewgan.train.state import generator


def load_train_images(curated_dir: Path, split_dir: Path, resolution: int) -> tuple[torch.Tensor, list[str]]:
    """(uint8 N x 3 x R x R training images, their names); fewgan.data.loading refuses test rows, so no
    held-out image can reach training."""
    from fewgan.data.loading import load_images

    images, names = load_images(curated_dir, split_dir, which="train", resolution=resolution)
    R = resolution
    if images.dtype != torch.uint8 or images.dim() != 4 or tuple(images.shape[1:]) != (3, R, R):
        raise ValueError(f"{split_dir}: training images must be uint8 N x 3 x {R} x {R}, "
                         f"got {images.dtype} {tuple(images.shape)}; re-run curate/split")
    if images.shape[0] == 0:
        raise ValueError(f"{split_dir}: the split has no training images; re-run `fewgan split`")
    return images, list(names)


def load_train_labels(split_dir: Path, names: list[str]) -> tuple[torch.Tensor | None, dict[str, int]]:
    """(class index of each training image named in `names`, class -> index mapping of the split), or
    (None, {}) for a dataset without classes (fewgan.data.loading.labels_of)."""
    from fewgan.data.loading import labels_of

    return labels_of(split_dir, names)


def images_sha256(images: torch.Tensor, names: list[str]) -> str:
    """sha256 of the training set (names and pixels): part of the resume guard and of run.json."""
    h = hashlib.sha256("\n".join(names).encode())
    h.update(images.contiguous().numpy().tobytes())
    return h.hexdigest()


class Batches:
    """Batch k = a pure function of (seed, k, rank): epoch e = k // steps_per_epoch uses the permutation
    seeded by (seed, e); rank r takes every world-th entry of it (DistributedSampler style); incomplete
    batches are dropped. With fewer images per rank than the per-rank batch, each batch is drawn with
    replacement (a recorded fallback). `labels` (class index per image) travel with their images."""

    def __init__(self, images: torch.Tensor, batch: int, seed: int, rank: int, world: int,
                 xflip: bool, device: torch.device, channels_last: bool, labels: torch.Tensor | None = None):
        self.images = images.to(device)
        self.labels = labels.to(device) if labels is not None else None
        self.n = int(images.shape[0])
        self.batch, self.seed, self.rank, self.world = batch, seed, rank, world
        self.xflip, self.device, self.channels_last = xflip, device, channels_last
        self.per_rank = self.n // world
        self.steps_per_epoch = self.per_rank // batch
        self._perm: tuple[int, torch.Tensor] | None = None

    @property
    def with_replacement(self) -> bool:
        return self.steps_per_epoch == 0

    def position(self, k: int) -> dict:
        if self.with_replacement:
            return {"with_replacement": True, "step": k, "n_images": self.n}
        epoch, i = divmod(k, self.steps_per_epoch)
        return {"with_replacement": False, "epoch": epoch, "batch_in_epoch": i,
                "steps_per_epoch": self.steps_per_epoch, "n_images": self.n}

    def indices(self, k: int) -> torch.Tensor:
        if self.with_replacement:
            return torch.randint(self.n, (self.batch,), generator=generator(self.seed, "replacement", k, self.rank))
        epoch, i = divmod(k, self.steps_per_epoch)
        if self._perm is None or self._perm[0] != epoch:
            perm = torch.randperm(self.n, generator=generator(self.seed, "epoch", epoch))
            self._perm = (epoch, perm[: self.per_rank * self.world][self.rank::self.world])
        return self._perm[1][i * self.batch:(i + 1) * self.batch]

    def __call__(self, k: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(reals in [-1, 1], their class indices or None) of batch k."""
        idx = self.indices(k).to(self.images.device)
        x = from_uint8(self.images[idx])
        if self.xflip:
            flip = torch.rand(self.batch, generator=generator(self.seed, "xflip", k, self.rank)) < 0.5
            x = torch.where(flip.to(x.device)[:, None, None, None], x.flip(3), x)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, (self.labels[idx] if self.labels is not None else None)
