"""Dataset sources: a folder (recursive), a zip archive (safely extracted), a URL with sha256.

- Folder: every regular file below it, recursively, in sorted POSIX order; hidden files and folders
  (names starting with '.') are left out silently. Left out and named (`scan_files`; curate lists them in
  manifest.csv as skipped rows with the reason): symbolic links pointing outside the folder
  (`symlink_outside`), broken ones (`broken_symlink`), symlink loops (`symlink_loop`), links to folders
  (`symlink_folder`: not followed), anything not a regular file (`not_regular_file`), and names holding a
  control character (a newline, ...) or bytes that are not UTF-8 (`bad_file_name`; shown escaped). Whether
  a file is an image is decided later by content.
- Zip: every member must stay inside the extraction directory: absolute names, drive letters, `..`
  components and symbolic links are refused (zip-slip) and the whole archive is rejected, naming the
  member. The total uncompressed size is capped by `max_extract_bytes` (zip bombs).
- URL: http(s) or file:// (tests use file://). The download lands in `cache/downloads/` and its sha256
  must equal `source.sha256`; when the registry does not know the sha256 yet, the computed one is
  reported as a fallback so it can be pinned. Only zip archives are supported as downloads.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import stat
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from fewgan.io import atomic_path, sha256_file

log = logging.getLogger(__name__)


class SourceError(ValueError):
    """The dataset source is missing, unsafe or does not match its checksum."""


@dataclass(frozen=True)
class LeftOut:
    """A folder entry `scan_files` does not list: `rel` (control characters escaped), reason, detail."""
    rel: str
    reason: str
    detail: str


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]|[\udc80-\udcff]")  # control chars; undecodable bytes (surrogates)


def printable(name: str) -> str:
    """`name` with control characters and undecodable bytes escaped (`\\n`, `\\udce9`): safe in one log
    line, a CSV row, an error message."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], name)


def _link_target(p: Path) -> tuple[Path | None, str | None]:
    """(resolved target, None), or (None, 'symlink_loop' | 'broken_symlink')."""
    try:
        return p.resolve(strict=True), None
    except RuntimeError:  # Python < 3.13: "Symlink loop from ..."
        return None, "symlink_loop"
    except OSError as exc:
        return None, "symlink_loop" if exc.errno == errno.ELOOP else "broken_symlink"


def scan_files(root: Path) -> tuple[list[tuple[str, Path]], list[LeftOut]]:
    """([(relative POSIX path, absolute path)] of the regular files under `root`, sorted, hidden ones
    skipped; [LeftOut] for every other entry that is not read, named with the reason (module docstring))."""
    if not root.is_dir():
        raise SourceError(f"source folder {root} does not exist or is not a folder; fix `source.path` "
                          "in params/datasets.yaml")
    out: list[tuple[str, Path]] = []
    left: list[LeftOut] = []
    real_root = root.resolve()

    def leave(rel: str, reason: str, detail: str) -> None:
        left.append(LeftOut(printable(rel), reason, detail))

    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        keep = []
        for d in sorted(dirnames):
            if d.startswith("."):
                continue
            full = here / d
            if full.is_symlink():  # os.walk never enters it (followlinks=False): say so
                rel = full.relative_to(root).as_posix() + "/"
                target, why = _link_target(full)
                if why == "symlink_loop":
                    leave(rel, why, "symbolic link loop (following it leads back to itself); not followed")
                else:
                    leave(rel, "symlink_folder", f"symbolic link to the folder {printable(str(target))}; folder "
                                                 "links are not followed: copy the images into the folder instead")
                continue
            keep.append(d)
        dirnames[:] = keep
        for name in filenames:
            if name.startswith("."):
                continue
            p = here / name
            rel = p.relative_to(root).as_posix()
            if _CONTROL.search(rel):
                leave(rel, "bad_file_name", "the path holds a control character (e.g. a newline) or bytes that "
                                            "are not UTF-8; rename the file")
                continue
            if p.is_symlink():
                target, why = _link_target(p)
                if why == "symlink_loop":
                    leave(rel, why, "symbolic link loop (following it leads back to itself); not read")
                    continue
                if why == "broken_symlink":
                    leave(rel, why, f"symbolic link to {printable(os.readlink(p))}, which does not exist")
                    continue
                if real_root not in target.parents:
                    leave(rel, "symlink_outside", f"symbolic link to {printable(str(target))}, outside the source "
                                                  "folder; not read: copy the file in instead")
                    continue
            if p.is_file():
                out.append((rel, p))
            else:
                leave(rel, "not_regular_file", "not a regular file (device, pipe, socket or a link to one)")
    out.sort(key=lambda t: t[0])
    left.sort(key=lambda lo: lo.rel)
    for lo in left:
        log.warning("skipping %s: %s", lo.rel, lo.detail)
    return out, left


def list_files(root: Path) -> list[tuple[str, Path]]:
    """[(relative POSIX path, absolute path)] of regular files under `root`, sorted, hidden ones skipped
    (what `scan_files` lists; the entries it leaves out are logged)."""
    return scan_files(root)[0]


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
