"""Cost of what the training loop adds to a model's own step (DiffAugment, EMA, batch assembly).

    python -m fewgan.train.bench --model fastgan --resolution 256 --batch 8 --threads 2 --repeats 5

Builds the model with params/models/<model>.yaml (no training, no data needed) and reports medians in
milliseconds. `--step` also times full loop iterations (the model's phases, e.g. one D + one G step,
plus the loop's own work) on random images.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from fewgan.models.base import TrainContext
from fewgan.params import model_cfg
from fewgan.train.data import Batches
from fewgan.train.diffaugment import augment
from fewgan.train.trainer import build_trainer


def _median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return round(1000 * statistics.median(times), 2)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="fastgan")
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--policy", default="color,translation,cutout")
    ap.add_argument("--step", action="store_true", help="also time full D+G iterations")
    ap.add_argument("--set", nargs="*", default=[], help="model cfg overrides key=yaml-value")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    import yaml

    overrides = {}
    for kv in a.set:
        k, v = kv.split("=", 1)
        overrides[k] = yaml.safe_load(v)
    from fewgan.params import resolve

    demo = resolve("demo")[0]
    torch.manual_seed(0)
    ctx = TrainContext(batch_size=a.batch, iterations=demo["train"]["iterations"],
                       weights=demo["evaluation"]["weights"])
    trainer = build_trainer(a.model, model_cfg(a.model, overrides), a.resolution, ctx)
    gan = trainer.gan
    ema = trainer.emas[gan.primary]
    x = torch.rand(a.batch, 3, a.resolution, a.resolution) * 2 - 1
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (max(4 * a.batch, 32), 3, a.resolution, a.resolution), dtype=torch.uint8)
    batches = Batches(images, a.batch, 0, 0, 1, False, torch.device("cpu"), False)
    out = {
        "model": a.model, "resolution": a.resolution, "batch": a.batch, "threads": a.threads,
        "params_G": sum(p.numel() for p in gan.network(gan.primary).parameters()),
        "diffaugment_ms": _median_ms(lambda: augment(x, a.policy, g), a.repeats),
        "ema_update_ms": _median_ms(lambda: ema.update(gan.network(gan.primary), 0.999), a.repeats),
        "batch_ms": _median_ms(lambda: batches(3), a.repeats),
    }
    if a.step:
        s = {"i": 0}

        def step():
            trainer.step(s["i"], reals=lambda j: batches(s["i"] * trainer.reals_per_iteration + j),
                         latents=lambda: gan.sample_latents(a.batch), augment=lambda t: augment(t, a.policy, g))
            s["i"] += 1

        out["iteration_ms"] = _median_ms(step, a.repeats)
        out["loop_overhead_fraction"] = round((out["diffaugment_ms"] * 3 + out["ema_update_ms"] + out["batch_ms"])
                                              / out["iteration_ms"], 4)
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
