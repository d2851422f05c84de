"""The curate stage: source images -> aligned/cropped 8-bit RGB PNGs + manifest + summary.

`run(params, dataset, out_dir)` writes
- `out_dir/images/*.png`: lossless PNGs at the dataset's resolution (one per face in `face` mode);
- `out_dir/manifest.csv`: one row per source file (per face in `face` mode), written or skipped, with
  source path and sha256, format, EXIF orientation, colour conversion, landmarks used, crop quad,
  output file and sha256 (file bytes) and pixels_sha256 (decoded pixels; the split is keyed on it),
  pHash, and the reason for every skipped row (entries of the source folder that are not read - a link
  leaving it, a symlink loop, a name with a newline: `fewgan.data.sources.scan_files` - are skipped rows
  too, the name shown escaped); datasets with classes (`classes.from` subfolder/csv,
  `fewgan.data.classes`) add a last column `class` (images without one: skipped, reason no_class);
- `out_dir/summary.json`: counts, mode, resolution, synthetic flag, notes, fallbacks, provenance, and for
  datasets with classes a `classes` block (source, names, written images per class);
- `out_dir/source/` (synthetic datasets only): the generated raw photos and their landmark file.
Everything is built in a temporary folder beside `out_dir` and moved into place at the end.

Modes: `face` (FFHQ/CelebA-HQ oriented crop, see `fewgan.data.align`), `center` (largest centred
square, resized), `pad` (padded to a square with `background`, resized), `none` (already aligned
square images, only resized; non-square ones are skipped). Resizing is Lanczos (antialiased).

Not done, on purpose: ProGAN's CelebA-HQ JPEG-artifact removal and 4x super-resolution networks.

Curation order (deterministic: files in sorted path order, the first occurrence wins):
exact duplicates by source-file sha256 -> decode (per-file errors are skipped rows) -> crop ->
exact duplicates by output pixels -> near duplicates by 64-bit DCT pHash (Hamming distance at most
`dedup.phash_max_distance`) -> write. The run stops with an error when fewer than `min_images` (or
`shots`) images remain, naming the skipped files and their reasons.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import re
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fewgan.io import atomic_dir, atomic_write_bytes, atomic_write_json, atomic_write_text, safe_join, sha256_file
from fewgan.data import align as A
from fewgan.data.classes import NO_CLASS, class_labels
from fewgan.data.decode import ImageDecodeError, decode_image
from fewgan.data.dedup import nearest, phash
from fewgan.data.landmarks import LandmarkError, get_detector, match_to_images, read_landmarks
from fewgan.data.schema import DatasetConfigError, resolve_entry, shared_data_root
from fewgan.data.sources import SourceError, download, extract_zip, scan_files

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = ["source", "source_sha256", "format", "source_size", "exif_orientation", "conversion",
                    "face_index", "landmarks", "landmarks_points", "quad", "quad_side", "status", "reason",
                    "detail", "file", "output_sha256", "pixels_sha256", "phash"]
SKIPPED_NETS_NOTE = ("ProGAN's CelebA-HQ JPEG-artifact removal and 4x super-resolution networks are not "
                     "applied: aligned faces keep the source's compression artifacts and detail")
DOWNLOAD_CACHE = Path("cache/downloads")


class CurateError(RuntimeError):
    """The curate stage cannot produce a usable dataset (message says which files and what to do)."""


def pixels_sha256(img: Image.Image) -> str:
    """Hash of the decoded 8-bit RGB pixels and their shape (independent of PNG encoder settings)."""
    h = hashlib.sha256(f"{img.width}x{img.height}:RGB:".encode())
    h.update(img.convert("RGB").tobytes())
    return h.hexdigest()


#: zlib level 1: measured 5.8 ms vs 22 ms (level 6) per 128 px image for files only ~17% larger;
#: PNG stays lossless either way (the split keys on pixel hashes, not file bytes).
PNG_COMPRESS_LEVEL = 1


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def output_stem(rel: str) -> str:
    stem = rel.rsplit(".", 1)[0] if "." in Path(rel).name else rel
    return _UNSAFE.sub("_", stem.replace("/", "__")).strip("._") or "image"


def _fmt_points(pts: np.ndarray) -> str:
    return json.dumps([[round(float(v), 2) for v in p] for p in np.asarray(pts)])


def _base_root(params: dict, entry: dict) -> tuple[Path, str]:
    if entry["source"]["root"] == "shared_data":
        root, how = shared_data_root(params)
        if not root.is_dir():
            raise SourceError(f"shared data folder {root} (from {how}) not found; set FEWGAN_SHARED_DATA or "
                              "params shared_data_root to the folder holding the shared real images")
        return root, f"shared_data ({how})"
    return Path.cwd(), "repo"


def _prepare_source(params: dict, entry: dict, work: Path, fallbacks: list[str]) -> tuple[Path, dict]:
    """Materialise the source; returns (image folder, source info for the summary)."""
    src = entry["source"]
    kind = src["kind"]
    info: dict[str, Any] = {"kind": kind}
    if kind == "synthetic":
        from fewgan.data.synthetic import generate

        folder = work / "source"
        t = time.perf_counter()
        generate(folder, int(src["count"]), int(src["seed"]))
        info.update(count=int(src["count"]), seed=int(src["seed"]), folder="source",
                    generate_seconds=round(time.perf_counter() - t, 3))
        return folder, info
    base, how = _base_root(params, entry)
    info["root"] = how
    if kind == "folder":
        folder = safe_join(base, src["path"])
        info["path"] = src["path"]
    elif kind == "zip":
        archive = safe_join(base, src["path"])
        if not archive.is_file():
            raise SourceError(f"zip archive {archive} not found; fix `source.path` in params/datasets.yaml")
        digest = sha256_file(archive)
        if src.get("sha256") and digest != src["sha256"]:
            raise SourceError(f"{archive}: sha256 {digest} does not match source.sha256 {src['sha256']}")
        folder = work / "_extract"
        extract_zip(archive, folder, int(entry["max_extract_bytes"]))
        info.update(path=src["path"], sha256=digest)
    elif kind == "url":
        archive, digest, fb = download(src["url"], src.get("sha256"), DOWNLOAD_CACHE)
        fallbacks.extend(fb)
        folder = work / "_extract"
        extract_zip(archive, folder, int(entry["max_extract_bytes"]))
        info.update(url=src["url"], sha256=digest)
    else:  # pragma: no cover - schema forbids
        raise DatasetConfigError(f"unknown source kind {kind!r}")
    if src.get("subdir"):
        folder = safe_join(folder, src["subdir"])
        info["subdir"] = src["subdir"]
    if not folder.is_dir():
        raise SourceError(f"image folder {folder} not found; check `source.path`/`source.subdir` for "
                          f"dataset {entry['name']!r} in params/datasets.yaml")
    return folder, info


def _crop(entry: dict, img: Image.Image, faces: list[np.ndarray] | None) -> list[dict]:
    """Crops of one decoded image: [{image, quad, side, landmarks, face_index, reason, detail}]."""
    res = int(entry["resolution"])
    mode = entry["mode"]
    if mode != "face":
        try:
            if mode == "center":
                out, quad = A.center_crop(img, res)
            elif mode == "pad":
                out, quad = A.pad_square(img, res, tuple(entry["background"]))
            else:
                out, quad = A.resize_only(img, res)
        except ValueError as e:
            return [{"reason": "not_square", "detail": str(e), "face_index": ""}]
        side = float(np.hypot(*(quad[3] - quad[0])))
        return [{"image": out, "quad": quad, "side": side, "face_index": ""}]
    rows = []
    min_side = float(entry["min_face_fraction"]) * res
    for k, lm in enumerate(faces or []):
        try:
            quad, side = A.compute_quad(lm)
        except ValueError as e:
            rows.append({"reason": "bad_landmarks", "detail": str(e), "face_index": k, "landmarks": lm})
            continue
        el, er, ml, mr = A.face_points(lm)
        pts = np.stack([el, er, ml, mr])
        if side < min_side:
            rows.append({"reason": "face_too_small", "face_index": k, "quad": quad, "side": side, "points": pts,
                         "detail": f"quad side {side:.1f} px < min_face_fraction {entry['min_face_fraction']} x "
                                   f"resolution {res} = {min_side:.1f} px"})
            continue
        out, _ = A.align_face(img, lm, res, supersample=int(entry["align"]["supersample"]),
                              padding=bool(entry["align"]["padding"]))
        rows.append({"image": out, "quad": quad, "side": side, "face_index": k, "points": pts})
    return rows


def _curate(params: dict, entry: dict, work: Path) -> dict:
    t0 = time.perf_counter()
    fallbacks: list[str] = []
    name = entry["name"]
    res = int(entry["resolution"])
    mode = entry["mode"]
    folder, source_info = _prepare_source(params, entry, work, fallbacks)

    # Landmarks / detector (face mode only).
    lm_cfg = entry["landmarks"]
    if mode == "face" and lm_cfg is None and entry["source"]["kind"] == "synthetic":
        from fewgan.data.synthetic import LANDMARK_FILE

        lm_cfg = {"format": "celeba", "path": LANDMARK_FILE, "missing_images": "error"}
    landmark_files: list[Path] = []
    detector = None
    if mode == "face":
        if lm_cfg is None and not entry["detector"]:
            raise DatasetConfigError(
                f"dataset {name!r}: mode 'face' needs landmarks (`landmarks: {{format, path}}`) or a detector "
                "plugin (`detector: dlib`, needs `pip install 'fewgan[detect]'`); or use mode center/pad/none")
        if entry["detector"]:
            detector = get_detector(entry["detector"])  # raises a clear error when not installed
        if lm_cfg is not None:
            paths = lm_cfg["path"] if isinstance(lm_cfg["path"], list) else [lm_cfg["path"]]
            landmark_files = [safe_join(folder, p) for p in paths]
    elif lm_cfg is not None or entry["detector"]:
        log.warning("dataset %s: landmarks/detector given but mode is %r; they are not used", name, mode)

    files, left_out = scan_files(folder)
    labels = class_labels(entry, folder)
    lm_set = {p.resolve() for p in landmark_files} | ({labels.csv_path.resolve()} if labels.csv_path else set())
    files = [(rel, p) for rel, p in files if p.resolve() not in lm_set]
    if not files:
        unread = (f" ({len(left_out)} entr{'y' if len(left_out) == 1 else 'ies'} not read: "
                  + "; ".join(f"{lo.rel}: {lo.reason}" for lo in left_out[:10]) + ")") if left_out else ""
        raise CurateError(f"dataset {name!r}: no files found in {folder}; the source folder is empty "
                          f"(check `source.path`/`subdir`){unread}")

    faces_by_file: dict[str, list[np.ndarray]] = {}
    lm_stats: dict[str, int] = {}
    if landmark_files:
        raw = read_landmarks(lm_cfg["format"], landmark_files, folder, lm_stats)
        faces_by_file, missing = match_to_images(raw, [r for r, _ in files], str(landmark_files))
        if missing:
            msg = (f"landmark file(s) {', '.join(str(p) for p in landmark_files)} name {len(missing)} image(s) "
                   f"not found under {folder}: {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}")
            if lm_cfg.get("missing_images", "error") == "error":
                raise LandmarkError(msg + "; add the images, fix the file, or set landmarks.missing_images: warn")
            log.warning(msg)
            fallbacks.append(msg)

    images_dir = work / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    bg = tuple(entry["background"])
    max_px = int(entry["max_pixels"])
    dedup = entry["dedup"]
    near_thr = dedup["phash_max_distance"]
    seen_src: dict[str, str] = {}
    seen_pix: dict[str, str] = {}
    kept_hashes: list[int] = []
    kept_files: list[str] = []
    used_names: set[str] = set()
    # entries the folder scan does not read (links leaving the folder, loops, control characters in the
    # name, ...) are skipped rows too: named in manifest.csv, counted in summary.json
    rows: list[dict] = [{"source": lo.rel, "status": "skipped", "reason": lo.reason, "detail": lo.detail}
                        for lo in left_out]
    decoded = faces_total = 0
    fmt_mismatch = 0
    upscaled = 0

    for rel, path in files:
        base = {"source": rel, "status": "skipped"}
        sha = sha256_file(path)
        base["source_sha256"] = sha
        if dedup["exact"] and sha in seen_src:
            rows.append(base | {"reason": "duplicate_exact", "detail": f"same file bytes as {seen_src[sha]}"})
            continue
        seen_src.setdefault(sha, rel)
        try:
            d = decode_image(path, background=bg, max_pixels=max_px, display_name=rel)
        except ImageDecodeError as e:
            if e.reason != "not_image":
                log.warning("skipping %s: %s", rel, e)
            rows.append(base | {"reason": e.reason, "detail": str(e)})
            continue
        decoded += 1
        if any("content is" in n for n in d.notes):
            fmt_mismatch += 1
        base.update(format=d.format, source_size=f"{d.source_size[0]}x{d.source_size[1]}",
                    exif_orientation=d.exif_orientation,
                    conversion="; ".join([c for c in [d.conversion, *d.notes] if c]))
        if labels.enabled:
            cls, why = labels.of(rel)
            if cls is None:
                log.warning("skipping %s: no class (%s)", rel, why)
                rows.append(base | {"reason": NO_CLASS, "detail": why})
                continue
            base["class"] = cls
        faces = None
        if mode == "face":
            faces = faces_by_file.get(rel)
            label = f"{lm_cfg['format']}:{','.join(p.name for p in landmark_files)}" if faces else ""
            if not faces and detector is not None:
                faces = detector(d.image)
                label = f"detector:{entry['detector']}"
                if not faces:
                    rows.append(base | {"reason": "no_face_detected", "landmarks": label})
                    continue
            if not faces:
                rows.append(base | {"reason": "no_landmarks",
                                    "detail": "no landmarks for this image in the landmark file(s)"})
                continue
            base["landmarks"] = label
            faces_total += len(faces)
        for crop in _crop(entry, d.image, faces):
            row = dict(base)
            row["face_index"] = crop.get("face_index", "")
            if "points" in crop:
                row["landmarks_points"] = _fmt_points(crop["points"])
            if "quad" in crop:
                row["quad"] = _fmt_points(crop["quad"])
                row["quad_side"] = round(float(crop["side"]), 2)
            if "image" not in crop:
                rows.append(row | {"reason": crop["reason"], "detail": crop.get("detail", "")})
                continue
            out = crop["image"]
            pix = pixels_sha256(out)
            ph = phash(out)
            row.update(pixels_sha256=pix, phash=f"{ph:016x}")
            if dedup["exact"] and pix in seen_pix:
                rows.append(row | {"reason": "duplicate_exact", "detail": f"same pixels as {seen_pix[pix]}"})
                continue
            if near_thr is not None:
                j, dist = nearest(ph, kept_hashes)
                if j >= 0 and dist <= near_thr:
                    rows.append(row | {"reason": "duplicate_near",
                                       "detail": f"pHash distance {dist} <= {near_thr} to {kept_files[j]}"})
                    continue
            if mode != "face" and crop["side"] < res:
                upscaled += 1
            stem = output_stem(rel) + (f"_f{crop['face_index']:02d}" if mode == "face" else "")
            if stem.lower() in used_names:
                stem = f"{stem}_{pix[:8]}"
            used_names.add(stem.lower())
            fname = f"images/{stem}.png"
            data = png_bytes(out)
            atomic_write_bytes(work / fname, data)
            seen_pix[pix] = fname
            kept_hashes.append(ph)
            kept_files.append(fname)
            rows.append(row | {"status": "written", "reason": "", "file": fname,
                               "output_sha256": hashlib.sha256(data).hexdigest()})

    written = [r for r in rows if r["status"] == "written"]
    skipped = [r for r in rows if r["status"] == "skipped"]
    reasons = Counter(r["reason"] for r in skipped)
    need = max(int(entry["min_images"]), int(entry["shots"] or 0))
    if len(written) < need:
        problems = [f"{r['source']}: {r['reason']}" for r in skipped if r["reason"] != "not_image"][:15]
        raise CurateError(
            f"dataset {name!r}: only {len(written)} usable image(s) after curation, need at least {need} "
            f"(min_images={entry['min_images']}, shots={entry['shots']}); skipped by reason: {dict(reasons)}"
            + ("; first problems: " + "; ".join(problems) if problems else "")
            + ". Add images, fix the files named, or lower shots/min_images in params/datasets.yaml")

    columns = MANIFEST_COLUMNS + (["class"] if labels.enabled else [])  # classless: the columns of before
    buf = io.StringIO()
    wr = csv.DictWriter(buf, fieldnames=columns, extrasaction="raise", lineterminator="\n")
    wr.writeheader()
    for r in rows:
        wr.writerow({k: r.get(k, "") for k in columns})
    atomic_write_text(work / "manifest.csv", buf.getvalue())

    notes = []
    if mode == "face":
        notes.append(SKIPPED_NETS_NOTE)
        notes.append(f"faces whose crop quad side is below min_face_fraction x resolution = "
                     f"{entry['min_face_fraction']} x {res} px are skipped (reason face_too_small)")
    if entry["synthetic"]:
        notes.append("SYNTHETIC dataset: procedurally drawn cartoon faces (fewgan.data.synthetic), not photos; "
                     "numbers on it are pipeline checks, not comparable to any published result")
    if fmt_mismatch:
        notes.append(f"{fmt_mismatch} file(s) whose name suffix does not match their content were decoded by content")
    if upscaled:
        notes.append(f"{upscaled} image(s) were smaller than {res} px and were upsampled")
    classes_block = None
    if labels.enabled:
        per_class = Counter(r["class"] for r in written)
        unused = labels.unused_rows([rel for rel, _ in files])
        if unused:
            msg = (f"labels file {labels.csv_rel} lists {len(unused)} file(s) not found in the image folder "
                   f"(ignored): {', '.join(unused[:10])}{' ...' if len(unused) > 10 else ''}")
            log.warning(msg)
            fallbacks.append(msg)
        if reasons.get(NO_CLASS):
            notes.append(f"{reasons[NO_CLASS]} image(s) had no class and were skipped (reason {NO_CLASS} in "
                         "manifest.csv)")
        single = sorted(c for c, n in per_class.items() if n < 2)
        if single:
            notes.append(f"class(es) {', '.join(single)} have a single image: it is used for training only "
                         "(no test image of that class)")
        classes_block = {"from": entry["classes"]["from"], "csv": entry["classes"]["csv"],
                         "names": sorted(per_class), "counts": dict(sorted(per_class.items()))}
    from fewgan.provenance import collect

    summary = {
        "stage": "curate",
        "dataset": name,
        "description": entry["description"],
        "domain": entry["domain"],
        "synthetic": bool(entry["synthetic"]),
        "mode": mode,
        "resolution": res,
        "source": source_info,
        "landmarks": ({"format": lm_cfg["format"], "files": [p.name for p in landmark_files], **lm_stats}
                      if landmark_files else None),
        "detector": entry["detector"],
        "counts": {
            "found": len(files) + len(left_out),
            "decoded": decoded,
            "faces": faces_total if mode == "face" else None,
            "skipped": sum(reasons.values()),
            "skipped_by_reason": dict(sorted(reasons.items())),
            "duplicates": {"exact": reasons.get("duplicate_exact", 0), "near": reasons.get("duplicate_near", 0)},
            "faces_too_small": reasons.get("face_too_small", 0),
            "written": len(written),
        },
        "params": {k: entry[k] for k in ("shots", "min_images", "background", "dedup", "min_face_fraction",
                                         "max_pixels", "align")},
        "skipped_steps": ["jpeg_artifact_removal", "super_resolution"] if mode == "face" else [],
        **({"classes": classes_block} if classes_block is not None else {}),
        "notes": notes,
        "fallbacks": fallbacks,
        "seconds": round(time.perf_counter() - t0, 3),
        "provenance": collect(params),
    }
    atomic_write_json(work / "summary.json", summary)
    return summary


def run(params: dict, dataset: str, out_dir: Path) -> dict:
    """Curate dataset `dataset` of `params` into `out_dir` (replaced atomically). Returns the summary."""
    entry = resolve_entry(params, dataset)
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as work:
        summary = _curate(params, entry, work)
        shutil.rmtree(work / "_extract", ignore_errors=True)
    log.info("curated %s: %d images written to %s", dataset, summary["counts"]["written"], out_dir)
    return summary


def stage(ctx) -> dict:
    """`fewgan curate` (fewgan.stages)."""
    return run(ctx.params, ctx.dataset, ctx.out)
