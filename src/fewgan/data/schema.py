"""Schema, defaults and resolution of one dataset entry of `params/datasets.yaml`.

`params["datasets"]` maps a dataset name to an entry. `DATASET_SCHEMA` is the JSON Schema of one
entry (additionalProperties: false everywhere, so a typo is an error, not a silently ignored key).
`resolve_entry(params, name)` validates the entry and fills in `DEFAULTS`.

Source paths are relative to one of two roots (`source.root`):
- `repo`: the current working directory (the repository root when run by Snakemake/DVC);
- `shared_data`: the shared real-image folder. Its location is, in order of precedence, the
  environment variable `FEWGAN_SHARED_DATA`, the top-level params key `shared_data_root`, or the
  default `../shared/data` (relative to the working directory).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import jsonschema

#: Resolutions fewgan's models support: powers of two from 32 to 1024.
RESOLUTIONS = [32, 64, 128, 256, 512, 1024]
#: PIL's own default Image.MAX_IMAGE_PIXELS (Pillow docs: 1024 * 1024 * 1024 // 4 // 3).
PIL_DEFAULT_MAX_PIXELS = 89_478_485
DEFAULT_SHARED_DATA_ROOT = "../shared/data"
SHARED_DATA_ENV = "FEWGAN_SHARED_DATA"

_SHA256 = {"type": ["string", "null"], "pattern": "^[0-9a-f]{64}$"}
_PATHS = {"oneOf": [{"type": "string", "minLength": 1},
                    {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}}]}

DATASET_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "fewgan dataset entry",
    "type": "object",
    "additionalProperties": False,
    "required": ["source", "mode", "resolution"],
    "properties": {
        "description": {"type": "string"},
        "domain": {"type": "string", "description": "what the images show, for the report"},
        "synthetic": {"type": "boolean"},
        "source": {
            "type": "object",
            "additionalProperties": False,
            "required": ["kind"],
            "properties": {
                "kind": {"enum": ["folder", "zip", "url", "synthetic"]},
                "root": {"enum": ["repo", "shared_data"]},
                "path": {"type": ["string", "null"]},
                "url": {"type": ["string", "null"]},
                "sha256": _SHA256,
                "subdir": {"type": ["string", "null"],
                           "description": "folder inside the folder/archive that holds the images"},
                "count": {"type": ["integer", "null"], "minimum": 1, "maximum": 100000},
                "seed": {"type": ["integer", "null"]},
                "layout": {"type": "string", "description": "expected layout (documentation)"},
                "note": {"type": "string"},
            },
        },
        "mode": {"enum": ["face", "center", "pad", "none"]},
        "landmarks": {
            "oneOf": [
                {"type": "null"},
                {"type": "object",
                 "additionalProperties": False,
                 "required": ["format", "path"],
                 "properties": {
                     "format": {"enum": ["celeba", "dlib_xml", "json"]},
                     "path": _PATHS,
                     "missing_images": {"enum": ["error", "warn"]},
                 }},
            ]
        },
        "detector": {"type": ["string", "null"], "pattern": "^[a-z][a-z0-9_]*$"},
        "resolution": {"enum": RESOLUTIONS},
        "shots": {"type": ["integer", "null"], "minimum": 2},
        "min_images": {"type": "integer", "minimum": 2},
        "split": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "ratio": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                "seed": {"type": ["integer", "null"]},
                "method": {"enum": ["threshold", "rank"]},
            },
        },
        "background": {"type": "array", "minItems": 3, "maxItems": 3,
                       "items": {"type": "integer", "minimum": 0, "maximum": 255}},
        "dedup": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "exact": {"type": "boolean"},
                "phash_max_distance": {"type": ["integer", "null"], "minimum": 0, "maximum": 64},
            },
        },
        "min_face_fraction": {"type": "number", "minimum": 0, "maximum": 16},
        "max_pixels": {"type": "integer", "minimum": 1},
        "max_extract_bytes": {"type": "integer", "minimum": 1},
        "align": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "supersample": {"type": "integer", "minimum": 1, "maximum": 8},
                "padding": {"type": "boolean"},
            },
        },
    },
}

#: Defaults filled in by `resolve_entry` (documented in params/datasets.yaml).
DEFAULTS: dict[str, Any] = {
    "description": "",
    "domain": "",
    "synthetic": False,
    "landmarks": None,
    "detector": None,
    "shots": None,            # null = every curated image
    "min_images": 10,         # fewer usable images than this stops curate/split
    # FastGAN Table 5: 9:1 train/test; seed null = params.seed; method threshold = stable under additions
    "split": {"ratio": 0.9, "seed": None, "method": "threshold"},
    "background": [255, 255, 255],           # alpha compositing and `pad` colour
    "dedup": {"exact": True, "phash_max_distance": 4},
    "min_face_fraction": 0.5,  # face mode: skip faces whose quad side < 0.5 * resolution (>2x upsampling)
    "max_pixels": PIL_DEFAULT_MAX_PIXELS,
    "max_extract_bytes": 16 * 1024 ** 3,
    "align": {"supersample": 4, "padding": True},  # FFHQ: warp to 4096 then resize to 1024 (4x)
}
_SOURCE_DEFAULTS = {"root": "repo", "path": None, "url": None, "sha256": None, "subdir": None,
                    "count": None, "seed": None}


class DatasetConfigError(ValueError):
    """A dataset entry in params is missing, malformed or inconsistent."""


def _merge(defaults: dict, given: dict) -> dict:
    out = copy.deepcopy(defaults)
    for k, v in given.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def validate_entry(name: str, entry: Any) -> None:
    """Raise DatasetConfigError naming the key when `entry` does not match DATASET_SCHEMA."""
    validator = jsonschema.Draft202012Validator(DATASET_SCHEMA)
    errors = sorted(validator.iter_errors(entry), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for e in errors[:10]:
            where = "/".join(str(p) for p in e.absolute_path) or "(entry)"
            lines.append(f"  datasets.{name}.{where.replace('/', '.')}: {e.message}")
        raise DatasetConfigError(f"params/datasets.yaml entry {name!r} is invalid:\n" + "\n".join(lines)
                                 + "\nFix the entry (see DATASET_SCHEMA in src/fewgan/data/schema.py).")
    kind = entry["source"]["kind"]
    src = entry["source"]
    if kind in ("folder", "zip") and not src.get("path"):
        raise DatasetConfigError(f"datasets.{name}.source.path is required for source kind {kind!r}")
    if kind == "url" and not src.get("url"):
        raise DatasetConfigError(f"datasets.{name}.source.url is required for source kind 'url'")
    if kind == "synthetic" and not src.get("count"):
        raise DatasetConfigError(f"datasets.{name}.source.count is required for source kind 'synthetic'")


def resolve_entry(params: dict, name: str) -> dict:
    """The validated entry for dataset `name`, with defaults filled in and seeds resolved."""
    datasets = params.get("datasets")
    if not isinstance(datasets, dict):
        raise DatasetConfigError("params has no 'datasets' mapping; run `fewgan params` to build "
                                 "params/active.yaml from params/datasets.yaml")
    if name not in datasets:
        known = ", ".join(sorted(datasets)) or "(none)"
        raise DatasetConfigError(f"dataset {name!r} is not in params/datasets.yaml (known: {known})")
    raw = datasets[name]
    validate_entry(name, raw)
    entry = _merge(DEFAULTS, raw)
    entry["source"] = _merge(_SOURCE_DEFAULTS, raw["source"])
    seed = params.get("seed", 0)
    if entry["split"]["seed"] is None:
        entry["split"]["seed"] = int(seed)
    if entry["source"]["seed"] is None:
        entry["source"]["seed"] = int(seed)
    if entry["source"]["kind"] == "synthetic":
        entry["synthetic"] = True
    if entry["shots"] is not None and entry["shots"] < entry["min_images"]:
        raise DatasetConfigError(f"datasets.{name}: shots ({entry['shots']}) is below min_images "
                                 f"({entry['min_images']}); raise shots or lower min_images")
    entry["name"] = name
    return entry


def shared_data_root(params: dict | None = None) -> tuple[Path, str]:
    """(root, how it was chosen): env FEWGAN_SHARED_DATA > params.shared_data_root > ../shared/data."""
    env = os.environ.get(SHARED_DATA_ENV)
    if env:
        return Path(env), f"env {SHARED_DATA_ENV}"
    if params and params.get("shared_data_root"):
        return Path(str(params["shared_data_root"])), "params.shared_data_root"
    return Path(DEFAULT_SHARED_DATA_ROOT), "default"
