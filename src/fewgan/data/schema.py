"""Resolution of one dataset entry of the resolved params (`params["datasets"][name]`).

The entry is complete (`fewgan params` merged params/dataset_defaults.yaml under it) and its schema is
`fewgan.schemas.dataset.DATASET_SCHEMA`. `resolve_entry(params, name)` validates it and resolves the
derived values (null seeds = params seed, `synthetic` for generated data).

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

from fewgan.names import check_name
from fewgan.schemas.dataset import DATASET_SCHEMA, RESOLUTIONS  # noqa: F401 (re-exported)

DEFAULT_SHARED_DATA_ROOT = "../shared/data"
SHARED_DATA_ENV = "FEWGAN_SHARED_DATA"


class DatasetConfigError(ValueError):
    """A dataset entry in params is missing, malformed or inconsistent."""


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
                                 + "\nFix the entry (schema: src/fewgan/schemas/dataset.py; defaults: params/dataset_defaults.yaml).")
    kind = entry["source"]["kind"]
    src = entry["source"]
    if kind in ("folder", "zip") and not src.get("path"):
        raise DatasetConfigError(f"datasets.{name}.source.path is required for source kind {kind!r}")
    if kind == "url" and not src.get("url"):
        raise DatasetConfigError(f"datasets.{name}.source.url is required for source kind 'url'")
    if kind == "synthetic" and not src.get("count"):
        raise DatasetConfigError(f"datasets.{name}.source.count is required for source kind 'synthetic'")
    classes = entry["classes"]
    if classes["from"] == "csv" and not classes["csv"]:
        raise DatasetConfigError(f"datasets.{name}.classes.csv is required with classes.from: csv (the labels "
                                 "file, columns file,class, relative to the image folder) in params/datasets.yaml")
    if classes["from"] != "csv" and classes["csv"]:
        raise DatasetConfigError(f"datasets.{name}.classes.csv is set but classes.from is {classes['from']!r}; "
                                 "set classes.from: csv to read it, or remove classes.csv (params/datasets.yaml)")
    check_translation(name, entry["translation"], classes["from"])


def check_translation(name: str, translation: dict, classes_from: str) -> None:
    """Cross-key checks of an entry's translation block (fewgan.data.pairs; the schema checks each key)."""
    kind, domains = translation["kind"], translation["domains"]
    where = f"datasets.{name}.translation"
    if kind == "domains":
        if domains is None:
            raise DatasetConfigError(f"{where}.domains is required with kind: domains (the two class names "
                                     "[A, B], e.g. [cat, dog]) in params/datasets.yaml")
        if classes_from == "none":
            raise DatasetConfigError(f"{where}.kind: domains takes its domains from the dataset's classes, but "
                                     f"datasets.{name}.classes.from is 'none'; set classes.from: subfolder "
                                     "(or csv) in params/datasets.yaml")
    elif domains is not None:
        raise DatasetConfigError(f"{where}.domains is set but kind is {kind!r}; set kind: domains, or remove "
                                 "domains (params/datasets.yaml)")


def resolve_entry(params: dict, name: str) -> dict:
    """The validated entry for dataset `name`, with its seeds resolved."""
    datasets = params.get("datasets")
    if not isinstance(datasets, dict):
        raise DatasetConfigError("params has no 'datasets' mapping; run `fewgan params` to build "
                                 "params/active.yaml from params/datasets.yaml")
    if name not in datasets:
        known = ", ".join(sorted(datasets)) or "(none)"
        raise DatasetConfigError(f"dataset {name!r} is not in params/datasets.yaml (known: {known})")
    check_name(name, "dataset", "params/datasets.yaml")
    entry = copy.deepcopy(datasets[name])
    validate_entry(name, entry)
    seed = params["seed"]
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
