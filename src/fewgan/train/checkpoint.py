"""Snapshots, the resume state and publishing a finished run (the files of `fewgan train`).

- `work_dir` (work/D/M/, scratch, never declared to Snakemake/DVC): `resume.pt` (full state: model,
  EMA, optimisers, every RNG, iteration), `snapshots/`, `samples/`, `log.jsonl`, `interpolation.png`,
  written as training goes; every file is written atomically and only ever replaced, never modified.
- `out_dir` (runs/D/M/train/): published once, at the end, through `fewgan.io.atomic_dir`, so an engine
  never sees a half-written output and deleting out_dir loses nothing.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import shutil
from pathlib import Path

import torch

from fewgan.io import atomic_dir, atomic_torch_save, atomic_write_json, atomic_write_text, torch_load
from fewgan.models.registry import SNAPSHOT_FORMAT
from fewgan.train.state import RESUME_FORMAT

log = logging.getLogger("fewgan.train")


def snapshot_name(iteration: int) -> str:
    return f"snapshot_{iteration:07d}.pt"


def sample_name(iteration: int) -> str:
    return f"iter_{iteration:07d}.png"


def cpu_state(sd: dict) -> dict:
    return {k: (v.detach().cpu().contiguous() if torch.is_tensor(v) else v) for k, v in sd.items()}


def write_snapshot(path: Path, *, model: str, model_cfg: dict, resolution: int, num_classes: int,
                   iteration: int, dataset: str, networks: dict[str, dict], fallbacks: list[str],
                   compute: dict | None = None) -> None:
    """The saved networks (`<net>_ema` for averaged ones, `<net>` for the model's snapshot_networks) and
    what is needed to rebuild the model (`fewgan.models.load_snapshot` reads it)."""
    atomic_torch_save(path, {
        "format": SNAPSHOT_FORMAT, "model": model, "model_cfg": model_cfg, "resolution": resolution,
        **({"num_classes": num_classes} if num_classes else {}),
        "iteration": iteration, "dataset": dataset, **{k: cpu_state(v) for k, v in networks.items()},
        "fallbacks": list(fallbacks), **({"compute": compute} if compute is not None else {}),
    })


def save_resume(path: Path, state: dict) -> None:
    atomic_torch_save(path, {"format": RESUME_FORMAT, **state})


def describe_change(old: dict, new: dict) -> str:
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


def load_resume(path: Path, phash: str, hash_inputs: dict, iterations: int) -> tuple[dict | None, str]:
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
                      f"{describe_change(state.get('hash_inputs', {}), hash_inputs)})")
    if int(state["iteration"]) > iterations:
        return None, f"{path} is at iteration {state['iteration']}, beyond train.iterations={iterations}"
    return state, "ok"


def set_aside(work_dir: Path) -> None:
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


def prepare_work_dir(work_dir: Path, start: int, snapshots: list[dict]) -> None:
    """Before the first step of a session: a fresh start sets the old files aside; a resume drops what a
    crash between the last resume state and now left behind (snapshots and log rows after it)."""
    if start == 0:
        set_aside(work_dir)
    else:
        for p in (work_dir / "snapshots").glob("snapshot_*.pt"):
            if f"snapshots/{p.name}" not in {s["path"] for s in snapshots}:
                p.unlink()
    atomic_write_text(work_dir / "log.jsonl",
                      "".join(json.dumps(r) + "\n" for r in read_log(work_dir / "log.jsonl", start)))
    (work_dir / "snapshots").mkdir(exist_ok=True)
    (work_dir / "samples").mkdir(exist_ok=True)


def read_log(path: Path, upto: int) -> list[dict]:
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


def publish(work_dir: Path, out_dir: Path, run_json: dict, log_rows: list[dict]) -> None:
    """out_dir = the run's snapshots, samples, interpolation strip, log and run.json, swapped in at once."""
    with atomic_dir(out_dir) as tmp:
        (tmp / "snapshots").mkdir()
        for s in run_json["snapshots"]:
            _link_or_copy(work_dir / s["path"], tmp / s["path"])
        (tmp / "samples").mkdir()
        for name in run_json["samples"]:
            _link_or_copy(work_dir / "samples" / name, tmp / "samples" / name)
        _link_or_copy(work_dir / "interpolation.png", tmp / "interpolation.png")
        for live in ("dvclive", "tensorboard"):  # the live curves (fewgan.train.logger), as they ended
            if (work_dir / live).is_dir():
                shutil.copytree(work_dir / live, tmp / live)
        atomic_write_text(tmp / "log.jsonl", "".join(json.dumps(r) + "\n" for r in log_rows))
        atomic_write_text(tmp / "log.csv", _csv_text(log_rows))
        atomic_write_json(tmp / "run.json", run_json)
