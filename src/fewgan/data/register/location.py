"""Where the image folder is: refused when it lies inside (or holds) a pipeline output folder, and named
in the entry relative to the shared real-image folder or to the repository root, by curate's path rules."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fewgan.data.register.findings import DatasetAddError, _rel, _show
from fewgan.data.schema import SHARED_DATA_ENV, shared_data_root
from fewgan.io import read_yaml

#: pipeline outputs and engine state (docs/DESIGN.md, .gitignore), relative to the repository root:
#: a dataset folder may be neither inside one nor hold one
OUTPUT_DIRS = ("data/curated", "data/splits", "runs", "work", "cache", "reports", "benchmarks", "logs",
               ".snakemake", ".dvc", ".git")
#: where the report suggests copying a folder that lies outside the repository and the shared data
SUGGESTED_FOLDER = "data/sources"


def _check_folder(path: Path, repo: Path) -> None:
    if not path.exists():
        raise DatasetAddError(f"{_show(str(path))}: no such folder; give the folder that holds the images")
    if not path.is_dir():
        raise DatasetAddError(f"{_show(str(path))}: not a folder; give the folder that holds the images "
                              "(a zip archive: unpack it first, or add a `source.kind: zip` entry by hand)")
    real = path.resolve()
    for od in OUTPUT_DIRS:
        out = (repo / od).resolve()
        if real == out or out in real.parents:
            raise DatasetAddError(f"{real}: inside the pipeline output folder {od}/ of {repo}; those are "
                                  "written by fewgan and DVC and may be deleted: copy the images to a folder "
                                  f"of their own, e.g. {SUGGESTED_FOLDER}/NAME")
        if out.exists() and real in out.parents:
            raise DatasetAddError(f"{real}: holds the pipeline output folder {od}/ of {repo}; give the "
                                  "sub-folder that holds only the images")


def _shared_root(repo: Path, params_dir: Path) -> tuple[Path, str]:
    """The shared real-image folder as curate will find it (env > base.yaml shared_data_root > default);
    relative settings are relative to the repository root (curate's working directory)."""
    base: dict = {}
    if (params_dir / "base.yaml").is_file():  # absent: the default; unreadable: an error, never a silent default
        try:
            loaded = read_yaml(params_dir / "base.yaml")
        except (OSError, ValueError) as e:
            raise DatasetAddError(f"{params_dir / 'base.yaml'}: cannot read it ({e}); it says where the shared "
                                  "real-image folder is (shared_data_root): fix the file and run again") from None
        base = loaded if isinstance(loaded, dict) else {}
    root, how = shared_data_root(base)
    if how == "params.shared_data_root":
        how = f"shared_data_root: {base['shared_data_root']} in {params_dir / 'base.yaml'}"
    elif how.startswith("env"):
        how = f"env {SHARED_DATA_ENV}={os.environ.get(SHARED_DATA_ENV)}"
    return (root if root.is_absolute() else repo / root).resolve(), how


def _locate(real: Path, repo: Path, params_dir: Path) -> tuple[dict[str, Any], str | None]:
    """({root, path, how}, problem): how the entry names the folder, by curate's path rules."""
    shared, how = _shared_root(repo, params_dir)
    rel = _rel(real, shared) if shared.is_dir() else None
    if rel is not None:
        where = (f"relative to the shared real-image folder {shared} ({how}"
                 + (f"; curate must see the same {SHARED_DATA_ENV}" if how.startswith("env") else "") + ")")
        return {"root": "shared_data", "path": rel, "how": where}, None
    rel = _rel(real, repo)
    if rel is not None:
        return {"root": "repo", "path": rel,
                "how": f"relative to the repository root {repo} (curate's working directory under "
                       "Snakemake/DVC)"}, None
    problem = (f"{real}: outside the repository ({repo}) and the shared real-image folder ({shared}, {how}); "
               "curate reads only paths relative to one of them (absolute paths are refused). Copy the "
               f"folder into the repository, e.g. `mkdir -p {SUGGESTED_FOLDER} && cp -r {_show(str(real))} "
               f"{SUGGESTED_FOLDER}/NAME` (data/ is not in git: track it with `dvc add`), or into the shared "
               "folder, then run the command again on the copy")
    return {"root": None, "path": None, "how": "none (outside the repository and the shared folder)"}, problem
