"""Face landmarks: readers for CelebA text, dlib imglab XML and a simple JSON; detector plugins.

Every reader returns `{key: [face_landmarks, ...]}` where `key` is the image path as the file names
it (POSIX, relative) and each face is a float array of shape (5, 2) or (68, 2) in pixel coordinates
of the image as a viewer shows it (EXIF orientation applied).

Formats
- `celeba`: CelebA `list_landmarks_*.txt`: line 1 = number of rows, line 2 = header
  (lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x
  rightmouth_y), then `name x1 y1 ... x5 y5` per image (one face per image).
- `dlib_xml`: dlib imglab XML: `<image file=...>` holding `<box>` elements whose 68 `<part name='00'..'67'
  x= y=>` children are the iBUG-300W points. `file` is relative to the XML's folder. Boxes marked
  `ignore='1'` and boxes without 68 parts are not faces with landmarks (they are counted).
- `json`: `{"images": {"path.jpg": FACES}}` or directly `{"path.jpg": FACES}` where FACES is one
  face `[[x, y], ...]` (5 or 68 points) or a list of faces `[[[x, y], ...], ...]`.

Detector plugins (`register_detector`) produce 68-point landmarks for photos without a landmark file.
The built-in `dlib` plugin needs the `detect` extra (`pip install 'fewgan[detect]'`: dlib and
face_recognition_models, which ships dlib's 68-point predictor that FFHQ used).
"""

from __future__ import annotations

import json
import logging
import re
import xml.etree.ElementTree as ET
from pathlib import Path, PurePosixPath
from typing import Callable

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

Faces = dict[str, list[np.ndarray]]


class LandmarkError(ValueError):
    """A landmark file is malformed or inconsistent with the images."""


class DetectorUnavailable(RuntimeError):
    """The configured face detector plugin cannot run on this machine."""


# ---- readers ------------------------------------------------------------------------------------
def read_celeba(path: Path) -> Faces:
    lines = Path(path).read_text(encoding="utf-8", errors="strict").splitlines()
    if len(lines) < 2:
        raise LandmarkError(f"{path}: CelebA landmark file needs a count line and a header line")
    try:
        count = int(lines[0].strip())
    except ValueError as e:
        raise LandmarkError(f"{path}: line 1 must be the number of rows, got {lines[0]!r}") from e
    header = lines[1].split()
    if len(header) != 10 or not header[0].startswith("lefteye"):
        raise LandmarkError(f"{path}: line 2 must be the 10-column CelebA header (lefteye_x ... rightmouth_y), "
                            f"got {lines[1]!r}")
    out: Faces = {}
    rows = 0
    for i, line in enumerate(lines[2:], start=3):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 11:
            raise LandmarkError(f"{path}:{i}: expected a file name and 10 numbers, got {len(parts)} fields")
        try:
            pts = np.array([float(v) for v in parts[1:]], dtype=np.float64).reshape(5, 2)
        except ValueError as e:
            raise LandmarkError(f"{path}:{i}: landmark values must be numbers ({e})") from e
        if parts[0] in out:
            raise LandmarkError(f"{path}:{i}: image {parts[0]!r} listed twice")
        out[parts[0]] = [pts]
        rows += 1
    if rows != count:
        raise LandmarkError(f"{path}: line 1 announces {count} rows but the file has {rows}; "
                            "the file is truncated or edited by hand")
    return out


_DTD = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


def read_dlib_xml(path: Path, stats: dict | None = None) -> Faces:
    """Faces with 68 parts, keyed by the image path relative to the XML's folder."""
    data = Path(path).read_bytes()
    if _DTD.search(data):  # no DTDs/entities: refuses entity-expansion attacks outright
        raise LandmarkError(f"{path}: XML with a DOCTYPE/ENTITY declaration is refused")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise LandmarkError(f"{path}: not well-formed XML ({e})") from e
    out: Faces = {}
    no_parts = ignored = 0
    for image in root.iter("image"):
        file = image.get("file")
        if not file:
            raise LandmarkError(f"{path}: an <image> element has no 'file' attribute")
        faces = out.setdefault(file, [])
        for box in image.iter("box"):
            if box.get("ignore") in ("1", "true"):
                ignored += 1
                continue
            parts = {p.get("name"): p for p in box.iter("part")}
            if not parts:
                no_parts += 1
                continue
            try:
                pts = np.array([[float(parts[f"{k:02d}"].get("x")), float(parts[f"{k:02d}"].get("y"))]
                                for k in range(68)], dtype=np.float64)
            except (KeyError, TypeError, ValueError) as e:
                raise LandmarkError(f"{path}: image {file!r}: a box needs 68 parts named '00'..'67' with "
                                    f"numeric x, y ({e!r})") from e
            faces.append(pts)
    if stats is not None:
        stats["boxes_without_parts"] = stats.get("boxes_without_parts", 0) + no_parts
        stats["boxes_ignored"] = stats.get("boxes_ignored", 0) + ignored
    return out


def read_json(path: Path) -> Faces:
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise LandmarkError(f"{path}: not valid JSON ({e})") from e
    if isinstance(obj, dict) and isinstance(obj.get("images"), dict):
        obj = obj["images"]
    if not isinstance(obj, dict):
        raise LandmarkError(f"{path}: expected an object mapping image paths to landmarks")
    out: Faces = {}
    for name, faces in obj.items():
        try:
            arr = np.asarray(faces, dtype=np.float64)
        except (ValueError, TypeError) as e:
            raise LandmarkError(f"{path}: landmarks of {name!r} are not a numeric array ({e})") from e
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3 or arr.shape[1:] not in ((5, 2), (68, 2)):
            raise LandmarkError(f"{path}: landmarks of {name!r} must be 5 or 68 [x, y] points per face, "
                                f"got shape {arr.shape}")
        out[name] = [a for a in arr]
    return out


def read_landmarks(fmt: str, paths: list[Path], image_root: Path, stats: dict | None = None) -> Faces:
    """Read one or more landmark files; keys become POSIX paths relative to `image_root` where the
    format names images relative to the file (dlib XML), else stay as written."""
    merged: Faces = {}
    for p in paths:
        if not p.is_file():
            raise LandmarkError(f"landmark file {p} not found; fix `landmarks.path` in params/datasets.yaml "
                                "(paths are relative to the image folder)")
        if fmt == "celeba":
            got = read_celeba(p)
        elif fmt == "dlib_xml":
            raw = read_dlib_xml(p, stats)
            got = {}
            for k, v in raw.items():
                full = (p.parent / k).resolve()
                try:
                    key = full.relative_to(image_root.resolve()).as_posix()
                except ValueError:
                    key = k
                got[key] = v
        elif fmt == "json":
            got = read_json(p)
        else:
            raise LandmarkError(f"unknown landmark format {fmt!r} (celeba, dlib_xml, json)")
        for k, v in got.items():
            key = PurePosixPath(k.replace("\\", "/")).as_posix()
            merged.setdefault(key, []).extend(v)
    return merged


def match_to_images(faces: Faces, image_keys: list[str], source: str) -> tuple[dict[str, list[np.ndarray]], list[str]]:
    """Map landmark keys onto found images (exact relative path, else unique basename).
    Returns ({image_key: faces}, [landmark keys naming no found image])."""
    found = set(image_keys)
    by_base: dict[str, list[str]] = {}
    for k in image_keys:
        by_base.setdefault(PurePosixPath(k).name, []).append(k)
    out: dict[str, list[np.ndarray]] = {}
    missing = []
    for k, v in faces.items():
        if k in found:
            target = k
        else:
            cands = by_base.get(PurePosixPath(k).name, [])
            if len(cands) != 1:
                missing.append(k)
                continue
            target = cands[0]
        out.setdefault(target, []).extend(v)
    return out, missing


# ---- detector plugins ---------------------------------------------------------------------------
#: name -> factory; the factory checks availability and returns detect(image) -> list of (68, 2).
_DETECTORS: dict[str, Callable[[], Callable[[Image.Image], list[np.ndarray]]]] = {}


def register_detector(name: str):
    """Decorator registering a detector factory under `name` (usable as `detector: name` in params)."""

    def deco(factory):
        _DETECTORS[name] = factory
        return factory

    return deco


def get_detector(name: str) -> Callable[[Image.Image], list[np.ndarray]]:
    """Build the detector or raise DetectorUnavailable / LandmarkError with what to do."""
    if name not in _DETECTORS:
        raise LandmarkError(f"unknown detector {name!r}; registered: {', '.join(sorted(_DETECTORS))}")
    return _DETECTORS[name]()


@register_detector("dlib")
def _dlib_factory() -> Callable[[Image.Image], list[np.ndarray]]:
    try:
        import dlib  # type: ignore
        import face_recognition_models  # type: ignore
    except ImportError as e:
        raise DetectorUnavailable(
            f"detector 'dlib' needs the optional packages dlib and face_recognition_models ({e}); install "
            "them with `pip install 'fewgan[detect]'` (dlib builds from source: needs cmake and a C++ "
            "compiler), or give a landmark file via `landmarks:` in params/datasets.yaml") from e
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())

    def detect(image: Image.Image) -> list[np.ndarray]:
        arr = np.asarray(image.convert("RGB"))
        faces = []
        for rect in detector(arr, 1):  # upsample once, as FFHQ's landmark script did
            shape = predictor(arr, rect)
            faces.append(np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64))
        return faces

    return detect
