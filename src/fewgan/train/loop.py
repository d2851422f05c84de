"""The model-agnostic training loop: `fewgan train --dataset D --model M` ends up in `run()`.

Read `_train()` top to bottom: configuration -> data -> model, optimisers, EMA -> random streams ->
resume -> (DDP wrap) -> the loop (`train_step`, then log / samples / snapshot at iteration boundaries)
-> interpolation strip -> publish. The model (fewgan.models.base.GANModel) supplies the networks, the
optimisers and the losses; `fewgan.train.step.train_step` runs one iteration; `fewgan.train.checkpoint`
owns the files (snapshots, resume state, publishing runs/D/M/train/).

Conventions: "iteration i" means i completed training steps; a snapshot/sample/log row for iteration i
is taken after step i-1 (0-based `step`, the value the model's losses receive) finished. Snapshots are
written every `snapshot_every` iterations and at the end, always together with the resume state. A loss
that is not finite stops training at once (TrainingDivergedError), with nothing written after it.

Determinism: all randomness is drawn from generators whose state is saved (global torch CPU/CUDA, Python
`random`, numpy, and two dedicated CPU generators: DiffAugment and latents); the data order is a pure
function of (seed, iteration). Sample grids and the interpolation strip run under `fork_rng`, so
writing them never changes the training trajectory. On CPU, a run interrupted at any point and
resumed produces bit-identical weights to an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fewgan.device import resolve_device
from fewgan.images import save_grid
from fewgan.models import GANModel, build_model
from fewgan.train import ddp
from fewgan.train import checkpoint as ckpt
from fewgan.train.data import Batches, images_sha256, load_train_images, load_train_labels
from fewgan.train.diffaugment import augment, parse_policy
from fewgan.train.ema import EMA
from fewgan.train.state import capture_rng, derive_seed, generator, params_hash, restore_rng
from fewgan.train.step import Nets, train_step

log = logging.getLogger("fewgan.train")

#: train keys that do not change the weights' trajectory: changing them keeps a run resumable
#: (e.g. raising `iterations` continues a finished run).
NON_TRAJECTORY_KEYS = ("iterations", "snapshot_every", "sample_every", "log_every", "grid_size",
                       "interpolation_steps")
#: images per forward pass when drawing sample grids (bounds memory at high resolution)
SAMPLE_CHUNK = 16


class TrainingDivergedError(RuntimeError):
    """A loss or weight became NaN/inf; nothing was written after the last good snapshot."""


class TrainingInterrupted(RuntimeError):
    """SIGINT/SIGTERM: the resume state was saved at a step boundary; re-run the command to continue."""


@dataclass
class TrainResult:
    run: dict  # the content of run.json (also returned by `run`)
    model: GANModel  # live model (G, D) at the end
    ema: EMA  # EMA generator at the end


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
def _generate(gan: GANModel, G: nn.Module, z: torch.Tensor, seed: int, device: torch.device) -> torch.Tensor:
    """EMA-generator images for fixed latents; runs under fork_rng with a fixed seed, so noise inputs
    are reproducible and the training RNG streams are untouched."""
    devices = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return torch.cat([gan.generate(G, z[i:i + SAMPLE_CHUNK]).float() for i in range(0, z.shape[0], SAMPLE_CHUNK)])


@contextlib.contextmanager
def _stop_on_signals(enabled: bool):
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
    elif gan.conditional:
        use = f"class-conditional: trained on the {len(names)} classes (label = last latent column)"
    else:
        use = (f"{model} is unconditional: the dataset's {len(names)} class label(s) are ignored "
               "(trained on all images as one set)")
    return {"num_classes": gan.num_classes, "conditional": bool(gan.conditional), "classes": names,
            "class_index": dict(class_index), "train_images_per_class": counts, "class_use": use}


def run(params: dict, dataset: str, model: str, curated_dir: Path, split_dir: Path, out_dir: Path,
        work_dir: Path, threads: int) -> dict:
    """Train `model` on the training split of `dataset`; return run.json's content."""
    return train(params, dataset, model, curated_dir, split_dir, out_dir, work_dir, threads).run


def train(params: dict, dataset: str, model: str, curated_dir: Path, split_dir: Path, out_dir: Path,
          work_dir: Path, threads: int) -> TrainResult:
    """`run`, returning the live model and EMA as well (tests, notebooks)."""
    torch.set_num_threads(int(threads))
    pref = str(params["device"])
    d = ddp.init_from_env(pref.startswith("cuda") or (pref == "auto" and torch.cuda.is_available()))
    try:
        return _train(params, dataset, model, Path(curated_dir), Path(split_dir), Path(out_dir), Path(work_dir), d)
    finally:
        ddp.cleanup(d)


def _train(params: dict, dataset: str, model: str, curated_dir: Path, split_dir: Path, out_dir: Path,
           work_dir: Path, d: ddp.Dist) -> TrainResult:
    # ---- configuration ---------------------------------------------------------------------------
    cfg = dict(params["train"])
    model_cfg = dict(params["models"][model])
    R = int(params["datasets"][dataset]["resolution"])
    seed = int(params["seed"])
    iterations, batch = cfg["iterations"], cfg["batch_size"]
    policy, policy_source = augment_policy(params, model)
    fallbacks: list[str] = []
    device = resolve_device(params["device"], "training", fallbacks, d.local_rank if d.enabled else None)
    cuda = device.type == "cuda"
    amp = cfg["precision"] == "bf16" or (cfg["precision"] == "auto" and cuda)
    if amp and cuda and not torch.cuda.is_bf16_supported():
        fallbacks.append(f"{torch.cuda.get_device_name(device)} lacks bf16: trained in float32 "
                         f"(train.precision={cfg['precision']})")
        amp = False
    channels_last = cfg["channels_last"] is True or (cfg["channels_last"] == "auto" and cuda)
    if batch % d.world_size:
        raise ValueError(f"params train.batch_size={batch} is not divisible by the {d.world_size} processes; "
                         "the batch is global and is split evenly over ranks")
    local_batch = batch // d.world_size
    work_dir.mkdir(parents=True, exist_ok=True)

    # ---- data: the training split only -----------------------------------------------------------
    images, names = load_train_images(curated_dir, split_dir, R)
    labels, class_index = load_train_labels(split_dir, names)
    num_classes = len(class_index)  # 0 without classes; conditional models use them, the others ignore them
    data_sha256 = images_sha256(images, names)
    batches = Batches(images, local_batch, seed, d.rank, d.world_size, cfg["xflip"], device, channels_last,
                      labels=labels)
    if batches.with_replacement:
        fallbacks.append(f"only {images.shape[0]} training images for a per-process batch of {local_batch}: "
                         "each batch is drawn with replacement")

    # ---- model, optimisers, EMA (identical initial weights on every rank) --------------------------
    torch.manual_seed(seed)
    gan = build_model(model, model_cfg, R, num_classes).to(device)
    gan.set_memory_format(channels_last)
    opts = gan.make_optimizers()
    if not isinstance(opts, dict) or set(opts) != {"G", "D"}:
        raise TypeError(f"{type(gan).__name__}.make_optimizers() must return {{'G': optimizer, 'D': optimizer}}, "
                        f"got {type(opts).__name__} with keys {sorted(opts) if isinstance(opts, dict) else '?'}")
    ema = EMA(gan.G, gan.ema_buffers)
    # models that need the resolved params beyond their own block (FastGAN: where the LPIPS-VGG weights
    # are); called before fallbacks(), which may build that network
    gan.configure(params)
    fallbacks += list(gan.fallbacks())
    for f in fallbacks:
        log.warning("fallback: %s", f)

    # ---- random streams --------------------------------------------------------------------------
    gens = {"augment": generator(seed, "augment", d.rank), "latent": generator(seed, "latent", d.rank)}
    torch.manual_seed(derive_seed(seed, "train", d.rank))
    if cuda:
        torch.cuda.manual_seed_all(derive_seed(seed, "train-cuda", d.rank))
    random.seed(derive_seed(seed, "python", d.rank))
    import numpy as np

    np.random.seed(derive_seed(seed, "numpy", d.rank) % 2**32)

    # ---- resume ----------------------------------------------------------------------------------
    hash_inputs = {"format": ckpt.RESUME_FORMAT, "model": model, "model_cfg": model_cfg, "resolution": R,
                   "seed": seed, "augment_policy": policy, "world_size": d.world_size,
                   "train": {k: v for k, v in cfg.items() if k not in NON_TRAJECTORY_KEYS},
                   "data_sha256": data_sha256}
    if class_index:  # only datasets with classes: a classless run keeps its hash (and stays resumable)
        hash_inputs["classes"] = {"index": class_index, "labels": labels.tolist()}
    phash = params_hash(hash_inputs)
    resume_path = work_dir / "resume.pt"
    state, why = ckpt.load_resume(resume_path, phash, hash_inputs, iterations)
    snapshots: list[dict] = []
    samples: list[str] = []
    wall_before, step_seconds = 0.0, 0.0
    if state is not None:
        start = int(state["iteration"])
        gan.load_state_dict(state["model"])
        ema.load_state_dict(state["G_ema"])
        opts["G"].load_state_dict(state["optim"]["G"])
        opts["D"].load_state_dict(state["optim"]["D"])
        restore_rng(state["rng"][d.rank], gens)
        snapshots, samples = list(state["snapshots"]), list(state["samples"])
        sessions = list(state["sessions"]) + [start]
        wall_before, step_seconds = float(state["wall_seconds"]), float(state["step_seconds"])
        log.info("resuming %s/%s from iteration %d (%s)", dataset, model, start, resume_path)
    else:
        start, sessions = 0, [0]
        if resume_path.exists():
            log.warning("not resuming %s/%s: %s; starting from iteration 0", dataset, model, why)
        else:
            log.info("starting %s/%s from iteration 0 (%s)", dataset, model, why)
    del state
    starts = ddp.all_gather_object(d, start)  # every rank read the same file; make sure they agree
    if len(set(starts)) != 1:
        raise RuntimeError(f"ranks disagree on the resume iteration ({starts}): is {work_dir} on a disk that "
                           "every process sees? Delete it to start fresh")
    if d.is_main:
        ckpt.prepare_work_dir(work_dir, start, snapshots)
    ddp.barrier(d)

    # ---- multi-process wrapping --------------------------------------------------------------------
    # DDP(G) is passed to both phases: a D-phase G forward under no_grad does not arm DDP's reducer,
    # and one with a graph (FastGAN reuses the D step's fakes for the G step) is reduced when the G
    # step back-propagates through it. DDP(D) is updated in the D phase; the G phase gets the unwrapped
    # D, so D's G-phase gradients (local, cleared by the next zero_grad) are never all-reduced.
    nets = Nets(gan.G, gan.D, gan.D)
    if d.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        kw = {"device_ids": [device.index] if cuda else None}
        nets = Nets(DDP(gan.G, **kw), DDP(gan.D, **kw), gan.D)
    gan.G.train()
    gan.D.train()
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp)
    n_grid = cfg["grid_size"] ** 2
    # conditional models: one class per grid row (cycling through the classes)
    grid_labels = ((torch.arange(n_grid) // cfg["grid_size"]) % gan.num_classes) if gan.conditional else None
    fixed_z = gan.sample_latents(n_grid, generator=generator(seed, "fixed_z"), device="cpu",
                                 labels=grid_labels).to(device)

    def write_resume(it: int) -> None:
        rngs = ddp.all_gather_object(d, capture_rng(gens))
        if d.is_main:
            ckpt.save_resume(resume_path, {
                "params_hash": phash, "hash_inputs": hash_inputs, "iteration": it,
                "model": ckpt.cpu_state(gan.state_dict()), "G_ema": ckpt.cpu_state(ema.state_dict()),
                "optim": {"G": opts["G"].state_dict(), "D": opts["D"].state_dict()}, "rng": rngs,
                "data": batches.position(it * gan.d_steps), "snapshots": snapshots, "samples": samples,
                "sessions": sessions, "wall_seconds": wall_before + time.perf_counter() - t_session,
                "step_seconds": step_seconds,
            })

    def last_good() -> str:
        return (f"last good snapshot: {work_dir / snapshots[-1]['path']}" if snapshots else
                "no snapshot had been written yet") + f"; resume state {resume_path} left untouched"

    from tqdm import tqdm

    pbar = tqdm(total=iterations, initial=start, disable=not d.is_main, desc=f"train {dataset}/{model}",
                dynamic_ncols=True, mininterval=1.0 if os.isatty(2) else 30.0)
    logf = open(work_dir / "log.jsonl", "a", encoding="utf-8") if d.is_main else None  # noqa: SIM115
    t_session = time.perf_counter()
    t_log, it_log = t_session, start
    try:
        with _stop_on_signals(not d.enabled) as stop:
            for step in range(start, iterations):
                t0 = time.perf_counter()
                res = train_step(
                    gan, nets, opts, ema, step=step, batch_size=batch, autocast=autocast,
                    reals=lambda j, s=step: batches(s * gan.d_steps + j),
                    latents=lambda: gan.sample_latents(local_batch, generator=gens["latent"], device="cpu").to(device),
                    augment=lambda x: augment(x, policy, gens["augment"]))
                it = step + 1
                step_seconds += time.perf_counter() - t0
                pbar.update(1)
                if ddp.any_over_ranks(d, not (math.isfinite(res.loss_D) and math.isfinite(res.loss_G)), device):
                    raise TrainingDivergedError(
                        f"{dataset}/{model}: non-finite loss at iteration {it} (step {step}; loss_D={res.loss_D}, "
                        f"loss_G={res.loss_G} on rank {d.rank}); training stopped and nothing was written after "
                        f"it ({last_good()}). Lower the learning rates or change the model settings, then re-run "
                        "(changed settings start a fresh run).")

                # ---- iteration boundary: log, samples, snapshot, signals ---------------------------
                do_log = it % cfg["log_every"] == 0 or it == iterations
                do_sample = it % cfg["sample_every"] == 0 or it == iterations
                do_snap = it % cfg["snapshot_every"] == 0 or it == iterations
                if do_log and d.is_main:
                    now = time.perf_counter()
                    row = {"iteration": it, "wall_s": round(wall_before + now - t_session, 3),
                           "it_per_s": round((it - it_log) / max(now - t_log, 1e-9), 4),
                           "loss_D": res.loss_D, "loss_G": res.loss_G,
                           **{f"D/{k}": v for k, v in res.logs_D.items()},
                           **{f"G/{k}": v for k, v in res.logs_G.items()}}
                    logf.write(json.dumps(row) + "\n")
                    logf.flush()
                    pbar.set_postfix(loss_D=f"{res.loss_D:.3f}", loss_G=f"{res.loss_G:.3f}", refresh=False)
                    t_log, it_log = now, it
                if do_sample and d.is_main:
                    save_grid(work_dir / "samples" / ckpt.sample_name(it),
                              _generate(gan, ema.module, fixed_z, derive_seed(seed, "sample-noise"), device),
                              cfg["grid_size"])
                    if ckpt.sample_name(it) not in samples:
                        samples.append(ckpt.sample_name(it))
                if do_snap:
                    ddp.broadcast_buffers(d, gan, ema.module)  # BatchNorm statistics: rank 0's everywhere
                    for name, module in (("G", gan.G), ("D", gan.D), ("G_ema", ema.module)):
                        if not all(torch.isfinite(t).all() for t in module.state_dict().values()
                                   if torch.is_tensor(t) and t.is_floating_point()):
                            raise TrainingDivergedError(f"{dataset}/{model}: {name} holds NaN/inf weights at iteration "
                                                        f"{it}; snapshot not written ({last_good()})")
                    if d.is_main:
                        entry = {"iteration": it, "path": f"snapshots/{ckpt.snapshot_name(it)}"}
                        ckpt.write_snapshot(work_dir / entry["path"], model=model, model_cfg=model_cfg, resolution=R,
                                            num_classes=gan.num_classes, iteration=it, dataset=dataset,
                                            G_ema=ema.state_dict(), fallbacks=fallbacks)
                        if entry not in snapshots:
                            snapshots.append(entry)
                    write_resume(it)
                    ddp.barrier(d)
                if stop["signal"] is not None:
                    if not do_snap:
                        write_resume(it)
                    raise TrainingInterrupted(
                        f"{dataset}/{model}: stopped by {signal.Signals(stop['signal']).name} at iteration {it}; "
                        f"resume state saved to {resume_path}; re-run the same command to continue")
    finally:
        pbar.close()
        if logf is not None:
            logf.close()
    wall = wall_before + time.perf_counter() - t_session
    log_rows = ckpt.read_log(work_dir / "log.jsonl", iterations) if d.is_main else []

    # ---- interpolation strip, run.json, publish ------------------------------------------------------
    info = gan.describe()
    run_json: dict[str, Any] = {
        "dataset": dataset, "model": model, "resolution": R, "iterations": iterations, "batch_size": batch,
        "params_G": info.get("params_G"), "params_D": info.get("params_D"),
        "wall_seconds": round(wall, 3),
        "seconds_per_iteration": round(step_seconds / iterations, 6) if iterations else None,
        "device": str(device), "world_size": d.world_size, "threads": torch.get_num_threads(),
        "precision": "bf16" if amp else "fp32", "channels_last": channels_last,
        "augment_policy": policy, "augment_policy_source": policy_source, "xflip": cfg["xflip"],
        "ema": {"buffers_averaged": bool(gan.ema_buffers), "beta_at_end": gan.ema_beta(iterations - 1, batch)},
        "n_train_images": int(images.shape[0]), "train_images_sha256": data_sha256,
        "data_order": "per-epoch permutation seeded by (seed, epoch); drop_last"
                      + ("; batches with replacement" if batches.with_replacement else ""),
        "seed": seed, "params_hash": phash, "sessions_started_at": sessions,
        "last_log": log_rows[-1] if log_rows else None, "model_describe": info,
        "fallbacks": list(dict.fromkeys(fallbacks)),
        "snapshots": snapshots, "samples": samples,
        **class_record(gan, model, class_index, labels),
    }
    if d.is_main:
        from fewgan.provenance import collect

        steps = cfg["interpolation_steps"]
        # conditional models: both ends of one class (class 0), so only z is interpolated, not the class column
        end_labels = torch.zeros(2, dtype=torch.long) if gan.conditional else None
        z01 = gan.sample_latents(2, generator=generator(seed, "interpolation"), device="cpu", labels=end_labels)
        w = torch.linspace(0, 1, steps).view(steps, *([1] * (z01.dim() - 1)))
        z = ((1 - w) * z01[:1] + w * z01[1:]).to(device)  # linear path in latent space
        save_grid(work_dir / "interpolation.png",
                  _generate(gan, ema.module, z, derive_seed(seed, "sample-noise"), device), steps)
        run_json["provenance"] = collect(params, str(device))
        ckpt.publish(work_dir, out_dir, run_json, log_rows)
        log.info("%s/%s: %d iterations in %.1f s (%.3f s/iteration); published %s", dataset, model,
                 iterations, wall, run_json["seconds_per_iteration"] or 0.0, out_dir)
    ddp.barrier(d)
    return TrainResult(run=run_json, model=gan, ema=ema)


def stage(ctx) -> dict:
    """`fewgan train` (fewgan.stages)."""
    return run(ctx.params, ctx.dataset, ctx.model, ctx.paths["curated"], ctx.paths["split"], ctx.out,
               ctx.paths["work"], ctx.threads)
