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

    translation: dict | None = None  # not translation data (PairBatches holds the dataset's block)

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

    def replacement_note(self, what: str = "training images") -> str:
        """The recorded fallback when `with_replacement`."""
        return (f"only {self.n} {what} for a per-process batch of {self.batch}: each batch is drawn with "
                "replacement")

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


class PairBatches:
    """The batches of a translation model (fewgan.data.pairs): batch k is (domain A, None, domain B), a pure
    function of (seed, k, rank) like `Batches`. Unpaired: one `Batches` per domain, each with its own data
    order (seeds derived from (seed, "domain", A|B)), as NICE-GAN and CycleGAN shuffle trainA and trainB
    independently. Paired: one `Batches` over the 6-channel stacks (A | B), so a pair keeps its alignment and
    its horizontal flip. `translation` (the dataset's block) goes into the resume hash."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor, paired: bool, translation: dict, batch: int, seed: int,
                 rank: int, world: int, xflip: bool, device: torch.device, channels_last: bool):
        from fewgan.train.state import derive_seed

        self.paired, self.translation, self.channels_last = paired, dict(translation), channels_last
        self.a_images = a
        if paired:
            if a.shape != b.shape:
                raise ValueError(f"paired domains must have one image per pair, got A {tuple(a.shape)}, B {tuple(b.shape)}")
            self.parts = {"pairs": Batches(torch.cat([a, b], 1), batch, seed, rank, world, xflip, device, False)}
        else:
            self.parts = {d: Batches(x, batch, derive_seed(seed, "domain", d), rank, world, xflip, device, False)
                          for d, x in (("A", a), ("B", b))}
        self.counts = {"A": int(a.shape[0]), "B": int(b.shape[0])}

    @property
    def with_replacement(self) -> bool:
        return any(p.with_replacement for p in self.parts.values())

    def position(self, k: int) -> dict:
        return {name: p.position(k) for name, p in self.parts.items()}

    def replacement_note(self) -> str:
        """The recorded fallback when `with_replacement`: which domain (or the pairs) has too few images."""
        return "; ".join(p.replacement_note(f"training {'pairs' if name == 'pairs' else 'images of domain ' + name}")
                         for name, p in self.parts.items() if p.with_replacement)

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x.contiguous()

    def __call__(self, k: int) -> tuple[torch.Tensor, None, torch.Tensor]:
        """(domain A batch, None, domain B batch) in [-1, 1]; the classes are the domains, so no labels."""
        if self.paired:
            x, _ = self.parts["pairs"](k)
            return self._layout(x[:, :3]), None, self._layout(x[:, 3:])
        return self._layout(self.parts["A"](k)[0]), None, self._layout(self.parts["B"](k)[0])

    def inputs(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """n domain-A training images in [-1, 1] on the CPU (sample grids, the strip): a permutation drawn
        with `gen`, repeated when there are fewer than n."""
        order = torch.randperm(self.counts["A"], generator=gen)
        return from_uint8(self.a_images[order.repeat(-(-n // len(order)))[:n]])


def train_batches(dataset_cfg: dict, dataset: str, model: str, images: torch.Tensor, labels: torch.Tensor | None,
                  class_index: dict[str, int], batch: int, seed: int, rank: int, world: int, xflip: bool,
                  device: torch.device, channels_last: bool) -> "Batches | PairBatches":
    """The loop's batches: `Batches` over every training image for a latent model; `PairBatches` over the two
    domains (`datasets.<dataset>.translation`, fewgan.data.pairs) for a model with the `translates` capability."""
    from fewgan.models.registry import import_model

    cls = import_model(model)
    if "translates" not in cls.capabilities:
        return Batches(images, batch, seed, rank, world, xflip, device, channels_last, labels=labels)
    from fewgan.data.pairs import TranslationConfigError, domain_images

    if "translation" not in dataset_cfg:
        raise TranslationConfigError(f"model {model!r} translates images but datasets.{dataset} has no translation "
                                     "block; run `fewgan params` (params/dataset_defaults.yaml supplies it)")
    translation = dataset_cfg["translation"]
    a, b, paired = domain_images(translation, images, labels, class_index, dataset=dataset)
    if getattr(cls, "paired", False) and not paired:
        raise TranslationConfigError(f"model {model!r} trains on aligned pairs, but datasets.{dataset}.translation"
                                     f".kind is {translation['kind']!r} (unpaired); use a kind: edges dataset")
    # an unpaired model on paired data draws the two domains independently, as on any unpaired dataset
    paired = paired and bool(getattr(cls, "paired", False))
    return PairBatches(a, b, paired, translation, batch, seed, rank, world, xflip, device, channels_last)
