"""The training loop's one logger: every logged row and sample grid goes to `log.jsonl` and, live while the
run trains, to DVCLive and TensorBoard (issue "watching a run").

- `log.jsonl` (always): one JSON row per `train.log_every` iterations (the run's record; published with it).
- DVCLive (`train.live.dvclive`, default on; DVC's own logger): `<work>/dvclive/` with one TSV per scalar
  under `plots/metrics/train/`, `metrics.json` (the latest values and step: `dvc exp show`, `dvc metrics
  show`) and the sample grids under `plots/images/samples/`. Written during training, so `dvc plots show`
  and the DVC extension for VS Code draw the curves while the run is going.
- TensorBoard (`train.live.tensorboard`: auto = when the `tensorboard` package is installed, `pip install
  'fewgan[tensorboard]'`; true = required): event files under `<work>/tensorboard/` through
  `torch.utils.tensorboard.SummaryWriter`, the same scalars and the grids: `tensorboard --logdir work/`.

Resume continues every curve at the resumed iteration, with each step once: log.jsonl is cut back by
`checkpoint.prepare_work_dir`, DVCLive's TSVs are cut back here (rows after the resume point were written by
the crashed session), TensorBoard purges them (`purge_step`). A fresh start moves old live files aside.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger("fewgan.train")

DVCLIVE_DIR = "dvclive"
TENSORBOARD_DIR = "tensorboard"
PREFIX = "train"  # DVCLive metric folder: plots/metrics/train/<name>.tsv


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory so far: CUDA's max allocated on a GPU, else the process's peak resident set (Linux)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    except (ImportError, OSError):
        return float("nan")


def rate_fields(it: int, it_per_s: float, batch: int, device: torch.device) -> dict[str, float]:
    """A log row's speed and memory columns: iterations and images per second, kimg so far, seconds per kimg,
    peak memory."""
    return {"it_per_s": round(it_per_s, 4), "kimg": it * batch / 1000, "img_per_s": round(it_per_s * batch, 3),
            "s_per_kimg": round(1000 / max(it_per_s * batch, 1e-9), 3), "peak_mem_mb": round(peak_memory_mb(device), 1)}


def _scalars(row: dict) -> dict[str, float]:
    return {k: float(v) for k, v in row.items()
            if k != "iteration" and isinstance(v, (int, float)) and not isinstance(v, bool)}


def truncate_dvclive(live_dir: Path, upto: int) -> None:
    """Drop the TSV rows whose step is after `upto` (written by a session that crashed after its last resume
    state) and the rows of images logged after it."""
    metrics = live_dir / "plots" / "metrics"
    for tsv in metrics.rglob("*.tsv") if metrics.is_dir() else ():
        with open(tsv, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f, delimiter="\t"))
        if not rows:
            continue
        head, body = rows[0], rows[1:]
        step_col = head.index("step") if "step" in head else None
        keep = [r for r in body if step_col is None or int(r[step_col]) <= upto]
        buf = io.StringIO()
        csv.writer(buf, delimiter="\t", lineterminator="\n").writerows([head, *keep])
        tsv.write_text(buf.getvalue(), encoding="utf-8")
    images = live_dir / "plots" / "images" / "samples"
    for png in images.glob("*.png") if images.is_dir() else ():
        if png.stem.isdigit() and int(png.stem) > upto:
            png.unlink()


class TrainLogger:
    """log.jsonl + DVCLive + TensorBoard behind one call per row (`scalars`) and per grid (`image`)."""

    def __init__(self, work_dir: Path, start: int, *, dvclive: bool = True, tensorboard: Any = "auto",
                 notes: list[str] | None = None):
        self.work_dir, self.start = Path(work_dir), int(start)
        self.notes = notes if notes is not None else []
        self.jsonl = open(self.work_dir / "log.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        self.live = self.tb = None
        live_dir, tb_dir = self.work_dir / DVCLIVE_DIR, self.work_dir / TENSORBOARD_DIR
        if self.start == 0:  # a fresh run: the previous run's curves go aside with its other files
            for d in (live_dir, tb_dir):
                if d.exists():
                    stale = self.work_dir / "stale" / d.name
                    shutil.rmtree(stale, ignore_errors=True)
                    stale.parent.mkdir(parents=True, exist_ok=True)
                    d.replace(stale)
        if dvclive:
            from dvclive import Live

            if self.start:
                truncate_dvclive(live_dir, self.start)
            # save_dvc_exp/dvcyaml off: the generated dvc.yaml declares these plots; fewgan never edits it
            self.live = Live(dir=str(live_dir), resume=self.start > 0, save_dvc_exp=False, dvcyaml=None,
                             report=None)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                if tensorboard is True:
                    raise RuntimeError("train.live.tensorboard: true, but the tensorboard package is not installed: "
                                       "pip install 'fewgan[tensorboard]' (or set it to auto/false)") from exc
                note = ("TensorBoard event files not written: the tensorboard package is not installed "
                        "(pip install 'fewgan[tensorboard]'); train.live.tensorboard: auto")
                log.info("%s", note)
                self.notes.append(note)
            else:
                # purge_step: events after the resume point, left by a crashed session, are dropped
                self.tb = SummaryWriter(log_dir=str(tb_dir), purge_step=self.start + 1 if self.start else None)

    @property
    def outputs(self) -> list[str]:
        return ["log.jsonl"] + ([DVCLIVE_DIR] if self.live else []) + ([TENSORBOARD_DIR] if self.tb else [])

    def scalars(self, step: int, row: dict) -> None:
        """One logged row (its `iteration` is `step`)."""
        self.jsonl.write(json.dumps(row) + "\n")
        self.jsonl.flush()
        values = _scalars(row)
        if self.live is not None:
            self.live.step = int(step)
            for k, v in values.items():
                self.live.log_metric(f"{PREFIX}/{k}", v)
            self.live.make_summary()
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(k, v, int(step))
            self.tb.flush()

    def image(self, step: int, grid_u8: torch.Tensor) -> None:
        """A sample grid (uint8 (3, H, W))."""
        if self.live is not None:
            from PIL import Image

            self.live.log_image(f"samples/{int(step):07d}.png",
                                Image.fromarray(grid_u8.permute(1, 2, 0).cpu().numpy()))
        if self.tb is not None:
            self.tb.add_image("samples", grid_u8.cpu(), int(step), dataformats="CHW")
            self.tb.flush()

    def close(self) -> None:
        self.jsonl.close()
        if self.live is not None:
            self.live.make_summary()
        if self.tb is not None:
            self.tb.close()
