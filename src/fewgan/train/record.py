"""What the training loop writes besides weights: sample images, the interpolation strip, run.json's fields,
and the signal handling that turns SIGINT/SIGTERM into a clean stop at an iteration boundary."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from typing import Any

import torch
from torch import nn

from fewgan.models.base import GANModel
from fewgan.train.diffaugment import parse_policy

log = logging.getLogger("fewgan.train")

#: images per forward pass when drawing sample grids (bounds memory at high resolution)
SAMPLE_CHUNK = 16


def augment_policy(params: dict, model: str) -> tuple[str, str]:
    """(DiffAugment policy, where it came from): the model's block overrides train.augment_policy."""
    mcfg = params["models"][model]
    if "augment_policy" in mcfg:
        policy, source = mcfg["augment_policy"], f"models.{model}.augment_policy"
    else:
        policy, source = params["train"]["augment_policy"], "train.augment_policy"
    try:
        parse_policy(policy)
    except ValueError as e:
        raise ValueError(f"params {source}: {e}") from None
    return policy or "", source


@torch.no_grad()
def generate(gan: GANModel, G: nn.Module, z: torch.Tensor, seed: int, device: torch.device) -> torch.Tensor:
    """Images of the sampling network for fixed latents; runs under fork_rng with a fixed seed, so noise
    inputs are reproducible and the training RNG streams are untouched."""
    devices = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return torch.cat([gan.generate(G, z[i:i + SAMPLE_CHUNK]).float() for i in range(0, z.shape[0], SAMPLE_CHUNK)])


def grid_latents(gan: GANModel, grid_size: int, gen: torch.Generator, batches=None) -> torch.Tensor:
    """The fixed latents of every sample grid; conditional models get one class per row (cycling). A translation
    model's inputs are images: fixed domain-A training images (`batches.inputs`), translated A -> B by `generate`."""
    n = grid_size ** 2
    if "translates" in gan.capabilities:
        return batches.inputs(n, gen)
    labels = ((torch.arange(n) // grid_size) % gan.num_classes) if gan.conditional else None
    return gan.sample_latents(n, generator=gen, device="cpu", labels=labels)


def interpolation_latents(gan: GANModel, steps: int, gen: torch.Generator, batches=None) -> torch.Tensor:
    """A linear path in latent space between two draws (conditional models: both ends of class 0, so only z
    is interpolated, not the class column). Translation models: a pixel blend of two domain-A training images
    (the strip shows their translations)."""
    end_labels = torch.zeros(2, dtype=torch.long) if gan.conditional else None
    z01 = (batches.inputs(2, gen) if "translates" in gan.capabilities else
           gan.sample_latents(2, generator=gen, device="cpu", labels=end_labels))
    w = torch.linspace(0, 1, steps).view(steps, *([1] * (z01.dim() - 1)))
    return (1 - w) * z01[:1] + w * z01[1:]


@contextlib.contextmanager
def stop_on_signals(enabled: bool):
    """SIGINT/SIGTERM set a flag that the loop checks after each step (a second signal aborts at once)."""
    box: dict[str, Any] = {"signal": None}
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield box
        return

    def handler(signum, frame):  # noqa: ARG001
        if box["signal"] is not None:
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}: aborting without saving")
        box["signal"] = signum
        log.warning("received %s: finishing this iteration, then saving the resume state",
                    signal.Signals(signum).name)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield box
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def class_record(gan: GANModel, model: str, class_index: dict[str, int], labels: torch.Tensor | None) -> dict:
    """run.json's class fields: the dataset's classes and mapping, and whether the model used them."""
    names = list(class_index)
    counts = ({c: int((labels == i).sum()) for c, i in class_index.items()} if labels is not None else {})
    if not names:
        use = "dataset has no classes"
    elif "translates" in gan.capabilities:
        use = (f"{model} translates: the classes named by the dataset's translation.domains are its domains "
               "A and B (no class labels are used)")
    elif gan.conditional:
        use = f"class-conditional: trained on the {len(names)} classes (label = last latent column)"
    else:
        use = (f"{model} is unconditional: the dataset's {len(names)} class label(s) are ignored "
               "(trained on all images as one set)")
    return {"num_classes": gan.num_classes, "conditional": bool(gan.conditional), "classes": names,
            "class_index": dict(class_index), "train_images_per_class": counts, "class_use": use}


def nonfinite_networks(gan: GANModel, emas: dict) -> list[str]:
    """Names of the networks (and `<net>_ema` copies) holding NaN/inf weights or buffers."""
    modules = {**{n: gan.network(n) for n in gan.networks}, **{f"{n}_ema": e.module for n, e in emas.items()}}
    return [name for name, m in modules.items()
            if not all(torch.isfinite(t).all() for t in m.state_dict().values()
                       if torch.is_tensor(t) and t.is_floating_point())]
