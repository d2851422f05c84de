"""The scan of the image folder, in curate's order and with curate's functions: every file found is
accepted or refused with curate's reason (or the reason `sources.list_files` leaves it out); and the
options it depends on (the landmark files, the crop side, the default resolution)."""

from __future__ import annotations

import os
import statistics
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Any

from fewgan.data.register.findings import LANDMARK_FORMATS, DatasetAddError, Finding, Report, _rel, _show
from fewgan.data.schema import RESOLUTIONS

#: landmark format guessed from the file name when --landmarks-format is not given
LANDMARK_SUFFIXES = {".txt": "celeba", ".xml": "dlib_xml", ".json": "json"}
#: reasons a file is not read at all because `sources.list_files` leaves it out
LISTING_REASONS = ("hidden_file", "hidden_folder", "symlink_outside", "symlink_folder", "broken_symlink",
                   "not_regular_file", "not_listed")


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
