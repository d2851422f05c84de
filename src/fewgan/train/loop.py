"""The model-agnostic training loop: `fewgan train --dataset D --model M` ends up in `train()`.

Read `train()` top to bottom: configuration -> data -> the trainer (model, optimisers, EMA, phases:
`fewgan.train.trainer`) -> random streams -> resume -> the loop (`trainer.step`, then log / samples /
snapshot at iteration boundaries) -> interpolation strip -> publish. The model (fewgan.models.base.GANModel)
supplies its networks, phases, optimisers and losses; `fewgan.train.checkpoint` owns the files (snapshots,
resume state, publishing runs/D/M/train/); `fewgan.train.record` the samples and run.json's fields.

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

import json
import logging
import os
import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fewgan.device import resolve_device
from fewgan.images import grid, png_bytes, save_grid
from fewgan.io import atomic_write_bytes
from fewgan.models.base import GANModel
from fewgan.models.base import TrainContext
from fewgan.train import checkpoint as ckpt
from fewgan.train import ddp
from fewgan.train import record
from fewgan.train.data import images_sha256, load_train_images, load_train_labels, train_batches
from fewgan.train.diffaugment import augment
from fewgan.train.flops import CONVENTION as FLOPS_CONVENTION, StepFlops
from fewgan.train.logger import TrainLogger, rate_fields
from fewgan.train.record import augment_policy, class_record  # noqa: F401 (re-exported for bench, tests)
from fewgan.train.state import capture_rng, derive_seed, generator, params_hash, restore_rng
from fewgan.train.trainer import Trainer, build_trainer

log = logging.getLogger("fewgan.train")

#: train keys that do not change the weights' trajectory: changing them keeps a run resumable
#: (e.g. raising `iterations` continues a finished run).
NON_TRAJECTORY_KEYS = ("iterations", "budget", "snapshot_every", "sample_every", "log_every", "grid_size",
                       "interpolation_steps")


def budget_reached(budget: dict | None, it: int, batch: int, flops: float, seconds: float) -> bool:
    """Whether `train.budget` ({kimg | flops | seconds: N}, or null: train.iterations alone) is spent after
    `it` iterations. kimg and FLOPs are machine-independent; seconds (training steps only) are not."""
    if not budget:
        return False
    (unit, limit), = budget.items()
    used = {"kimg": it * batch / 1000, "flops": flops, "seconds": seconds}[unit]
    return used >= float(limit)


class TrainingDivergedError(RuntimeError):
    """A loss or weight became NaN/inf; nothing was written after the last good snapshot."""


class TrainingInterrupted(RuntimeError):
    """SIGINT/SIGTERM: the resume state was saved at a step boundary; re-run the command to continue."""


@dataclass
class TrainResult:
    run: dict  # the content of run.json (also returned by `run`)
    trainer: Trainer  # live model, optimisers and EMA copies at the end

    @property
    def model(self) -> GANModel:
        return self.trainer.gan


def run(params: dict, dataset: str, model: str, curated_dir: Path, split_dir: Path, out_dir: Path,
        work_dir: Path, threads: int, seed: int | None = None) -> dict:
    """Train `model` on the training split of `dataset` with training seed `seed`; return run.json's content."""
    return train(params, dataset, model, curated_dir, split_dir, out_dir, work_dir, threads, seed).run


def train(params: dict, dataset: str, model: str, curated_dir: Path, split_dir: Path, out_dir: Path,
          work_dir: Path, threads: int, seed: int | None = None) -> TrainResult:
    """`run`, returning the live trainer as well (tests, notebooks). `seed`: the cell's training seed
    (`fewgan train --seed`); None takes params `seed` (direct calls from Python)."""
    torch.set_num_threads(int(threads))
    pref = str(params["device"])
    d = ddp.init_from_env(pref.startswith("cuda") or (pref == "auto" and torch.cuda.is_available()))
    try:
        return _train(params, dataset, model, Path(curated_dir), Path(split_dir), Path(out_dir), Path(work_dir), d,
                      int(params["seed"]) if seed is None else int(seed))
    finally:
        ddp.cleanup(d)


def _train(params: dict, dataset: str, model: str, curated_dir: Path, split_dir: Path, out_dir: Path,
           work_dir: Path, d: ddp.Dist, seed: int) -> TrainResult:
    # ---- configuration ---------------------------------------------------------------------------
    cfg = dict(params["train"])
    model_cfg = dict(params["models"][model])
    R = int(params["datasets"][dataset]["resolution"])
    iterations, batch = cfg["iterations"], cfg["batch_size"]
    policy, policy_source = augment_policy(params, model)
    fallbacks: list[str] = []
    device = resolve_device(params["device"], "training", fallbacks, d.local_rank if d.enabled else None)
    cuda = device.type == "cuda"
    # auto = fp32 on every device: bf16 autocast was measured slower on an H200 (bench/README.md "GPU check")
    amp = cfg["precision"] == "bf16"
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
    batches = train_batches(params["datasets"][dataset], dataset, model, images, labels, class_index, local_batch,
                            seed, d.rank, d.world_size, cfg["xflip"], device, channels_last)  # both domains: translation
    if batches.with_replacement:
        fallbacks.append(batches.replacement_note())

    # ---- the trainer: model, optimisers, EMA copies, phases (identical initial weights on every rank) ---
    ctx = TrainContext(batch_size=batch, iterations=iterations, device=str(device),
                       precision="bf16" if amp else "fp32", world_size=d.world_size,
                       weights=params["evaluation"]["weights"])
    torch.manual_seed(seed)
    trainer = build_trainer(model, model_cfg, R, ctx, num_classes=num_classes, channels_last=channels_last,
                            wrap=ddp.wrapper(d, device))
    gan = trainer.gan
    fallbacks += list(gan.fallbacks())
    for f in fallbacks:
        log.warning("fallback: %s", f)

    # ---- random streams --------------------------------------------------------------------------
    gens = {"augment": generator(seed, "augment", d.rank), "latent": generator(seed, "latent", d.rank)}
    torch.manual_seed(derive_seed(seed, "train", d.rank))
    if cuda:
        torch.cuda.manual_seed_all(derive_seed(seed, "train-cuda", d.rank))
    random.seed(derive_seed(seed, "python", d.rank))
    np.random.seed(derive_seed(seed, "numpy", d.rank) % 2**32)
    # compute axis: FLOPs per iteration by cost class, measured on a copy (fewgan.train.flops)
    flops_aug = generator(seed, "flops")
    step_flops = StepFlops(trainer, local_batch, R, lambda x: augment(x, policy, flops_aug), d.world_size)

    # ---- resume ----------------------------------------------------------------------------------
    hash_inputs = {"format": ckpt.RESUME_FORMAT, "model": model, "model_cfg": model_cfg, "resolution": R,
                   "seed": seed, "augment_policy": policy, "world_size": d.world_size,
                   "train": {k: v for k, v in cfg.items() if k not in NON_TRAJECTORY_KEYS},
                   "data_sha256": data_sha256}
    if class_index:  # only datasets with classes: a classless run keeps its hash (and stays resumable)
        hash_inputs["classes"] = {"index": class_index, "labels": labels.tolist()}
    if batches.translation:  # only translation models: how the images become domains A and B
        hash_inputs["translation"] = batches.translation
    phash = params_hash(hash_inputs)
    resume_path = work_dir / "resume.pt"
    state, why = ckpt.load_resume(resume_path, phash, hash_inputs, iterations)
    snapshots: list[dict] = []
    samples: list[str] = []
    wall_before, step_seconds = 0.0, 0.0
    if state is not None:
        start = int(state["iteration"])
        trainer.load_state(state)
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

    flops_total = sum(step_flops(s) for s in range(start))  # a pure function of the steps run
    stop_at = start if start and budget_reached(cfg["budget"], start, batch, flops_total, step_seconds) else iterations
    trainer.train_mode()
    sampler = trainer.sampling_network()
    fixed_z = record.grid_latents(gan, cfg["grid_size"], generator(seed, "fixed_z"), batches).to(device)
    per_iteration = trainer.reals_per_iteration

    def write_resume(it: int) -> None:
        rngs = ddp.all_gather_object(d, capture_rng(gens))
        if d.is_main:
            ckpt.save_resume(resume_path, {
                "params_hash": phash, "hash_inputs": hash_inputs, "iteration": it, **trainer.state(),
                "rng": rngs, "data": batches.position(it * per_iteration), "snapshots": snapshots,
                "samples": samples, "sessions": sessions,
                "wall_seconds": wall_before + time.perf_counter() - t_session, "step_seconds": step_seconds,
            })

    def last_good() -> str:
        return (f"last good snapshot: {work_dir / snapshots[-1]['path']}" if snapshots else
                "no snapshot had been written yet") + f"; resume state {resume_path} left untouched"

    from tqdm import tqdm

    pbar = tqdm(total=iterations, initial=start, disable=not d.is_main, desc=f"train {dataset}/{model}",
                dynamic_ncols=True, mininterval=1.0 if os.isatty(2) else 30.0)
    logger = (TrainLogger(work_dir, start, dvclive=bool(cfg["live"]["dvclive"]), tensorboard=cfg["live"]["tensorboard"])
              if d.is_main else None)
    t_session = time.perf_counter()
    t_log, it_log = t_session, start
    try:
        with record.stop_on_signals(not d.enabled) as stop:
            it = start
            for step in range(start, stop_at):
                flops_total += step_flops(step)  # measured outside the timed step
                t0 = time.perf_counter()
                res = trainer.step(
                    step, reals=lambda j, s=step: batches(s * per_iteration + j),
                    latents=lambda: gan.sample_latents(local_batch, generator=gens["latent"], device="cpu").to(device),
                    augment=lambda x: augment(x, policy, gens["augment"]))
                it = step + 1
                step_seconds += time.perf_counter() - t0
                pbar.update(1)
                if ddp.any_over_ranks(d, not res.finite(), device):
                    losses = ", ".join(f"loss_{p}={v}" for p, v in res.losses.items())
                    raise TrainingDivergedError(
                        f"{dataset}/{model}: non-finite loss at iteration {it} (step {step}; {losses} on rank "
                        f"{d.rank}); training stopped and nothing was written after it ({last_good()}). Lower the "
                        "learning rates or change the model settings, then re-run (changed settings start a fresh run).")

                # ---- iteration boundary: log, samples, snapshot, signals ---------------------------
                last = it == iterations or budget_reached(cfg["budget"], it, batch, flops_total, step_seconds)
                do_log = it % cfg["log_every"] == 0 or last
                do_sample = it % cfg["sample_every"] == 0 or last
                do_snap = it % cfg["snapshot_every"] == 0 or last
                if do_log and d.is_main:
                    now = time.perf_counter()
                    row = {"iteration": it, "wall_s": round(wall_before + now - t_session, 3),
                           **rate_fields(it, (it - it_log) / max(now - t_log, 1e-9), batch, device), **res.row()}
                    logger.scalars(it, row)
                    pbar.set_postfix({f"loss_{p}": f"{v:.3f}" for p, v in res.losses.items()}, refresh=False)
                    t_log, it_log = now, it
                if do_sample and d.is_main:
                    canvas = grid(record.generate(gan, sampler, fixed_z, derive_seed(seed, "sample-noise"), device),
                                  cfg["grid_size"])
                    atomic_write_bytes(work_dir / "samples" / ckpt.sample_name(it), png_bytes(canvas))
                    logger.image(it, canvas)
                    if ckpt.sample_name(it) not in samples:
                        samples.append(ckpt.sample_name(it))
                if do_snap:
                    ddp.broadcast_buffers(d, gan, *(e.module for e in trainer.emas.values()))  # rank 0's BN stats
                    bad = record.nonfinite_networks(gan, trainer.emas)
                    if bad:
                        raise TrainingDivergedError(f"{dataset}/{model}: {', '.join(bad)} hold(s) NaN/inf weights at "
                                                    f"iteration {it}; snapshot not written ({last_good()})")
                    if d.is_main:
                        entry = {"iteration": it, "path": f"snapshots/{ckpt.snapshot_name(it)}",
                                 "kimg": it * batch / 1000, "train_seconds": round(step_seconds, 3),
                                 "flops": flops_total, "device": str(device)}
                        ckpt.write_snapshot(work_dir / entry["path"], model=model, model_cfg=model_cfg, resolution=R,
                                            num_classes=gan.num_classes, iteration=it, dataset=dataset,
                                            networks=trainer.snapshot_networks(), fallbacks=fallbacks,
                                            compute={k: entry[k] for k in ("kimg", "train_seconds", "flops", "device")})
                        snapshots[:] = [s for s in snapshots if s["iteration"] != it] + [entry]
                    write_resume(it)
                    ddp.barrier(d)
                if stop["signal"] is not None:
                    if not do_snap:
                        write_resume(it)
                    raise TrainingInterrupted(
                        f"{dataset}/{model}: stopped by {signal.Signals(stop['signal']).name} at iteration {it}; "
                        f"resume state saved to {resume_path}; re-run the same command to continue")
                if last:
                    break
    finally:
        pbar.close()
        if logger is not None:
            logger.close()
    wall = wall_before + time.perf_counter() - t_session
    done = it  # iterations run: train.iterations, or fewer when train.budget was reached
    log_rows = ckpt.read_log(work_dir / "log.jsonl", done) if d.is_main else []

    # ---- interpolation strip, run.json, publish ------------------------------------------------------
    info = gan.describe()
    run_json: dict[str, Any] = {
        "dataset": dataset, "model": model, "resolution": R, "iterations": done, "batch_size": batch,
        **{k: v for k, v in info.items() if k.startswith("params_")},
        "wall_seconds": round(wall, 3),
        "seconds_per_iteration": round(step_seconds / done, 6) if done else None,
        "device": str(device), "world_size": d.world_size, "threads": torch.get_num_threads(),
        "precision": "bf16" if amp else "fp32", "channels_last": channels_last,
        "augment_policy": policy, "augment_policy_source": policy_source, "xflip": cfg["xflip"],
        "phases": [{"name": p.name, "optimizer": p.optimizer, "repeats": p.repeats} for p in trainer.phases],
        "ema": {"networks": list(trainer.emas), "buffers_averaged": bool(gan.ema_buffers),
                "beta_at_end": gan.ema_beta(done - 1, batch)},
        "budget": {"setting": cfg["budget"], "max_iterations": iterations,
                   "reached": bool(cfg["budget"]) and budget_reached(cfg["budget"], done, batch, flops_total, step_seconds)},
        "compute": {"kimg": done * batch / 1000, "train_seconds": round(step_seconds, 3), "flops": flops_total,
                    "flops_per_iteration": step_flops.classes(), "flops_convention": FLOPS_CONVENTION,
                    "device": str(device)},
        "n_train_images": int(images.shape[0]), "train_images_sha256": data_sha256,
        "data_order": "per-epoch permutation seeded by (seed, epoch); drop_last"
                      + ("; batches with replacement" if batches.with_replacement else ""),
        "seed": seed, "params_hash": phash, "sessions_started_at": sessions,
        "last_log": log_rows[-1] if log_rows else None, "model_describe": info,
        "capabilities": sorted(gan.capabilities), "fallbacks": list(dict.fromkeys(fallbacks)),
        "snapshots": snapshots, "samples": samples,
        **class_record(gan, model, class_index, labels),
    }
    if d.is_main:
        from fewgan.provenance import collect

        steps = cfg["interpolation_steps"]
        z = record.interpolation_latents(gan, steps, generator(seed, "interpolation"), batches).to(device)
        save_grid(work_dir / "interpolation.png",
                  record.generate(gan, sampler, z, derive_seed(seed, "sample-noise"), device), steps)
        run_json["provenance"] = collect(params, str(device))
        ckpt.publish(work_dir, out_dir, run_json, log_rows)
        log.info("%s/%s: %d iterations in %.1f s (%.3f s/iteration); published %s", dataset, model,
                 done, wall, run_json["seconds_per_iteration"] or 0.0, out_dir)
    ddp.barrier(d)
    return TrainResult(run=run_json, trainer=trainer)


def stage(ctx) -> dict:
    """`fewgan train` (fewgan.stages)."""
    return run(ctx.params, ctx.dataset, ctx.model, ctx.paths["curated"], ctx.paths["split"], ctx.out,
               ctx.paths["work"], ctx.threads, ctx.seed)
