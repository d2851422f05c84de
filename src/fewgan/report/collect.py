"""Read what the stages wrote under runs/ and data/ for the experiment matrix (docs/DESIGN.md formats).

Only `evaluate/metrics.json` is required per dataset x model; every other piece is optional and, when
absent or unreadable, becomes a visible "not available" note instead of an error.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from fewgan.io import read_json, safe_join

log = logging.getLogger(__name__)

STAGES_PER_CELL = ("train", "score", "select", "invert", "evaluate")
STAGES_PER_DATASET = (("curate", "curated"), ("split", "splits"))
UNTRAINED_LABEL = "feature extractor: untrained, not comparable to published FID"  # DESIGN.md wording


class ReportInputError(FileNotFoundError):
    """A required report input is missing or unreadable; the message names the file."""


@dataclass
class Cell:
    """Everything found for one dataset x model x training seed."""

    dataset: str
    model: str
    metrics: dict
    metrics_path: Path
    run: dict | None = None
    best: dict | None = None
    scores: pd.DataFrame | None = None
    scores_meta: dict | None = None
    inversion: pd.DataFrame | None = None
    inversion_meta: dict | None = None
    samples_png: Path | None = None
    reconstructions_png: Path | None = None
    stages: dict[str, dict] = field(default_factory=dict)
    seed: int = 0
    notes: list[str] = field(default_factory=list)       # "not available" notes, shown in the report
    fallbacks: list[tuple[str, str]] = field(default_factory=list)  # (where, text)


@dataclass
class DatasetInfo:
    name: str
    params: dict
    curated_summary: dict | None
    split_summary: dict | None
    synthetic: bool
    stages: dict[str, dict] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    fallbacks: list[tuple[str, str]] = field(default_factory=list)


def _optional_json(path: Path, notes: list[str], what: str) -> dict | None:
    if not path.is_file():
        notes.append(f"{what} not available ({path} missing)")
        return None
    try:
        data = read_json(path)
    except (OSError, json.JSONDecodeError) as exc:
        msg = f"{what} not available ({path} unreadable: {exc})"
        log.warning(msg)
        notes.append(msg)
        return None
    if not isinstance(data, dict):
        notes.append(f"{what} not available ({path} is not a JSON object)")
        return None
    return data


def _optional_csv(path: Path, notes: list[str], what: str, required_cols: tuple[str, ...]) -> pd.DataFrame | None:
    if not path.is_file():
        notes.append(f"{what} not available ({path} missing)")
        return None
    try:
        df = pd.read_csv(path)
    except Exception as exc:  # pandas raises several parser error types
        msg = f"{what} not available ({path} unreadable: {exc})"
        log.warning(msg)
        notes.append(msg)
        return None
    missing = [c for c in required_cols if c not in df.columns]
    if missing:
        msg = f"{what} not available ({path} lacks columns {missing})"
        log.warning(msg)
        notes.append(msg)
        return None
    return df


def _fallbacks_of(obj: dict | None, where: str) -> list[tuple[str, str]]:
    if not obj:
        return []
    return [(where, str(f)) for f in (obj.get("fallbacks") or [])]


def is_synthetic(ds_params: dict, curated_summary: dict | None) -> bool:
    """A dataset is synthetic when its params or its curated summary say so.

    Recognised: `synthetic: true` (params or summary), `source: synthetic`, `source: {type: synthetic}`,
    `kind: synthetic`."""
    for src in (ds_params or {}, curated_summary or {}):
        if src.get("synthetic") is True:
            return True
        for key in ("source", "kind", "type"):
            val = src.get(key)
            if isinstance(val, str) and val.lower() == "synthetic":
                return True
            if isinstance(val, dict) and str(val.get("type", val.get("kind", ""))).lower() == "synthetic":
                return True
    return False


def read_dataset(params: dict, name: str, data_dir: Path) -> DatasetInfo:
    notes: list[str] = []
    curated = safe_join(data_dir, Path("curated") / name)
    splits = safe_join(data_dir, Path("splits") / name)
    cs = _optional_json(curated / "summary.json", notes, f"{name}: curated summary")
    ss = _optional_json(splits / "summary.json", notes, f"{name}: split summary")
    ds_params = (params.get("datasets") or {}).get(name) or {}
    info = DatasetInfo(name=name, params=ds_params, curated_summary=cs, split_summary=ss,
                       synthetic=is_synthetic(ds_params, cs), notes=notes)
    for stage, folder in STAGES_PER_DATASET:
        st = _optional_json(safe_join(data_dir, Path(folder) / name) / "stage.json", notes, f"{name}: {stage} cost")
        if st:
            info.stages[stage] = st
    info.fallbacks += _fallbacks_of(cs, f"{name}/curate") + _fallbacks_of(ss, f"{name}/split")
    return info


def read_cell(runs_dir: Path, dataset: str, model: str, seed: int = 0) -> Cell:
    base = safe_join(runs_dir, Path(dataset) / model / f"s{int(seed)}")
    metrics_path = base / "evaluate" / "metrics.json"
    redo = f"`fewgan evaluate --dataset {dataset} --model {model} --seed {seed}`"
    if not metrics_path.is_file():
        raise ReportInputError(f"{metrics_path}: missing; the report needs evaluate/metrics.json for every "
                               f"dataset x model x seed in params experiment - run {redo} (or remove the model or "
                               "seed from the experiment in params/base.yaml or the profile)")
    try:
        metrics = read_json(metrics_path)
    except (OSError, json.JSONDecodeError) as exc:
        raise ReportInputError(f"{metrics_path}: unreadable ({exc}); re-run {redo}") from None
    if not isinstance(metrics, dict):
        raise ReportInputError(f"{metrics_path}: expected a JSON object; re-run `fewgan evaluate`")
    cell = Cell(dataset=dataset, model=model, metrics=metrics, metrics_path=metrics_path, seed=int(seed))
    n = cell.notes
    where = f"{dataset}/{model}/s{seed}"
    cell.run = _optional_json(base / "train" / "run.json", n, f"{where}: training record")
    cell.best = _optional_json(base / "select" / "best.json", n, f"{where}: selected snapshot")
    cell.scores = _optional_csv(base / "score" / "scores.csv", n, f"{where}: FID curve", ("iteration", "fid"))
    if cell.scores is not None:
        cell.scores = cell.scores.sort_values("iteration").reset_index(drop=True)
    cell.scores_meta = (_optional_json(base / "score" / "scores.json", n, f"{where}: scores metadata")
                        if (base / "score").is_dir() else None)
    cell.inversion = _optional_csv(base / "invert" / "inversion.csv", n, f"{where}: inversion curve",
                                   ("iteration", "lpips_mean"))
    if cell.inversion is not None:
        if "split" not in cell.inversion.columns:
            cell.inversion["split"] = "test"
        cell.inversion = cell.inversion.sort_values(["split", "iteration"]).reset_index(drop=True)
    cell.inversion_meta = (_optional_json(base / "invert" / "inversion.json", n, f"{where}: inversion metadata")
                           if (base / "invert").is_dir() else None)
    for attr, rel, what in (("samples_png", "evaluate/samples.png", "samples grid"),
                            ("reconstructions_png", "invert/reconstructions.png", "reconstructions grid")):
        p = base / rel
        if p.is_file():
            setattr(cell, attr, p)
        else:
            n.append(f"{where}: {what} not available ({p} missing)")
    for stage in STAGES_PER_CELL:
        st = _optional_json(base / stage / "stage.json", n, f"{where}: {stage} cost")
        if st:
            cell.stages[stage] = st
    cell.fallbacks += (_fallbacks_of(cell.run, f"{where}/train") + _fallbacks_of(cell.scores_meta, f"{where}/score")
                       + _fallbacks_of(cell.best, f"{where}/select")
                       + _fallbacks_of(cell.inversion_meta, f"{where}/invert")
                       + _fallbacks_of(metrics, f"{where}/evaluate"))
    return cell


def feature_extractor(cell: Cell) -> dict:
    """The evaluate feature_extractor block, with a label that is never empty."""
    fe = dict(cell.metrics.get("feature_extractor") or {})
    if not fe:
        fe = {"standard": False, "label": "feature extractor: unknown (metrics.json has no feature_extractor "
                                          "block), not comparable to published FID"}
    standard = bool(fe.get("standard", False))
    fe["standard"] = standard
    if not fe.get("label"):
        fe["label"] = (f"feature extractor: {fe.get('name', 'InceptionV3')} (standard weights)" if standard
                       else UNTRAINED_LABEL)
    return fe


def selected_by(cell: Cell) -> str | None:
    """The metric that chose the cell's snapshot (best.json), None when best.json does not say."""
    return (cell.best or {}).get("metric")


def inversion_headline(cell: Cell) -> str:
    """The inversion headline metric (inversion.json). A file written before headlines existed: LPIPS only when
    its backbone was the pretrained one, else MS-SSIM; never a guess that hides a fallback."""
    meta = cell.inversion_meta or {}
    head = (meta.get("headline") or {}).get("metric")
    if head:
        return head
    lp = (meta.get("settings") or {}).get("lpips") or {}
    return "msssim" if lp.get("note", lp.get("fallback")) else "lpips"
