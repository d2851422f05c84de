"""`fewgan dataset add NAME PATH`: check a folder of images, report what curate will make of it, and
append a commented entry for it to `params/datasets.yaml`.

What is checked, in order (the first failure stops with `DatasetAddError`, naming the file or option
and what to do):
1. NAME follows `fewgan.names` and is not already a key of `params/datasets.yaml`.
2. PATH exists, is a folder, is not inside a pipeline output folder (`OUTPUT_DIRS`, relative to the
   repository root = the folder holding `params/`) and holds none of them.
3. Face mode has landmarks (`--landmarks FILE`, inside PATH, because `landmarks.path` is relative to the
   image folder) or a detector plugin (`--detector dlib`); the landmark files are read with curate's
   readers.

Then the folder is scanned exactly as curate will scan it: `sources.list_files` lists the files,
`decode.decode_image` decodes them, `curate._crop` crops them, and duplicates are found with curate's
hashes and order (source-file sha256, then output pixels, then pHash). Nothing is dropped silently:
every file found is accepted or listed with a reason. The reasons are curate's manifest reasons
(`not_image`, `unreadable`, `truncated`, `decompression_bomb`, `unsupported_format`, `duplicate_exact`,
`duplicate_near`, `not_square`, `no_landmarks`, `no_face_detected`, `bad_landmarks`, `face_too_small`)
plus the files that `list_files` leaves out (`hidden_file`, `hidden_folder`, `symlink_outside`,
`symlink_folder`, `broken_symlink`, `not_regular_file`). Images smaller than the resolution are not
refused by curate outside face mode (it upsamples them); they are listed as warnings.

Where the entry says the folder is (`source.root` / `source.path`): curate refuses absolute paths and
paths escaping their root (`fewgan.io.safe_join`), so PATH must lie inside the shared real-image folder
(`source.root: shared_data`, preferred when both apply) or inside the repository (`source.root: repo`,
path relative to the repository root, which is curate's working directory under Snakemake/DVC).
A folder elsewhere is reported (dry run) or refused, with the command to copy it into the repository.

The entry is appended as text (the file's existing bytes stay a byte-for-byte prefix), written
atomically, re-read with `fewgan.io.read_yaml` and validated; on any failure the original file is put back.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Sequence

import yaml

from fewgan.data.schema import (RESOLUTIONS, SHARED_DATA_ENV, DatasetConfigError, resolve_entry,
                                shared_data_root, validate_entry)
from fewgan.params import dataset_entry
from fewgan.io import atomic_path, read_yaml
from fewgan.names import InvalidNameError, check_name

MODES = ("face", "center", "pad", "none")
LANDMARK_FORMATS = ("celeba", "dlib_xml", "json")
#: landmark format guessed from the file name when --landmarks-format is not given
LANDMARK_SUFFIXES = {".txt": "celeba", ".xml": "dlib_xml", ".json": "json"}
#: pipeline outputs and engine state (docs/DESIGN.md, .gitignore), relative to the repository root:
#: a dataset folder may be neither inside one nor hold one
OUTPUT_DIRS = ("data/curated", "data/splits", "runs", "work", "cache", "reports", "benchmarks", "logs",
               ".snakemake", ".dvc", ".git")
#: where the report suggests copying a folder that lies outside the repository and the shared data
SUGGESTED_FOLDER = "data/sources"
#: reasons a file is not read at all because `sources.list_files` leaves it out
LISTING_REASONS = ("hidden_file", "hidden_folder", "symlink_outside", "symlink_folder", "broken_symlink",
                   "not_regular_file", "not_listed")
WHERE = "fewgan dataset add NAME"
#: refused files named one per comment line in the entry (all of them are in the printed report)
MAX_LISTED = 20
CLASS_CHOICES = ("auto", "subfolder", "none")


class DatasetAddError(ValueError):
    """`fewgan dataset add` cannot register the folder; the message names the file/option and what to do.
    `report` holds the findings when the folder was scanned before the refusal (else None)."""

    def __init__(self, message: str, report: "Report | None" = None):
        super().__init__(message)
        self.report = report


@dataclass
class Finding:
    """A file (POSIX path relative to PATH, as curate's manifest names it) that is not accepted."""

    file: str
    reason: str
    detail: str = ""
    face: int | None = None  # face mode: which face of the photo (None = the whole file)


@dataclass
class Report:
    name: str
    path: Path                      # the folder, resolved
    given_path: str                 # as typed
    mode: str
    resolution: int | None
    resolution_note: str
    shots: int | None
    shots_note: str
    source: dict[str, Any]          # {root, path, how}: what the entry says, and why
    files_found: int = 0            # every file under PATH, plus one per hidden or linked folder
    decoded: int = 0                # files that decode as images (duplicates by file bytes not decoded)
    accepted: list[str] = field(default_factory=list)   # output images (face mode: "file#face")
    refused: list[Finding] = field(default_factory=list)
    other: list[Finding] = field(default_factory=list)  # used but not images (the landmark files)
    formats: dict[str, int] = field(default_factory=dict)
    sizes: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # width/height: (min, median, max)
    classes: dict[str, int] = field(default_factory=dict)  # accepted images per top-level sub-folder
    class_note: str = ""  # whether the entry uses those sub-folders as classes, and why
    landmarks: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # each one stops a registration (a dry run lists them)
    entry: dict[str, Any] | None = None
    text: str = ""                  # the text appended (or, in a dry run, that would be appended)
    datasets_file: Path = Path("params/datasets.yaml")
    dry_run: bool = False
    written: bool = False

    @property
    def refused_by_reason(self) -> dict[str, int]:
        return dict(sorted(Counter(f.reason for f in self.refused).items()))


# --------------------------------------------------------------------------------------------------
# small text helpers: never trust a file name
# --------------------------------------------------------------------------------------------------
def _escape(s: str) -> str:
    """`s` with every character that is not printable (or is a quote/backslash) escaped; one line."""
    out = []
    for c in s:
        if c == "\\":
            out.append("\\\\")
        elif c == '"':
            out.append('\\"')
        elif c.isprintable() and not 0xD800 <= ord(c) <= 0xDFFF:
            out.append(c)
        elif ord(c) <= 0xFFFF:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(f"\\U{ord(c):08x}")
    return "".join(out)


def _yaml_str(s: str) -> str:
    """A YAML double-quoted scalar for any string (escapes are YAML's: \\uXXXX, \\UXXXXXXXX)."""
    return f'"{_escape(s)}"'


def _printable(s: str) -> str:
    """`s` with only its non-printable characters escaped (for messages on the terminal)."""
    return "".join(c if c.isprintable() and not 0xD800 <= ord(c) <= 0xDFFF else repr(c)[1:-1] for c in s)


def _yaml_key(name: str) -> str:
    """`name` as a mapping key: plain when YAML reads it back as that string (not 123, 1.5, null, on)."""
    try:
        plain_ok = yaml.safe_load(f"{name}: 0") == {name: 0}
    except yaml.YAMLError:
        plain_ok = False
    return name if plain_ok else _yaml_str(name)


def _show(s: str) -> str:
    """A file name for the terminal: as is when plain, else repr (control characters, odd spaces)."""
    return s if s and s.isprintable() and s == s.strip() and "'" not in s else repr(s)


def _comment(s: str) -> str:
    """Text safe inside a one-line YAML comment (no line breaks, no control characters)."""
    return _escape(s).replace('\\"', '"')


def _rel(path: Path, root: Path) -> str | None:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return None


# --------------------------------------------------------------------------------------------------
# where the folder is
# --------------------------------------------------------------------------------------------------
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


def _unlisted(folder: Path, listed: set[str]) -> tuple[list[Finding], int]:
    """Everything under `folder` that `sources.list_files` leaves out, with the reason; and the number of
    entries found: every file, plus one per hidden or linked folder (not entered)."""
    findings: list[Finding] = []
    found = 0
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        here = Path(dirpath)
        keep = []
        for d in sorted(dirnames):
            full = here / d
            rel = full.relative_to(folder).as_posix()
            if full.is_symlink():
                found += 1
                findings.append(Finding(rel + "/", "symlink_folder",
                                        f"symbolic link to the folder {_show(str(full.resolve()))}; curate does "
                                        "not follow folder links: copy the images into the folder instead"))
            elif d.startswith("."):
                n = sum(len(fs) for _, _, fs in os.walk(full, followlinks=False))
                found += 1  # one entry: the folder (its files are not looked at one by one)
                findings.append(Finding(rel + "/", "hidden_folder",
                                        f"hidden folder with {n} file(s); curate skips names starting with '.'"))
            else:
                keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            full = here / name
            rel = full.relative_to(folder).as_posix()
            found += 1
            if rel in listed:
                continue
            if name.startswith("."):
                findings.append(Finding(rel, "hidden_file", "curate skips names starting with '.'"))
            elif full.is_symlink():
                target = full.resolve()
                if not target.exists():
                    findings.append(Finding(rel, "broken_symlink",
                                            f"symbolic link to {_show(str(target))}, which does not exist"))
                elif folder not in target.parents:
                    findings.append(Finding(rel, "symlink_outside",
                                            f"symbolic link to {_show(str(target))}, outside the folder; "
                                            "curate does not read it: copy the file in instead"))
                else:
                    findings.append(Finding(rel, "not_regular_file", "symbolic link to something not a file"))
            elif not full.is_file():
                findings.append(Finding(rel, "not_regular_file", "not a regular file (device, pipe or socket)"))
            else:  # list_files gained a rule this module does not know: still never silent
                findings.append(Finding(rel, "not_listed", "left out by fewgan.data.sources.list_files"))
    return findings, found


# --------------------------------------------------------------------------------------------------
# options
# --------------------------------------------------------------------------------------------------
def _landmark_files(landmarks: Any, fmt: str | None, folder: Path) -> tuple[str, list[str]] | None:
    """(format, [paths relative to the image folder]) from --landmarks / --landmarks-format."""
    if landmarks is None or landmarks == []:
        return None
    items = [landmarks] if isinstance(landmarks, (str, os.PathLike)) else list(landmarks)
    rels = []
    for item in items:
        p = Path(item)
        cands = [p] if p.is_absolute() else [Path.cwd() / p, folder / p]
        hit = next((c for c in cands if c.is_file()), None)
        if hit is None:
            raise DatasetAddError(f"--landmarks {_show(str(item))}: file not found (looked in "
                                  f"{', '.join(_show(str(c)) for c in cands)}); give the landmark file")
        rel = _rel(hit.resolve(), folder)
        if rel is None:
            raise DatasetAddError(f"--landmarks {_show(str(hit))}: outside the image folder {folder}; "
                                  "landmarks.path is relative to the image folder, so move or copy the "
                                  "landmark file into it and run the command again")
        rels.append(rel)
    if fmt is None:
        guesses = {LANDMARK_SUFFIXES.get(PurePosixPath(r).suffix.lower()) for r in rels}
        if len(guesses) != 1 or None in guesses:
            raise DatasetAddError(f"--landmarks {', '.join(_show(r) for r in rels)}: cannot tell the format "
                                  f"from the name (.txt = celeba, .xml = dlib_xml, .json = json); "
                                  f"give --landmarks-format {{{','.join(LANDMARK_FORMATS)}}}")
        fmt = guesses.pop()
    if fmt not in LANDMARK_FORMATS:
        raise DatasetAddError(f"--landmarks-format {fmt!r}: choose one of {', '.join(LANDMARK_FORMATS)}")
    return fmt, rels


def _crop_side(mode: str, w: int, h: int) -> int | None:
    """The side of the square curate crops before resizing (align.center_crop / pad_square /
    resize_only); None when mode `none` will refuse the image (not square)."""
    if mode == "center":
        return min(w, h)
    if mode == "pad":
        return max(w, h)
    return w if w == h else None


def default_resolution(smallest_side: float) -> int:
    """The largest supported resolution not above `smallest_side` (the smallest one when none is)."""
    fit = [r for r in RESOLUTIONS if r <= smallest_side]
    return fit[-1] if fit else RESOLUTIONS[0]


# --------------------------------------------------------------------------------------------------
# the scan (curate's order and functions)
# --------------------------------------------------------------------------------------------------
def _scan(report: Report, entry: dict, folder: Path, lm: tuple[str, list[str]] | None,
          detector_name: str | None, resolution: int | None) -> None:
    from fewgan.data import align as A
    from fewgan.data.curate import _crop, pixels_sha256
    from fewgan.data.decode import ImageDecodeError, decode_image
    from fewgan.data.dedup import nearest, phash
    from fewgan.data.landmarks import (DetectorUnavailable, LandmarkError, get_detector, match_to_images,
                                       read_landmarks)
    from fewgan.data.sources import SourceError, list_files
    from fewgan.io import sha256_file

    mode = report.mode
    try:
        files = list_files(folder)
    except SourceError as e:
        raise DatasetAddError(str(e)) from e
    left_out, report.files_found = _unlisted(folder, {rel for rel, _ in files})
    report.refused.extend(left_out)

    # landmarks (face mode): the files themselves are not images (curate leaves them out too)
    faces_by_file: dict = {}
    detector = None
    if mode == "face":
        lm_paths = [folder / r for r in lm[1]] if lm else []
        lm_set = {p.resolve() for p in lm_paths}
        for rel, p in files:
            if p.resolve() in lm_set:
                report.other.append(Finding(rel, "landmarks_file", f"{lm[0]} landmark file"))
        files = [(rel, p) for rel, p in files if p.resolve() not in lm_set]
        if lm:
            stats: dict[str, int] = {}
            try:
                raw = read_landmarks(lm[0], lm_paths, folder, stats)
            except LandmarkError as e:
                raise DatasetAddError(f"{e}; fix the file or give another --landmarks") from e
            faces_by_file, missing = match_to_images(raw, [r for r, _ in files], str(lm_paths))
            report.landmarks = {"format": lm[0], "files": lm[1], "names": len(raw), "unknown_names": missing,
                                "uncovered": [], **stats}
            if missing:
                report.warnings.append(
                    f"the landmark file(s) name {len(missing)} image(s) not in the folder "
                    f"(first: {', '.join(_show(m) for m in missing[:5])}); the entry sets "
                    "landmarks.missing_images: warn so curate goes on without them")
        if detector_name:
            try:
                detector = get_detector(detector_name)
            except (DetectorUnavailable, LandmarkError) as e:
                raise DatasetAddError(f"--detector {detector_name}: {e}") from e

    bg = tuple(entry["background"])
    max_px = int(entry["max_pixels"])
    exact = bool(entry["dedup"]["exact"])

    # pass 1: file hashes and decoding (sizes, formats, faces), in curate's order
    seen_src: dict[str, str] = {}
    candidates: list[tuple[str, Path, list | None, int | None]] = []  # rel, path, faces, smallest side
    widths, heights = [], []
    formats: Counter = Counter()
    mismatched = []
    for rel, path in files:
        sha = sha256_file(path)
        if exact and sha in seen_src:
            report.refused.append(Finding(rel, "duplicate_exact", f"same file bytes as {_show(seen_src[sha])}"))
            continue
        seen_src.setdefault(sha, rel)
        try:
            d = decode_image(path, background=bg, max_pixels=max_px, display_name=rel)
        except ImageDecodeError as e:
            report.refused.append(Finding(rel, e.reason, str(e)))
            continue
        report.decoded += 1
        formats[d.format] += 1
        w, h = d.image.size
        widths.append(w)
        heights.append(h)
        if any("content is" in n for n in d.notes):
            mismatched.append(rel)
        if mode != "face":
            side = _crop_side(mode, w, h)
            candidates.append((rel, path, None, side))
            continue
        faces = faces_by_file.get(rel)
        if not faces and detector is not None:
            faces = detector(d.image)
            if not faces:
                report.refused.append(Finding(rel, "no_face_detected", f"detector {detector_name} found no face"))
                continue
        if not faces:
            report.refused.append(Finding(rel, "no_landmarks", "no landmarks for this image in the landmark file(s)"))
            if report.landmarks is not None:
                report.landmarks["uncovered"].append(rel)
            continue
        sides = []
        for lmk in faces:
            try:
                sides.append(A.compute_quad(lmk)[1])
            except ValueError:
                pass  # reported by the crop below (bad_landmarks)
        candidates.append((rel, path, faces, min(sides) if sides else None))
    report.formats = dict(sorted(formats.items()))
    if widths:
        report.sizes = {"width": (min(widths), int(statistics.median(widths)), max(widths)),
                        "height": (min(heights), int(statistics.median(heights)), max(heights))}
    if mismatched:
        report.warnings.append(f"{len(mismatched)} file(s) whose name does not match their content are decoded "
                               f"by content: {', '.join(_show(m) for m in mismatched[:5])}")

    # resolution
    sized = [(s, rel) for rel, _, _, s in candidates if s is not None]
    what = "face crop side" if mode == "face" else "crop side"
    if resolution is None:
        if not sized:
            report.resolution_note = "no default: no usable image"
            return
        smallest, who = min(sized)
        resolution = default_resolution(smallest)
        report.resolution_note = (f"default: the largest power of two in 32..1024 not above the smallest "
                                  f"{what}, {int(smallest)} px ({_show(who)})")
        if smallest < RESOLUTIONS[0]:
            report.resolution_note += "; no supported resolution fits it, so the smallest, 32"
        else:
            bigger = [s for s, _ in sized if s >= 2 * resolution]
            if len(sized) - len(bigger) <= max(1, len(sized) // 20) and bigger:
                report.resolution_note += (f"; only {len(sized) - len(bigger)} image(s) keep it below "
                                           f"{default_resolution(min(bigger))}")
    else:
        report.resolution_note = "given"
    report.resolution = resolution
    entry = dict(entry, resolution=resolution)

    # pass 2: crops and pixel / near duplicates, exactly as curate does them
    near = entry["dedup"]["phash_max_distance"]
    seen_pix: dict[str, str] = {}
    kept_hashes: list[int] = []
    kept: list[str] = []
    upscaled = []
    for rel, path, faces, _ in candidates:
        d = decode_image(path, background=bg, max_pixels=max_px, display_name=rel)
        for crop in _crop(entry, d.image, faces):
            k = crop.get("face_index")
            face = k if mode == "face" else None
            label = f"{rel}#{k}" if mode == "face" else rel
            if "image" not in crop:
                report.refused.append(Finding(rel, crop["reason"], crop.get("detail", ""), face))
                continue
            out = crop["image"]
            pix = pixels_sha256(out)
            ph = phash(out)
            if exact and pix in seen_pix:
                report.refused.append(Finding(rel, "duplicate_exact", f"same pixels as {_show(seen_pix[pix])}", face))
                continue
            if near is not None:
                j, dist = nearest(ph, kept_hashes)
                if j >= 0 and dist <= near:
                    report.refused.append(Finding(rel, "duplicate_near",
                                                  f"pHash distance {dist} <= {near} to {_show(kept[j])}", face))
                    continue
            if mode != "face" and crop["side"] < resolution:
                upscaled.append((label, int(crop["side"])))
            seen_pix[pix] = label
            kept_hashes.append(ph)
            kept.append(label)
            report.accepted.append(label)
    if upscaled:
        upscaled.sort(key=lambda t: (t[1], t[0]))  # the smallest first
        report.warnings.append(
            f"{len(upscaled)} image(s) are smaller than the resolution {resolution} and curate will upsample "
            "them (it does not refuse them): " + ", ".join(f"{_show(f)} ({s} px)" for f, s in upscaled[:10])
            + (" ..." if len(upscaled) > 10 else "") + "; remove them or choose a smaller --resolution")
    tops = Counter(a.split("/", 1)[0] if "/" in a else "" for a in report.accepted)
    if len([t for t in tops if t]) >= 2:
        report.classes = {t or "(top level)": n for t, n in sorted(tops.items())}
        if "" in tops:
            report.warnings.append(f"{tops['']} accepted image(s) lie directly in the folder, beside the class "
                                   "sub-folders: they belong to no class (with classes from sub-folders, curate "
                                   "skips them as no_class)")


# --------------------------------------------------------------------------------------------------
# the entry text
# --------------------------------------------------------------------------------------------------
def _line(indent: int, key: str, value: str, comment: str, col: int = 34) -> str:
    text = f"{' ' * indent}{key}: {value}" if value != "" else f"{' ' * indent}{key}:"
    return f"{text.ljust(col - 1)} # {_comment(comment)}\n" if comment else text + "\n"


def _flow(value: Any) -> str:
    if isinstance(value, str):
        return _yaml_str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


MODE_MEANING = {"face": "FFHQ-style face crop from landmarks", "center": "largest centred square, resized",
                "pad": "padded to a square with `background`, resized",
                "none": "already aligned squares, resized only; non-square images refused"}


def _entry_text(report: Report, entry: dict, when: str) -> str:
    r = report
    refused = ", ".join(f"{k} {v}" for k, v in r.refused_by_reason.items()) or "none"
    fmts = ", ".join(f"{k} {v}" for k, v in r.formats.items()) or "none"
    lines = ["\n" + f"# ---- {_comment(r.name)}: added by `fewgan dataset add` on {when} ".ljust(104, "-") + "\n"]
    lines.append(f"# from folder {_comment(str(r.path))} (given as {_comment(r.given_path)})\n")
    lines.append(f"# found {r.files_found} file(s): {len(r.accepted)} {'faces' if r.mode == 'face' else 'images'} "
                 f"accepted, {len(r.refused)} refused "
                 f"({_comment(refused)})" + (f", {len(r.other)} landmark file(s)" if r.other else "") + "\n")
    w, h = r.sizes.get("width"), r.sizes.get("height")
    size = (f"; width {w[0]}..{w[2]} px (median {w[1]}), height {h[0]}..{h[2]} px (median {h[1]})"
            if r.sizes else "")
    lines.append(f"# formats {fmts}{size}\n")
    if r.classes:
        lines.append("# classes (sub-folders, accepted images): "
                     + _comment(", ".join(f"{k} {v}" for k, v in r.classes.items()))
                     + f" ({_comment(r.class_note)})\n")
    shown = sorted(r.refused, key=lambda f: (f.reason, f.file))
    for f in shown[:MAX_LISTED]:
        face = f" face {f.face}" if f.face is not None else ""
        lines.append(f"#   refused {f.reason}: {_comment(f.file)}{face}\n")
    if len(shown) > MAX_LISTED:
        lines.append(f"#   ... and {len(shown) - MAX_LISTED} more refused file(s)\n")
    lines.append(f"{_yaml_key(r.name)}:\n")
    lines.append(_line(2, "description", _yaml_str(entry["description"]), "free text for the report"))
    lines.append(_line(2, "domain", _yaml_str(entry["domain"]), "what the images show (free text)"))
    src = entry["source"]
    lines.append(_line(2, "source", "", "where the images are"))
    lines.append(_line(4, "kind", "folder", "a folder, searched recursively (hidden files skipped)"))
    root_meaning = ("relative to the shared real-image folder (FEWGAN_SHARED_DATA, else shared_data_root)"
                    if src["root"] == "shared_data" else "relative to the repository root")
    lines.append(_line(4, "root", src["root"], root_meaning))
    lines.append(_line(4, "path", _yaml_str(src["path"]), "the image folder, relative to root"))
    lines.append(_line(2, "mode", entry["mode"], MODE_MEANING[entry["mode"]]))
    if "classes" in entry:
        lines.append(_line(2, "classes", "{from: subfolder}", "an image's class = its first sub-folder"))
    if "landmarks" in entry:
        lmk = entry["landmarks"]
        lines.append(_line(2, "landmarks", "", "face landmarks for the alignment"))
        lines.append(_line(4, "format", lmk["format"], "celeba | dlib_xml | json"))
        lines.append(_line(4, "path", _flow(lmk["path"]), "relative to the image folder"))
        if "missing_images" in lmk:
            lines.append(_line(4, "missing_images", lmk["missing_images"],
                               f"the file names {len(r.landmarks['unknown_names'])} image(s) not in the folder"))
    if entry.get("detector"):
        lines.append(_line(2, "detector", entry["detector"], "face detector plugin for photos without landmarks"))
    lines.append(_line(2, "resolution", str(entry["resolution"]), f"output side in px; {r.resolution_note}"))
    lines.append(_line(2, "shots", str(entry["shots"]), f"images in the few-shot subset (train + test); {r.shots_note}"))
    lines.append(_line(2, "min_images", str(entry["min_images"]),
                       "curate/split stop with an error below this many usable images"))
    return "".join(lines)


# --------------------------------------------------------------------------------------------------
# the command
# --------------------------------------------------------------------------------------------------
def add_dataset(name: str, path: str | os.PathLike, *, mode: str = "center", resolution: int | None = None,
                shots: int | None = None, landmarks: Any = None, landmarks_format: str | None = None,
                detector: str | None = None, description: str | None = None, domain: str | None = None,
                classes: str = "auto", params_dir: Path = Path("params"), dry_run: bool = False,
                now: dt.datetime | None = None) -> Report:
    """Scan the image folder `path`, and (unless `dry_run`) append an entry `name` to
    `params_dir/datasets.yaml`. Returns the findings; raises DatasetAddError (with `.report` when the folder
    was scanned) when the folder cannot be registered. `classes`: auto (class-conditional from sub-folders when
    the folder holds two or more sub-folders and no loose images), subfolder, or none."""
    if classes not in CLASS_CHOICES:
        raise DatasetAddError(f"--classes {classes!r}: choose one of {', '.join(CLASS_CHOICES)}")
    try:
        check_name(name, "dataset", WHERE)
    except InvalidNameError as e:
        raise DatasetAddError(f"{e}; choose another NAME") from e
    params_dir = Path(params_dir)
    dfile = params_dir / "datasets.yaml"
    try:
        original = dfile.read_bytes()
        existing = read_yaml(dfile)
    except FileNotFoundError:
        raise DatasetAddError(f"{dfile}: not found; run the command in the repository root or give "
                              "--params-dir") from None
    except Exception as e:  # yaml errors, bad UTF-8
        raise DatasetAddError(f"{dfile}: not valid YAML ({e}); fix it before adding a dataset") from e
    if existing is None:
        existing = {}
    if not isinstance(existing, dict):
        raise DatasetAddError(f"{dfile}: must be a mapping of dataset names to entries, got "
                              f"{type(existing).__name__}; fix the file first")
    if name in existing:
        raise DatasetAddError(f"{dfile}: a dataset named {name!r} already exists; pick another NAME "
                              f"(e.g. {name}_2) or edit that entry in {dfile} by hand")
    same_case = [k for k in existing if isinstance(k, str) and k.lower() == name.lower()]
    if same_case:  # data/curated/<name> would collide on case-insensitive file systems
        raise DatasetAddError(f"{dfile}: dataset {name!r} differs only in letter case from the existing "
                              f"{same_case[0]!r}; pick another NAME")
    if mode not in MODES:
        raise DatasetAddError(f"--mode {mode!r}: choose one of {', '.join(MODES)}")
    if resolution is not None and resolution not in RESOLUTIONS:
        raise DatasetAddError(f"--resolution {resolution}: choose one of {', '.join(map(str, RESOLUTIONS))}")
    if shots is not None and (not isinstance(shots, int) or shots < 2):
        raise DatasetAddError(f"--shots {shots!r}: must be an integer of at least 2 (or leave it out: all images)")
    if detector is not None and mode != "face":
        raise DatasetAddError(f"--detector {detector}: only face mode uses a detector; drop it or use --mode face")
    repo = params_dir.resolve().parent
    given = str(path)
    path = Path(path)
    _check_folder(path, repo)
    folder = path.resolve()

    lm = _landmark_files(landmarks, landmarks_format, folder)
    if mode == "face" and lm is None and detector is None:
        raise DatasetAddError(
            "--mode face needs face landmarks: give --landmarks FILE (a file inside the image folder, "
            "format celeba .txt, dlib_xml .xml or json .json) or --detector dlib (needs "
            "`pip install 'fewgan[detect]'`); or use --mode center, pad or none")
    if mode != "face" and lm is not None:
        raise DatasetAddError("--landmarks: only face mode uses landmarks; drop it or use --mode face")

    source, problem = _locate(folder, repo, params_dir)
    report = Report(name=name, path=folder, given_path=given, mode=mode, resolution=resolution,
                    resolution_note="", shots=shots, shots_note="", source=source, datasets_file=dfile,
                    dry_run=dry_run)
    if problem:
        report.problems.append(problem)
    for other, e in existing.items():
        src = e.get("source") if isinstance(e, dict) else None
        if (isinstance(src, dict) and src.get("kind") == "folder" and source["path"] is not None
                and src.get("root", "repo") == source["root"] and src.get("path") == source["path"]):
            report.warnings.append(f"dataset {other!r} in {dfile} already reads this folder "
                                   f"(mode {e.get('mode')}, resolution {e.get('resolution')})")

    # the entry with every default filled in (curate's own view), for the scan
    probe = {"source": {"kind": "folder", "path": source["path"] or "."}, "mode": mode,
             "resolution": resolution or RESOLUTIONS[0]}
    if lm:
        probe["landmarks"] = {"format": lm[0], "path": lm[1] if len(lm[1]) > 1 else lm[1][0]}
    if detector:
        probe["detector"] = detector
    try:
        resolved = resolve_entry({"seed": 0, "datasets": {name: dataset_entry(probe, params_dir)}}, name)
    except DatasetConfigError as e:
        raise DatasetAddError(str(e)) from e
    _scan(report, resolved, folder, lm, detector, resolution)

    accepted = len(report.accepted)
    min_images = int(dataset_entry({}, params_dir)["min_images"])  # params/dataset_defaults.yaml
    if report.resolution is None:
        report.problems.append(f"{folder}: no usable image found (see the refused files); nothing to register")
    elif accepted < min_images:
        report.problems.append(f"{folder}: only {accepted} image(s) accepted; curate needs at least "
                               f"min_images={min_images}: add images or fix the refused ones")
    if shots is None:
        report.shots = accepted
        report.shots_note = f"default: all {accepted} accepted images"
    else:
        report.shots_note = f"given; {accepted} accepted"
        if shots > accepted:
            report.problems.append(f"--shots {shots}: only {accepted} image(s) accepted; give at most {accepted}")
        if shots < min_images:
            report.problems.append(f"--shots {shots}: below min_images={min_images}; give at least {min_images}")
    if report.problems:
        if dry_run:
            return report
        raise DatasetAddError("cannot register " + _show(str(folder)) + ":\n  - " + "\n  - ".join(report.problems)
                              + "\nNothing was written.", report)

    entry: dict[str, Any] = {
        "description": description if description is not None else
        f"{accepted} {'faces' if mode == 'face' else 'images'} from {folder.name} (registered by fewgan dataset add)",
        "domain": domain if domain is not None else "unknown (edit me)",
        "source": {"kind": "folder", "root": source["root"], "path": source["path"]},
        "mode": mode,
    }
    loose = report.classes.get("(top level)", 0)
    if classes == "subfolder" and (not report.classes or loose):
        why = (f"{loose} accepted image(s) lie directly in the folder and would belong to no class: move them into "
               "a class sub-folder" if loose else "the folder has fewer than two sub-folders with accepted images")
        raise DatasetAddError(f"--classes subfolder: {_show(str(folder))}: {why}. Nothing was written.", report)
    if classes == "subfolder" or (classes == "auto" and report.classes and not loose):
        entry["classes"] = {"from": "subfolder"}
        report.class_note = ("used as classes: a model that supports classes (BigGAN) trains on them, evaluate "
                             "reports each class too; --classes none trains one unconditional dataset")
    elif report.classes:
        report.class_note = ("not used as classes: " + ("--classes none" if classes == "none" else
                             f"{loose} image(s) lie outside the sub-folders; move them into one and run again, "
                             "or add classes: {from: subfolder} by hand (curate then skips them)")
                             + "; trained as one dataset")
    if lm:
        entry["landmarks"] = {"format": lm[0], "path": lm[1] if len(lm[1]) > 1 else lm[1][0]}
        if report.landmarks and report.landmarks["unknown_names"]:
            entry["landmarks"]["missing_images"] = "warn"
    if detector:
        entry["detector"] = detector
    entry.update(resolution=report.resolution, shots=report.shots, min_images=min_images)
    try:
        complete = dataset_entry(entry, params_dir)
        validate_entry(name, complete)
        resolve_entry({"seed": 0, "datasets": {name: complete}}, name)
    except DatasetConfigError as e:
        raise DatasetAddError(f"the entry built for {name!r} is invalid ({e}); this is a bug in "
                              "fewgan.data.register: report it", report) from e
    report.entry = entry
    when = (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")
    report.text = _entry_text(report, entry, when)
    if dry_run:
        return report
    _append(dfile, original, report.text, existing, name, entry, params_dir)
    report.written = True
    return report


def _append(dfile: Path, original: bytes, text: str, before: dict, name: str, entry: dict,
            params_dir: Path) -> None:
    """Append `text` atomically; re-read and check the whole file; put the original back on failure."""
    target = dfile.resolve()  # a symlinked params file is edited in place, not replaced by a file
    sep = b"" if original == b"" or original.endswith(b"\n") else b"\n"
    new = original + sep + text.encode("utf-8")

    def write(data: bytes) -> None:
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())

    if target.read_bytes() != original:
        raise DatasetAddError(f"{dfile} changed while the folder was scanned; run the command again")
    write(new)
    try:
        after = read_yaml(target)
        if not isinstance(after, dict) or name not in after:
            raise DatasetAddError(f"{dfile}: the new entry {name!r} is not in the file after writing")
        complete = dataset_entry(after[name], params_dir)
        validate_entry(name, complete)
        resolve_entry({"seed": 0, "datasets": {name: complete}}, name)
        if after[name] != entry or {k: v for k, v in after.items() if k != name} != before:
            raise DatasetAddError(f"{dfile}: after appending, the file does not read back as before plus "
                                  f"the entry {name!r}")
    except Exception as e:
        write(original)
        if isinstance(e, DatasetAddError):
            raise DatasetAddError(f"{e}; the original file was restored", None) from e
        raise DatasetAddError(f"{dfile}: the file with the new entry does not read back or validate ({e}); "
                              "the original file was restored: report this as a bug", None) from e


# --------------------------------------------------------------------------------------------------
# the report and the CLI
# --------------------------------------------------------------------------------------------------
def format_report(report: Report) -> str:
    r = report
    out = [f"fewgan dataset add {_show(r.name)}: folder {_show(str(r.path))} (given as {_show(r.given_path)})"]
    if r.source.get("root"):
        out.append(f"  source: root {r.source['root']}, path {_show(r.source['path'])}: {r.source['how']}")
    else:
        out.append(f"  source: {r.source['how']}")
    out.append(f"  files found: {r.files_found}; decodable images: {r.decoded}; accepted: {len(r.accepted)}"
               f" {'faces' if r.mode == 'face' else 'images'}; refused: {len(r.refused)}"
               + (f"; landmark files: {len(r.other)}" if r.other else ""))
    if r.formats:
        out.append("  formats (by content): " + ", ".join(f"{k} {v}" for k, v in r.formats.items()))
    if r.sizes:
        w, h = r.sizes["width"], r.sizes["height"]
        out.append(f"  sizes (decodable images, px): width min {w[0]} / median {w[1]} / max {w[2]}; "
                   f"height min {h[0]} / median {h[1]} / max {h[2]}")
    if r.classes:
        out.append("  classes (sub-folders, accepted images): "
                   + ", ".join(f"{_show(k)} {v}" for k, v in r.classes.items())
                   + f" ({r.class_note})")
    if r.landmarks:
        lm = r.landmarks
        out.append(f"  landmarks: {lm['format']} {', '.join(_show(f) for f in lm['files'])}: names {lm['names']} "
                   f"image(s); images without landmarks: {len(lm['uncovered'])}"
                   + (" (" + ", ".join(_show(u) for u in lm['uncovered'][:20]) + ")" if lm['uncovered'] else "")
                   + f"; names not in the folder: {len(lm['unknown_names'])}")
    out.append(f"  mode: {r.mode} ({MODE_MEANING[r.mode]})")
    out.append(f"  resolution: {r.resolution if r.resolution is not None else '-'} ({r.resolution_note})")
    out.append(f"  shots: {r.shots if r.shots is not None else '-'} ({r.shots_note})")
    if r.refused:
        out.append(f"  refused ({', '.join(f'{k} {v}' for k, v in r.refused_by_reason.items())}):")
        for f in sorted(r.refused, key=lambda f: (f.reason, f.file)):
            face = f" face {f.face}" if f.face is not None else ""
            detail = f.detail
            prefix = f"{f.file}: "
            if detail.startswith(prefix):  # decode errors start with the file name
                detail = detail[len(prefix):]
            out.append(f"    {f.reason}: {_show(f.file)}{face}" + (f": {_printable(detail)}" if detail else ""))
    for f in r.other:
        out.append(f"  used, not an image: {_show(f.file)} ({f.detail})")
    for w in r.warnings:
        out.append(f"  warning: {w}")
    for p in r.problems:
        out.append(f"  PROBLEM: {p}")
    if r.problems:
        out.append("  not registered" + (" (dry run)" if r.dry_run else "") + ": fix the problems above")
    elif r.dry_run:
        out.append(f"  dry run: nothing written; {r.datasets_file} would get:")
        out.append(r.text.rstrip("\n"))
    elif r.written:
        out.append(f"  appended entry {_show(r.name)} to {r.datasets_file} (re-read and validated):")
        out.append(r.text.rstrip("\n"))
        out.append(f"  next: add {_show(r.name)} to experiment.datasets (params/base.yaml or a profile), run "
                   f"`fewgan params --profile P`, then `fewgan curate --dataset {r.name}`")
    return "\n".join(out)


def _cmd_add(args: argparse.Namespace) -> None:
    try:
        report = add_dataset(args.name, args.path, mode=args.mode, resolution=args.resolution, shots=args.shots,
                             landmarks=args.landmarks, landmarks_format=args.landmarks_format,
                             detector=args.detector, description=args.description, domain=args.domain,
                             classes=args.classes, params_dir=Path(args.params_dir), dry_run=args.dry_run)
    except DatasetAddError as e:
        if e.report is not None:
            print(format_report(e.report))
        print(f"fewgan dataset add: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    print(format_report(report))
    if report.problems:  # a dry run that found problems
        raise SystemExit(2)


def register_cli(subparsers: Any) -> None:
    """Add `fewgan dataset add` to the `fewgan` argument parser's sub-commands."""
    p = subparsers.add_parser("dataset", help="manage the dataset registry (params/datasets.yaml)",
                              description="Manage the dataset registry, params/datasets.yaml.")
    dsub = p.add_subparsers(dest="dataset_command", required=True, metavar="<action>")
    a = dsub.add_parser(
        "add", help="check a folder of images and register it as a dataset",
        description="Check a folder of images the way curate reads it, report what it holds and every file "
                    "it will refuse, then append a commented entry to params/datasets.yaml.")
    a.add_argument("name", help="dataset name (letters, digits, '_', '.', '-')")
    a.add_argument("path", help="the folder of images (inside the repository or the shared real-image folder)")
    a.add_argument("--mode", choices=MODES, default="center",
                   help="face: FFHQ crop from landmarks; center: centre crop (default); pad: pad to square; "
                        "none: already aligned squares")
    a.add_argument("--resolution", type=int, choices=RESOLUTIONS, default=None,
                   help="output side (default: the largest power of two not above the smallest image)")
    a.add_argument("--shots", type=int, default=None, help="few-shot subset size (default: every accepted image)")
    a.add_argument("--landmarks", action="append", default=None, metavar="FILE",
                   help="face landmark file inside the folder (repeatable)")
    a.add_argument("--landmarks-format", choices=LANDMARK_FORMATS, default=None,
                   help="landmark file format (default: from the name: .txt celeba, .xml dlib_xml, .json json)")
    a.add_argument("--detector", default=None, help="face mode without landmarks: detector plugin (dlib)")
    a.add_argument("--classes", choices=CLASS_CHOICES, default="auto",
                   help="auto (default): classes from the sub-folders when there are two or more and no loose "
                        "images; subfolder: always (loose images are skipped); none: one unconditional dataset")
    a.add_argument("--description", default=None, help="free text for the report")
    a.add_argument("--domain", default=None, help="what the images show (free text)")
    a.add_argument("--params-dir", default="params", help="the params folder (default: params)")
    a.add_argument("--dry-run", action="store_true", help="report only, write nothing")
    a.set_defaults(fn=_cmd_add)


def main(argv: Sequence[str] | None = None) -> int:  # pragma: no cover - convenience
    ap = argparse.ArgumentParser(prog="fewgan")
    register_cli(ap.add_subparsers(dest="command", required=True))
    args = ap.parse_args(argv)
    args.fn(args)
    return 0
