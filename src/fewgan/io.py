"""Small, careful file helpers: atomic writes, path containment, hashing, JSON/YAML.

Every artifact fewgan writes goes through `atomic_write_*`: the data lands in a temporary file in
the same directory and is moved into place with `os.replace`, so a killed job never leaves a
half-written file at a final path.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import io
import json
import math
import os
import shutil
import tempfile
import uuid
import zipfile
from pathlib import Path
from typing import Any, Iterator

import yaml


class UnsafePathError(ValueError):
    """A path from params or a file tried to escape the directory it must stay in."""


class CheckpointError(ValueError):
    """A checkpoint (snapshot, resume state, cache, weights) is truncated, corrupt, or holds more than
    tensors and plain types; the message names the file and what to do."""


#: errors of a full disk or quota: `atomic_path`/`atomic_dir` re-raise them naming the file being written
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def _disk_full(exc: OSError, final: Path) -> OSError:
    reason = getattr(exc, "reason", None) or exc.strerror or str(exc)
    inner = f" (at {exc.filename})" if exc.filename and str(exc.filename) != str(final) else ""
    err = OSError(exc.errno, f"{reason} while writing {final}{inner}; nothing was replaced (its previous "
                             "content, if any, is intact): free space and re-run", str(final))
    err.reason = reason  # type: ignore[attr-defined]
    return err


def safe_join(root: str | os.PathLike, relative: str | os.PathLike) -> Path:
    """`root / relative`, refusing absolute paths and `..` that escape `root` (symlinks resolved)."""
    root_p = Path(root).resolve()
    rel = Path(relative)
    if rel.is_absolute():
        raise UnsafePathError(f"{relative!s}: absolute path not allowed here; give a path inside {root_p}")
    try:
        target = (root_p / rel).resolve()
    except RuntimeError:  # Python < 3.13 (3.13 leaves the looping part unresolved: the checks below still hold)
        raise UnsafePathError(f"{relative!s}: symbolic link loop (following it leads back to itself); fix the "
                              "path or the link") from None
    if target != root_p and root_p not in target.parents:
        raise UnsafePathError(f"{relative!s}: escapes {root_p}; refusing to read or write outside it")
    return target


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path` (`.NAME.tmp-PID-*`); on success move it into place, else
    delete it. Temporary files of killed writers of the same name (process gone) are removed first; a
    full disk is reported naming `path`."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{final.name}.tmp-"
    for stale in final.parent.glob(glob.escape(prefix) + "*"):
        pid = stale.name[len(prefix):].split("-")[0]
        if pid.isdigit() and not _pid_alive(int(pid)) and stale.is_file():
            stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{prefix}{os.getpid()}-", dir=final.parent)
    os.close(fd)
    tmp_p = Path(tmp)
    try:
        yield tmp_p
        # mkstemp makes the file private (0600): a replaced file keeps its mode, a new one gets the mode
        # of any file the user creates
        if tmp_p.exists():
            os.chmod(tmp_p, _mode_of(final))
        os.replace(tmp_p, final)
    except OSError as exc:
        tmp_p.unlink(missing_ok=True)
        if exc.errno in DISK_FULL:
            raise _disk_full(exc, final) from exc
        raise
    except BaseException:
        tmp_p.unlink(missing_ok=True)
        raise


def _mode_of(final: Path) -> int:
    try:
        return final.stat().st_mode & 0o7777
    except FileNotFoundError:
        return 0o666 & ~_UMASK


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()  # read once at import (os.umask can only be read by setting it)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary directory beside `path`; on success swap it into place as `path` (the
    previous content, if any, is removed), else delete it. An engine never sees a half-written folder.
    Leftovers of killed runs (`.NAME.tmp-PID-*` whose process is gone) are removed first."""
    final = Path(path)
    parent = final.parent
    parent.mkdir(parents=True, exist_ok=True)
    for stale in list(parent.glob(f".{final.name}.tmp-*")) + list(parent.glob(f".{final.name}.old-*")):
        pid = stale.name.rsplit(".", 1)[-1].split("-")[1]
        if not pid.isdigit() or not _pid_alive(int(pid)):
            if ".old-" in stale.name and not final.exists():  # killed between the two renames: put it back
                os.rename(stale, final)
            else:
                shutil.rmtree(stale, ignore_errors=True)
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp = parent / f".{final.name}.tmp-{tag}"
    old = parent / f".{final.name}.old-{tag}"
    tmp.mkdir()
    try:
        yield tmp
        if final.exists():
            os.rename(final, old)
        os.rename(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not final.exists():  # the swap failed half-way: the previous content goes back
            os.rename(old, final)
        if exc.errno in DISK_FULL:
            raise _disk_full(exc, final) from exc
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(obj: Any) -> Any:
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _finite(obj: Any) -> Any:
    """Replace NaN/inf floats by None so the JSON stays standard (and says 'no value' honestly)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(_finite(obj), indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


#: the most nodes a YAML file may hold once its aliases are expanded: params/active.yaml of the paper
#: profile holds ~1,600; a "billion laughs" alias bomb expands to 10^9 and would exhaust memory in the
#: first code that walks the data (schema validation, error messages that print a value)
YAML_MAX_NODES = 100_000


class YamlInputError(yaml.YAMLError, ValueError):
    """A YAML file fewgan refuses to read: not UTF-8, a duplicate key, a Python tag, or aliases that expand
    beyond YAML_MAX_NODES. The message says where (line, column) and what to do. A ValueError too, as the
    UnicodeDecodeError it replaces was, so callers that catch ValueError keep catching it."""


def _mark(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "?"


class _StrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """yaml.safe_load's loader, stricter: duplicate keys, Python (or any unknown) tags, and alias bombs are
    refused instead of resolved (the last duplicate silently winning, a constructor error, memory)."""

    def construct_document(self, node):
        _expanded_size(node)
        return super().construct_document(node)

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base`: explicit keys override, by design
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    seen = first.setdefault(key, key_node.start_mark)
                except TypeError:  # an unhashable key: the base constructor names it
                    continue
                if seen is not key_node.start_mark:
                    raise YamlInputError(
                        f"duplicate key {key!r} at {_mark(key_node.start_mark)} (first at {_mark(seen)}): YAML "
                        "would silently keep only the last value; remove or merge one of them")
        return super().construct_mapping(node, deep=deep)

    def construct_undefined(self, node):
        raise YamlInputError(
            f"tag {node.tag!r} at {_mark(node.start_mark)} is not allowed: fewgan reads plain data only "
            "(mappings, lists, strings, numbers, booleans, null) and never builds Python objects from a file; "
            "remove the tag")


_StrictLoader.add_constructor(None, _StrictLoader.construct_undefined)


def _expanded_size(root: Any) -> int:
    """Nodes of the document with every alias expanded (memoised per node, so a bomb is counted, not
    expanded); refuses an alias that contains itself and more than YAML_MAX_NODES."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise YamlInputError(f"recursive alias at {_mark(node.start_mark)}: an anchor used inside itself "
                                 "is refused")
        active.add(key)
        children = (node.value if isinstance(node, yaml.SequenceNode) else
                    [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else [])
        n = 1 + sum(size(c) for c in children)
        active.discard(key)
        if n > YAML_MAX_NODES:
            raise YamlInputError(f"the node at {_mark(node.start_mark)} expands to more than {YAML_MAX_NODES:,} "
                                 "values through aliases (*name): refused as an alias bomb; write the values out "
                                 "or use fewer aliases")
        sizes[key] = n
        return n

    return size(root)


def read_yaml(path: str | os.PathLike) -> Any:
    """The one way fewgan reads YAML it did not just write: UTF-8 only, and safe_load made strict
    (duplicate keys, Python tags and alias bombs refused: `_StrictLoader`). Errors are YamlInputError (or
    yaml's own YAMLError for syntax) and name the position; callers add the file."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise YamlInputError(f"not UTF-8: byte 0x{data[exc.start]:02x} at line {line}, column {col} ({exc.reason}); "
                             "save the file as UTF-8") from None
    stream = io.StringIO(text)
    stream.name = str(path)  # yaml's syntax errors name the file
    loader = _StrictLoader(stream)  # a SafeLoader subclass (no python tags), stricter: see _StrictLoader
    try:
        return loader.get_single_data()
    except RecursionError:
        raise YamlInputError("nested too deeply to read") from None
    finally:
        loader.dispose()


def atomic_write_yaml(path: str | os.PathLike, obj: Any, header: str = "") -> None:
    atomic_write_text(path, header + yaml.safe_dump(obj, sort_keys=False, default_flow_style=False))


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> None:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def _zip_damage(path: Path) -> str | None:
    """Why the zip container of a torch file is damaged, or None. torch.load checks no CRC: a flipped
    byte in a tensor would load silently as a wrong value, so every member's CRC-32 is checked here."""
    if not zipfile.is_zipfile(path):
        return None  # truncated (no central directory) or legacy format: torch.load decides
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except Exception as exc:  # noqa: BLE001 - BadZipFile, struct/zlib errors of a damaged archive
        return f"damaged zip structure ({type(exc).__name__}: {exc})"
    return f"member {bad} fails its CRC-32 check" if bad else None


def torch_load(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """The one way fewgan reads checkpoints: tensors and plain types only (weights_only=True), after a
    CRC-32 check of the whole file. Raises CheckpointError naming the file when it is damaged or holds
    anything else (a pickle that would run code is refused, never executed)."""
    import pickle

    import torch

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such checkpoint file")
    why = _zip_damage(p)
    if why:
        raise CheckpointError(f"{p}: {why}: the file is corrupt; delete it and re-run the stage that writes it")
    try:
        return torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        detail = next((ln for ln in lines if "GLOBAL" in ln or "Unsupported" in ln), lines[0] if lines else "")
        what = ("it references Python code that would run when the file is unpickled" if "GLOBAL" in detail else
                "it is corrupt, or a pickle of Python objects that could run code when loaded")
        raise CheckpointError(f"{p}: refused: not a plain tensor checkpoint ({detail[:160]}): {what}. fewgan only "
                              "reads tensors and plain types (weights_only=True) and never runs code from a "
                              "file; delete it and re-create it with the fewgan stage that writes it") from None
    except Exception as exc:  # noqa: BLE001 - truncated / not a torch file
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise CheckpointError(f"{p}: not a readable checkpoint ({type(exc).__name__}: {first}): it is truncated "
                              "or corrupt; delete it and re-run the stage that writes it") from None


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


