"""The model-agnostic training loop: `fewgan train --dataset D --model M` ends up in `run()`.

Read `train()` top to bottom: configuration -> data -> model, optimisers, EMA -> resume -> (DDP wrap)
-> the loop (D step, G step, EMA, then log / NaN check / samples / snapshot at iteration boundaries)
-> interpolation strip -> publish. The model (fewgan.models.base.GANModel) supplies only the networks,
the optimisers and the losses.

Where things go:
- `work_dir` (work/D/M/, scratch, never declared to Snakemake/DVC): `resume.pt` (full state: model,
  EMA, optimisers, every RNG, iteration), `snapshots/`, `samples/`, `log.jsonl` written as training goes.
- `out_dir` (runs/D/M/train/): published once, at the end, by building a temp dir beside it and renaming
  it into place, so an engine never sees a half-written output and deleting out_dir loses nothing.

Conventions: "iteration i" means i completed training steps; a snapshot/sample/log row for iteration i
is taken after step i-1 (0-based `step`, the value the model's losses receive) finished. Snapshots are
written every `snapshot_every` iterations and at the end, always together with the resume state.

Determinism: all randomness is drawn from generators whose state is saved (global torch CPU/CUDA, Python
`random`, numpy, and two dedicated CPU generators: DiffAugment and latents); the data order is a pure
function of (seed, iteration). Sample grids and the interpolation strip run under `fork_rng`, so
writing them never changes the training trajectory. On CPU, a run interrupted at any point and
resumed produces bit-identical weights to an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import logging
import os
import random
import shutil
import signal
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fewgan.device import resolve_device
from fewgan.io import atomic_path, atomic_torch_save, atomic_write_json, atomic_write_text, torch_load
from fewgan.models import SNAPSHOT_FORMAT, GANModel, build_model
from fewgan.train import ddp
from fewgan.train.diffaugment import augment, parse_policy
from fewgan.train.ema import EMA
from fewgan.train.schema import TRAIN_SCHEMA
from fewgan.train.state import (RESUME_FORMAT, capture_rng, derive_seed, generator, params_hash,
                                restore_rng)

log = logging.getLogger("fewgan.train")

#: train keys that do not change the weights' trajectory: changing them keeps a run resumable
#: (e.g. raising `iterations` continues a finished run).
NON_TRAJECTORY_KEYS = ("iterations", "snapshot_every", "sample_every", "log_every", "grid_size",
                       "interpolation_steps", "nan_check_every")
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


def snapshot_name(iteration: int) -> str:
    return f"snapshot_{iteration:07d}.pt"


def sample_name(iteration: int) -> str:
    return f"iter_{iteration:07d}.png"


# --------------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------------
def load_train_images(curated_dir: Path, split_dir: Path, resolution: int) -> tuple[torch.Tensor, list[str]]:
    """The training rows of the split (uint8, N x 3 x R x R); fewgan.data.loading refuses test rows."""
    from fewgan.data.loading import load_images

    return load_images(curated_dir, split_dir, which="train", resolution=resolution)


class Batches:
    """Batch for step s = a pure function of (seed, s, rank): epoch e = s // steps_per_epoch uses the
    permutation seeded by (seed, e); rank r takes every world-th entry of it (DistributedSampler style);
    incomplete batches are dropped. With fewer images per rank than the per-rank batch, each batch is
    drawn with replacement (a recorded fallback)."""

    def __init__(self, images: torch.Tensor, batch: int, seed: int, rank: int, world: int,
                 xflip: bool, device: torch.device, channels_last: bool):
        self.images = images.to(device)
        self.n = int(images.shape[0])
        self.batch, self.seed, self.rank, self.world = batch, seed, rank, world
        self.xflip, self.device, self.channels_last = xflip, device, channels_last
        self.per_rank = self.n // world
        self.steps_per_epoch = self.per_rank // batch
        self._perm: tuple[int, torch.Tensor] | None = None

    @property
    def with_replacement(self) -> bool:
        return self.steps_per_epoch == 0

    def position(self, step: int) -> dict:
        if self.with_replacement:
            return {"with_replacement": True, "step": step, "n_images": self.n}
        epoch, k = divmod(step, self.steps_per_epoch)
        return {"with_replacement": False, "epoch": epoch, "batch_in_epoch": k,
                "steps_per_epoch": self.steps_per_epoch, "n_images": self.n}

    def indices(self, step: int) -> torch.Tensor:
        if self.with_replacement:
            return torch.randint(self.n, (self.batch,), generator=generator(self.seed, "replacement", step, self.rank))
        epoch, k = divmod(step, self.steps_per_epoch)
        if self._perm is None or self._perm[0] != epoch:
            perm = torch.randperm(self.n, generator=generator(self.seed, "epoch", epoch))
            self._perm = (epoch, perm[: self.per_rank * self.world][self.rank::self.world])
        return self._perm[1][k * self.batch:(k + 1) * self.batch]

    def __call__(self, step: int) -> torch.Tensor:
        idx = self.indices(step).to(self.images.device)
        x = self.images[idx].to(torch.float32) / 127.5 - 1.0  # uint8 -> [-1, 1] (inverse of DESIGN.md's rule)
        if self.xflip:
            flip = torch.rand(self.batch, generator=generator(self.seed, "xflip", step, self.rank)) < 0.5
            x = torch.where(flip.to(x.device)[:, None, None, None], x.flip(3), x)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


# --------------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------------
def _train_config(params: dict, dataset: str, model: str) -> dict:
    import jsonschema

    if "train" not in params:
        raise KeyError("params has no 'train' section: add params/train.yaml and run `fewgan params`")
    try:
        jsonschema.validate(params["train"], TRAIN_SCHEMA)
    except jsonschema.ValidationError as e:
        where = ".".join(str(p) for p in e.absolute_path) or "(section)"
        raise ValueError(f"params/train.yaml: key 'train.{where}': {e.message}") from None
    for section, name in (("datasets", dataset), ("models", model)):
        if name not in params.get(section, {}):
            raise KeyError(f"params['{section}'] has no entry {name!r} (known: {sorted(params.get(section, {}))})")
    if "resolution" not in params["datasets"][dataset]:
        raise KeyError(f"params['datasets']['{dataset}'] has no 'resolution' (params/datasets.yaml)")
    if "seed" not in params:
        raise KeyError("params has no top-level 'seed' (params/base.yaml)")
    return dict(params["train"])


def _augment_policy(params: dict, model: str, cfg: dict) -> tuple[str, str]:
    mcfg = params["models"][model]
    if "augment_policy" in mcfg:
        policy, source = mcfg["augment_policy"], f"models.{model}.augment_policy"
    else:
        policy, source = cfg["augment_policy"], "train.augment_policy"
    try:
        parse_policy(policy)
    except ValueError as e:
        raise ValueError(f"params {source}: {e}") from None
    return policy or "", source


def _device(pref: str, d: ddp.Dist, fallbacks: list[str]) -> torch.device:
    return resolve_device(pref, "training", fallbacks, d.local_rank if d.enabled else None)


# --------------------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------------------
def _cpu_state(sd: dict) -> dict:
    return {k: (v.detach().cpu().contiguous() if torch.is_tensor(v) else v) for k, v in sd.items()}


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> uint8 by the ADA/DiffAugment rule (docs/DESIGN.md)."""
    return ((x.detach().float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).cpu()


def save_grid(path: Path, images: torch.Tensor, nrow: int) -> None:
    """Write images ([-1, 1], N x 3 x H x W) as one PNG, nrow images per row, row-major."""
    from PIL import Image

    u8 = _to_uint8(images)
    n, c, h, w = u8.shape
    rows = -(-n // nrow)
    canvas = torch.zeros(c, rows * h, nrow * w, dtype=torch.uint8)
    for i in range(n):
        r, k = divmod(i, nrow)
        canvas[:, r * h:(r + 1) * h, k * w:(k + 1) * w] = u8[i]
    with atomic_path(path) as tmp:
        Image.fromarray(canvas.permute(1, 2, 0).numpy()).save(tmp, format="PNG")


@torch.no_grad()
def _generate(gan: GANModel, G: nn.Module, z: torch.Tensor, seed: int, device: torch.device) -> torch.Tensor:
    """EMA-generator images for fixed latents; runs under fork_rng with a fixed seed, so noise inputs
    are reproducible and the training RNG streams are untouched."""
    devices = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return torch.cat([gan.generate(G, z[i:i + SAMPLE_CHUNK]).float() for i in range(0, z.shape[0], SAMPLE_CHUNK)])


def _read_log(path: Path, upto: int) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            if row.get("iteration", 0) <= upto:
                rows.append(row)
    return rows


def _csv_text(rows: list[dict]) -> str:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _link_or_copy(src: Path, dst: Path) -> None:
    """Hard link (files in work/ are only ever replaced, never modified, so this is safe), else copy."""
    if not src.exists():
        raise FileNotFoundError(f"{src}: listed in the resume state but missing; delete {src.parent.parent} "
                                "(the work dir) to retrain from scratch")
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _describe_change(old: dict, new: dict) -> str:
    changed = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            sub = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            changed.append(f"{key}.{{{', '.join(map(str, sub))}}}")
        else:
            changed.append(key)
    return ", ".join(changed) or "(unknown)"


def _load_resume(path: Path, phash: str, hash_inputs: dict, iterations: int) -> tuple[dict | None, str]:
    """(state, why): state is None when training must start fresh; why says why (for the log)."""
    if not path.exists():
        return None, f"no resume state at {path}"
    try:
        state = torch_load(path, map_location="cpu")
    except Exception as e:  # noqa: BLE001 - any unreadable file means: start fresh, and say why
        return None, f"{path} is unreadable ({type(e).__name__}: {e})"
    if not isinstance(state, dict) or state.get("format") != RESUME_FORMAT:
        return None, f"{path} is not a {RESUME_FORMAT} file"
    if state.get("params_hash") != phash:
        return None, (f"{path} was written with different settings (changed: "
                      f"{_describe_change(state.get('hash_inputs', {}), hash_inputs)})")
    if int(state["iteration"]) > iterations:
        return None, f"{path} is at iteration {state['iteration']}, beyond train.iterations={iterations}"
    return state, "ok"


def _set_aside(work_dir: Path) -> None:
    """Fresh start: move the previous run's scratch files to work_dir/stale/ (one generation kept)."""
    items = [work_dir / n for n in ("resume.pt", "snapshots", "samples", "log.jsonl", "interpolation.png")]
    items = [p for p in items if p.exists()]
    if not items:
        return
    stale = work_dir / "stale"
    shutil.rmtree(stale, ignore_errors=True)
    stale.mkdir(parents=True)
    for p in items:
        os.replace(p, stale / p.name)
    log.warning("previous training state moved to %s (delete it to free space)", stale)


def publish(work_dir: Path, out_dir: Path, run_json: dict, log_rows: list[dict]) -> None:
    """Build out_dir's content in a temp dir beside it, then swap it into place."""
    parent = out_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    for stale in list(parent.glob(f".{out_dir.name}.tmp-*")) + list(parent.glob(f".{out_dir.name}.old-*")):
        shutil.rmtree(stale, ignore_errors=True)
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp = parent / f".{out_dir.name}.tmp-{tag}"
    tmp.mkdir()
    try:
        (tmp / "snapshots").mkdir()
        for s in run_json["snapshots"]:
            _link_or_copy(work_dir / s["path"], tmp / s["path"])
        (tmp / "samples").mkdir()
        for name in run_json["samples"]:
            _link_or_copy(work_dir / "samples" / name, tmp / "samples" / name)
        _link_or_copy(work_dir / "interpolation.png", tmp / "interpolation.png")
        atomic_write_text(tmp / "log.jsonl", "".join(json.dumps(r) + "\n" for r in log_rows))
        atomic_write_text(tmp / "log.csv", _csv_text(log_rows))
        atomic_write_json(tmp / "run.json", run_json)
        old = parent / f".{out_dir.name}.old-{tag}"
        if out_dir.exists():
            os.rename(out_dir, old)
        os.rename(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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


# --------------------------------------------------------------------------------------------------
# the loop
# --------------------------------------------------------------------------------------------------
def run(params: dict, dataset: str, model: str, curated_dir: Path, split_dir: Path, out_dir: Path,
        work_dir: Path, threads: int) -> dict:
    """Train `model` on the training split of `dataset`; return run.json's content."""
    return train(params, dataset, model, curated_dir, split_dir, out_dir, work_dir, threads).run


def train(params: dict, dataset: str, model: str, curated_dir: Path, split_dir: Path, out_dir: Path,
          work_dir: Path, threads: int) -> TrainResult:
    """`run`, returning the live model and EMA as well (tests, notebooks)."""
    torch.set_num_threads(int(threads))
    pref = str(params.get("device", "auto"))
    use_cuda = pref.startswith("cuda") or (pref == "auto" and torch.cuda.is_available())
    d = ddp.init_from_env(use_cuda)
    try:
        return _train(params, dataset, model, Path(curated_dir), Path(split_dir), Path(out_dir),
                      Path(work_dir), d)
    finally:
        ddp.cleanup(d)


def _train(params: dict, dataset: str, model: str, curated_dir: Path, split_dir: Path, out_dir: Path,
           work_dir: Path, d: ddp.Dist) -> TrainResult:
    # ---- configuration ---------------------------------------------------------------------------
    cfg = _train_config(params, dataset, model)
    model_cfg = dict(params["models"][model])
    R = int(params["datasets"][dataset]["resolution"])
    seed = int(params["seed"])
    iterations, batch = cfg["iterations"], cfg["batch_size"]
    policy, policy_source = _augment_policy(params, model, cfg)
    fallbacks: list[str] = []
    device = _device(params.get("device", "auto"), d, fallbacks)
    cuda = device.type == "cuda"
    amp = cfg["amp"] == "bf16" or (cfg["amp"] == "auto" and cuda)
    if amp and cuda and not torch.cuda.is_bf16_supported():
        fallbacks.append(f"{torch.cuda.get_device_name(device)} lacks bf16: trained in float32 (train.amp={cfg['amp']})")
        amp = False
    channels_last = cfg["channels_last"] is True or (cfg["channels_last"] == "auto" and cuda)
    if batch % d.world_size:
        raise ValueError(f"params train.batch_size={batch} is not divisible by the {d.world_size} processes; "
                         "the batch is global and is split evenly over ranks")
    local_batch = batch // d.world_size
    work_dir.mkdir(parents=True, exist_ok=True)

    # ---- data: the training split only -----------------------------------------------------------
    images, names = load_train_images(curated_dir, split_dir, R)
    if images.dtype != torch.uint8 or images.dim() != 4 or tuple(images.shape[1:]) != (3, R, R):
        raise ValueError(f"{split_dir}: training images must be uint8 N x 3 x {R} x {R}, "
                         f"got {images.dtype} {tuple(images.shape)}; re-run curate/split")
    if images.shape[0] == 0:
        raise ValueError(f"{split_dir}: the split has no training images; re-run `fewgan split --dataset {dataset}`")
    h = hashlib.sha256("\n".join(names).encode())
    h.update(images.contiguous().numpy().tobytes())
    data_sha256 = h.hexdigest()
    batches = Batches(images, local_batch, seed, d.rank, d.world_size, cfg["xflip"], device, channels_last)
    if batches.with_replacement:
        fallbacks.append(f"only {images.shape[0]} training images for a per-process batch of {local_batch}: "
                         "each batch is drawn with replacement")

    # ---- model, optimisers, EMA (identical initial weights on every rank) --------------------------
    torch.manual_seed(seed)
    gan = build_model(model, model_cfg, R).to(device)
    if channels_last:
        gan.G.to(memory_format=torch.channels_last)
        gan.D.to(memory_format=torch.channels_last)
    opts = gan.make_optimizers()
    if not isinstance(opts, dict) or set(opts) != {"G", "D"}:
        raise TypeError(f"{type(gan).__name__}.make_optimizers() must return {{'G': optimizer, 'D': optimizer}}, "
                        f"got {type(opts).__name__} with keys {sorted(opts) if isinstance(opts, dict) else '?'}")
    opt_G, opt_D = opts["G"], opts["D"]
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
    hash_inputs = {"format": RESUME_FORMAT, "model": model, "model_cfg": model_cfg, "resolution": R,
                   "seed": seed, "augment_policy": policy, "world_size": d.world_size,
                   "train": {k: v for k, v in cfg.items() if k not in NON_TRAJECTORY_KEYS},
                   "data_sha256": data_sha256}
    phash = params_hash(hash_inputs)
    resume_path = work_dir / "resume.pt"
    state, why = _load_resume(resume_path, phash, hash_inputs, iterations)
    snapshots: list[dict] = []
    samples: list[str] = []
    sessions: list[int] = []
    wall_before, step_seconds = 0.0, 0.0
    if state is not None:
        start = int(state["iteration"])
        gan.load_state_dict(state["model"])
        ema.load_state_dict(state["G_ema"])
        opt_G.load_state_dict(state["optim"]["G"])
        opt_D.load_state_dict(state["optim"]["D"])
        restore_rng(state["rng"][d.rank], gens)
        snapshots, samples = list(state["snapshots"]), list(state["samples"])
        sessions = list(state["sessions"]) + [start]
        wall_before, step_seconds = float(state["wall_seconds"]), float(state["step_seconds"])
        log.info("resuming %s/%s from iteration %d (%s)", dataset, model, start, resume_path)
    else:
        start = 0
        sessions = [0]
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
        if start == 0:
            _set_aside(work_dir)
        else:  # drop what a crash between the last resume state and now left behind
            for p in (work_dir / "snapshots").glob("snapshot_*.pt"):
                if {"iteration": int(p.stem.split("_")[1]), "path": f"snapshots/{p.name}"} not in snapshots:
                    p.unlink()
        atomic_write_text(work_dir / "log.jsonl", "".join(json.dumps(r) + "\n" for r in _read_log(work_dir / "log.jsonl", start)))
        (work_dir / "snapshots").mkdir(exist_ok=True)
        (work_dir / "samples").mkdir(exist_ok=True)
    ddp.barrier(d)

    # ---- multi-process wrapping --------------------------------------------------------------------
    # DDP(G) is passed to both phases: a D-phase G forward under no_grad does not arm DDP's reducer,
    # and one with a graph (FastGAN reuses the D step's fakes for the G step) is reduced when the G
    # step back-propagates through it. DDP(D) is updated in the D phase; the G phase gets the unwrapped
    # D, so D's G-phase gradients (local, cleared by the next zero_grad) are never all-reduced.
    G_train, D_train = gan.G, gan.D
    if d.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        unused = cfg["ddp_find_unused_parameters"]
        if unused == "auto":
            unused = bool(getattr(gan, "ddp_find_unused_parameters", False))
        kw = {"device_ids": [device.index] if cuda else None, "find_unused_parameters": unused}
        G_train, D_train = DDP(gan.G, **kw), DDP(gan.D, **kw)
    if cfg["compile"]:
        G_train, D_train = torch.compile(G_train), torch.compile(D_train)
    D_gphase = (torch.compile(gan.D) if cfg["compile"] else gan.D) if d.enabled else D_train
    gan.G.train()
    gan.D.train()

    def aug(x: torch.Tensor) -> torch.Tensor:
        return augment(x, policy, gens["augment"])

    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp)
    fixed_z = gan.sample_latents(cfg["grid_size"] ** 2, generator=generator(seed, "fixed_z"), device="cpu").to(device)
    first_bad = torch.full((), -1, dtype=torch.long, device=device)  # iteration of the first non-finite loss
    never = torch.iinfo(torch.long).max
    logf = open(work_dir / "log.jsonl", "a", encoding="utf-8") if d.is_main else None  # noqa: SIM115

    from tqdm import tqdm

    pbar = tqdm(total=iterations, initial=start, disable=not d.is_main, desc=f"train {dataset}/{model}",
                dynamic_ncols=True, mininterval=1.0 if os.isatty(2) else 30.0)
    t_session = time.perf_counter()
    t_log, it_log = t_session, start

    def write_resume(it: int) -> None:
        rngs = ddp.all_gather_object(d, capture_rng(gens))
        if d.is_main:
            atomic_torch_save(resume_path, {
                "format": RESUME_FORMAT, "params_hash": phash, "hash_inputs": hash_inputs,
                "iteration": it, "model": _cpu_state(gan.state_dict()), "G_ema": _cpu_state(ema.state_dict()),
                "optim": {"G": opt_G.state_dict(), "D": opt_D.state_dict()}, "rng": rngs,
                "data": batches.position(it), "snapshots": snapshots, "samples": samples,
                "sessions": sessions, "wall_seconds": wall_before + time.perf_counter() - t_session,
                "step_seconds": step_seconds,
            })

    def last_good() -> str:
        return (f"last good snapshot: {work_dir / snapshots[-1]['path']}" if snapshots else
                "no snapshot had been written yet") + f"; resume state {resume_path} left untouched"

    try:
        with _stop_on_signals(not d.enabled) as stop:
            for step in range(start, iterations):
                t0 = time.perf_counter()
                real = batches(step)
                z = gan.sample_latents(local_batch, generator=gens["latent"], device="cpu").to(device)

                # discriminator step
                opt_D.zero_grad(set_to_none=True)
                with autocast:
                    loss_D, logs_D = gan.discriminator_loss(G_train, D_train, real, z, step, aug)
                loss_D.backward()
                opt_D.step()

                # generator step (same latents, as FastGAN's and DCGAN's official loops)
                opt_G.zero_grad(set_to_none=True)
                with autocast:
                    loss_G, logs_G = gan.generator_loss(G_train, D_gphase, z, step, aug)
                loss_G.backward()
                opt_G.step()

                ema.update(gan.G, gan.ema_beta(step, batch))
                it = step + 1
                first_bad.masked_fill_((~torch.isfinite(loss_D.detach()) | ~torch.isfinite(loss_G.detach()))
                                       & (first_bad < 0), it)
                step_seconds += time.perf_counter() - t0
                pbar.update(1)

                # ---- iteration boundary: log, NaN check, samples, snapshot, signals --------------
                do_log = it % cfg["log_every"] == 0 or it == iterations
                do_sample = it % cfg["sample_every"] == 0 or it == iterations
                do_snap = it % cfg["snapshot_every"] == 0 or it == iterations
                stopping = stop["signal"] is not None
                if do_log or do_sample or do_snap or stopping or it % cfg["nan_check_every"] == 0:
                    bad = int(ddp.min_over_ranks(d, torch.where(first_bad < 0, never, first_bad)).item())
                    if bad != never:
                        raise TrainingDivergedError(
                            f"{dataset}/{model}: non-finite loss at iteration {bad} (step {bad - 1}; at "
                            f"iteration {it}: loss_D={float(loss_D.detach())}, loss_G={float(loss_G.detach())}); training stopped "
                            f"and nothing was written after it ({last_good()}). Lower the learning rates or "
                            "change the model settings, then re-run (changed settings start a fresh run).")
                if do_log and d.is_main:
                    now = time.perf_counter()
                    row = {"iteration": it, "wall_s": round(wall_before + now - t_session, 3),
                           "it_per_s": round((it - it_log) / max(now - t_log, 1e-9), 4),
                           "loss_D": float(loss_D.detach()), "loss_G": float(loss_G.detach()),
                           **{f"D/{k}": float(v) for k, v in logs_D.items()},
                           **{f"G/{k}": float(v) for k, v in logs_G.items()}}
                    logf.write(json.dumps(row) + "\n")
                    logf.flush()
                    pbar.set_postfix(loss_D=f"{row['loss_D']:.3f}", loss_G=f"{row['loss_G']:.3f}", refresh=False)
                    t_log, it_log = now, it
                if do_sample and d.is_main:
                    save_grid(work_dir / "samples" / sample_name(it),
                              _generate(gan, ema.module, fixed_z, derive_seed(seed, "sample-noise"), device),
                              cfg["grid_size"])
                    if sample_name(it) not in samples:
                        samples.append(sample_name(it))
                if do_snap:
                    ddp.broadcast_buffers(d, gan, ema.module)  # BatchNorm statistics: rank 0's everywhere
                    for name, module in (("G", gan.G), ("D", gan.D), ("G_ema", ema.module)):
                        if not all(torch.isfinite(t).all() for t in module.state_dict().values()
                                   if torch.is_tensor(t) and t.is_floating_point()):
                            raise TrainingDivergedError(f"{dataset}/{model}: {name} holds NaN/inf weights at iteration "
                                                        f"{it}; snapshot not written ({last_good()})")
                    if d.is_main:
                        atomic_torch_save(work_dir / "snapshots" / snapshot_name(it), {
                            "format": SNAPSHOT_FORMAT, "model": model, "model_cfg": model_cfg, "resolution": R,
                            "iteration": it, "dataset": dataset, "G_ema": _cpu_state(ema.state_dict()),
                            "fallbacks": list(fallbacks),
                        })
                        entry = {"iteration": it, "path": f"snapshots/{snapshot_name(it)}"}
                        if entry not in snapshots:
                            snapshots.append(entry)
                    write_resume(it)
                    ddp.barrier(d)
                if stopping:
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
    log_rows = _read_log(work_dir / "log.jsonl", iterations) if d.is_main else []

    # ---- interpolation strip, run.json, publish ------------------------------------------------------
    info = gan.describe()
    run_json: dict[str, Any] = {
        "dataset": dataset, "model": model, "resolution": R, "iterations": iterations, "batch_size": batch,
        "params_G": info.get("params_G"), "params_D": info.get("params_D"),
        "wall_seconds": round(wall, 3),
        "seconds_per_iteration": round(step_seconds / iterations, 6) if iterations else None,
        "device": str(device), "world_size": d.world_size, "threads": torch.get_num_threads(),
        "amp": "bf16" if amp else "off", "channels_last": channels_last, "compile": cfg["compile"],
        "augment_policy": policy, "augment_policy_source": policy_source, "xflip": cfg["xflip"],
        "ema": {"buffers_averaged": bool(gan.ema_buffers), "beta_at_end": gan.ema_beta(iterations - 1, batch)},
        "n_train_images": int(images.shape[0]), "train_images_sha256": data_sha256,
        "data_order": "per-epoch permutation seeded by (seed, epoch); drop_last"
                      + ("; batches with replacement" if batches.with_replacement else ""),
        "seed": seed, "params_hash": phash, "sessions_started_at": sessions,
        "last_log": log_rows[-1] if log_rows else None, "model_describe": info,
        "fallbacks": list(dict.fromkeys(fallbacks)),
        "snapshots": snapshots, "samples": samples,
    }
    if d.is_main:
        from fewgan.provenance import collect

        steps = cfg["interpolation_steps"]
        z01 = gan.sample_latents(2, generator=generator(seed, "interpolation"), device="cpu")
        w = torch.linspace(0, 1, steps).view(steps, *([1] * (z01.dim() - 1)))
        z = ((1 - w) * z01[:1] + w * z01[1:]).to(device)  # linear path in latent space
        save_grid(work_dir / "interpolation.png",
                  _generate(gan, ema.module, z, derive_seed(seed, "sample-noise"), device), steps)
        run_json["provenance"] = collect(params, str(device))
        publish(work_dir, out_dir, run_json, log_rows)
        log.info("%s/%s: %d iterations in %.1f s (%.3f s/iteration); published %s", dataset, model,
                 iterations, wall, run_json["seconds_per_iteration"] or 0.0, out_dir)
    ddp.barrier(d)
    return TrainResult(run=run_json, model=gan, ema=ema)
