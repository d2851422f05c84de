"""Dataset sources: a folder (recursive), a zip archive (safely extracted), a URL with sha256.

- Folder: every regular file below it, recursively, in sorted POSIX order; hidden files and folders
  (names starting with '.') and symbolic links pointing outside the folder are left out. Whether a file is an image is decided later by content.
- Zip: every member must stay inside the extraction directory: absolute names, drive letters, `..`
  components and symbolic links are refused (zip-slip) and the whole archive is rejected, naming the
  member. The total uncompressed size is capped by `max_extract_bytes` (zip bombs).
- URL: http(s) or file:// (tests use file://). The download lands in `cache/downloads/` and its sha256
  must equal `source.sha256`; when the registry does not know the sha256 yet, the computed one is
  reported as a fallback so it can be pinned. Only zip archives are supported as downloads.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from fewgan.io import atomic_path, sha256_file

log = logging.getLogger(__name__)


class SourceError(ValueError):
    """The dataset source is missing, unsafe or does not match its checksum."""


def list_files(root: Path) -> list[tuple[str, Path]]:
    """[(relative POSIX path, absolute path)] of regular files under `root`, sorted, hidden ones skipped."""
    if not root.is_dir():
        raise SourceError(f"source folder {root} does not exist or is not a folder; fix `source.path` "
                          "in params/datasets.yaml")
    out = []
    real_root = root.resolve()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith("."):
                continue
            p = Path(dirpath) / name
            if p.is_symlink() and real_root not in p.resolve().parents:
                log.warning("skipping %s: symbolic link to %s, outside the source folder", p, p.resolve())
                continue
            if p.is_file():
                out.append((p.relative_to(root).as_posix(), p))
    out.sort(key=lambda t: t[0])
    return out


def _unsafe_member(info: zipfile.ZipInfo) -> str | None:
    name = info.filename.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if any(part == ".." for part in PurePosixPath(name).parts):
        return "'..' component"
    mode = info.external_attr >> 16
    if mode and stat.S_ISLNK(mode):
        return "symbolic link"
    return None


def extract_zip(archive: Path, dest: Path, max_bytes: int) -> None:
    """Extract `archive` into `dest` after checking every member (see module docstring)."""
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as e:
        raise SourceError(f"{archive}: not a readable zip archive ({e})") from e
    with zf:
        infos = zf.infolist()
        total = 0
        for info in infos:
            why = _unsafe_member(info)
            if why:
                raise SourceError(f"{archive}: member {info.filename!r} would escape the extraction folder "
                                  f"({why}); refusing the whole archive (zip-slip)")
            total += info.file_size
        if total > max_bytes:
            raise SourceError(f"{archive}: uncompressed size {total} bytes exceeds max_extract_bytes={max_bytes} "
                              "(possible zip bomb); raise `max_extract_bytes` in params/datasets.yaml if genuine")
        dest.mkdir(parents=True, exist_ok=True)
        root = dest.resolve()
        for info in infos:
            target = (root / info.filename.replace("\\", "/")).resolve()
            if target != root and root not in target.parents:  # belt and braces after the name checks
                raise SourceError(f"{archive}: member {info.filename!r} escapes {root}; refusing (zip-slip)")
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)


def download(url: str, sha256: str | None, cache_dir: Path) -> tuple[Path, str, list[str]]:
    """Fetch `url` into `cache_dir` (reused when already there with the right hash).
    Returns (path, sha256, fallbacks)."""
    scheme = urllib.parse.urlparse(url).scheme
    if scheme not in ("http", "https", "file"):
        raise SourceError(f"URL {url!r}: only http, https and file URLs are supported")
    fallbacks: list[str] = []
    cache_dir.mkdir(parents=True, exist_ok=True)
    base = PurePosixPath(urllib.parse.urlparse(url).path).name or "download"
    if sha256:
        target = cache_dir / f"{sha256[:16]}-{base}"
        if target.is_file() and sha256_file(target) == sha256:
            return target, sha256, fallbacks
    else:
        target = cache_dir / f"unverified-{base}"
    try:
        with atomic_path(target) as tmp:
            with urllib.request.urlopen(url, timeout=60) as resp, open(tmp, "wb") as out:  # noqa: S310
                shutil.copyfileobj(resp, out, 1 << 20)
            got = sha256_file(tmp)
            if sha256 and got != sha256:
                raise SourceError(f"download of {url} has sha256 {got}, expected {sha256}: the file changed "
                                  "upstream or the download is corrupt; do not use it unless you verify it")
    except OSError as e:
        raise SourceError(f"cannot download {url} ({e}); this needs internet access (or a local file:// URL)") from e
    if not sha256:
        msg = (f"download {url} not verified: no sha256 in params; got sha256 {got}; pin it in "
               "params/datasets.yaml after checking the content")
        log.warning(msg)
        fallbacks.append(msg)
    return target, got, fallbacks
