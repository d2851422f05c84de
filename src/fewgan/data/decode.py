"""Decode one image file into an 8-bit RGB PIL image, by documented rules.

The format is decided by the file's content (Pillow's identification), never by its name: a WEBP file
called `.jpg` is decoded as WEBP and the mismatch is reported. Accepted formats: JPEG (and MPO, the
multi-picture JPEG variant cameras write; its first frame is used), PNG, WEBP, BMP, TIFF.

Conversion rules, applied in this order:
1. EXIF orientation (tag 274) is applied (`ImageOps.exif_transpose`): images, and landmark
   coordinates given for them, are in the orientation a viewer shows.
2. Multi-frame files (animated WEBP/PNG, multi-page TIFF, MPO) use their first frame only.
3. Mode conversion to RGB:
   - `1`, `L`: gray replicated to R, G, B.
   - 16-bit gray (`I;16`, `I;16B`, `I;16L`, `I` with values <= 65535): value / 257, rounded
     (maps 0..65535 onto 0..255 exactly at both ends), then replicated.
   - 32-bit float gray (`F`): values in [0, 1] are scaled by 255; otherwise clipped to [0, 255].
   - `P` (palette): expanded through its palette; a palette with transparency becomes RGBA (rule below).
   - `LA`, `La`, `PA`, `RGBA`, `RGBa`: alpha-composited over the configured `background` colour
     (params `background`, default white), i.e. out = a * colour + (1 - a) * background.
   - `CMYK`, `YCbCr`, `LAB`, `HSV`: Pillow's built-in conversion (ICC profiles are not applied).
   - Embedded ICC profiles of RGB images are ignored (pixel values taken as sRGB).
Every rule that changed something is named in the returned `conversion` string (the manifest keeps it).

Errors are `ImageDecodeError` with a short machine-readable `reason` (`not_image`, `unreadable`,
`truncated`, `decompression_bomb`, `unsupported_format`) and a message naming the file.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: Formats accepted (Pillow format names, decided from file content).
ACCEPTED_FORMATS = {"JPEG", "MPO", "PNG", "WEBP", "BMP", "TIFF"}
#: Name suffixes that look like images: an undecodable file with one of these is "unreadable", any
#: other undecodable file is "not_image" (e.g. a README or a landmark file beside the images).
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp", ".dib", ".tif", ".tiff",
                  ".gif", ".heic", ".avif", ".jp2", ".mpo"}


class ImageDecodeError(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass
class Decoded:
    image: Image.Image            # 8-bit RGB, EXIF orientation applied
    format: str                   # as identified from content
    source_mode: str
    source_size: tuple[int, int]  # (width, height) as stored, before orientation
    exif_orientation: int
    conversion: str               # "" when nothing was converted
    notes: list[str] = field(default_factory=list)


def _composite(rgba: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    arr = np.asarray(rgba.convert("RGBA"), dtype=np.float32)
    alpha = arr[..., 3:4] / 255.0
    bg = np.asarray(background, dtype=np.float32).reshape(1, 1, 3)
    out = arr[..., :3] * alpha + bg * (1.0 - alpha)
    return Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8), "RGB")


def to_rgb(img: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> tuple[Image.Image, str]:
    """Convert any Pillow mode to 8-bit RGB by the module's rules; returns (image, conversion note)."""
    mode = img.mode
    if mode == "RGB":
        return img, ""
    if mode in ("1", "L"):
        return img.convert("RGB"), f"{mode}->RGB (gray replicated)"
    if mode.startswith("I;16") or mode == "I":
        arr = np.asarray(img, dtype=np.float64)
        if mode == "I" and (arr.min() < 0 or arr.max() > 65535):
            raise ImageDecodeError("unsupported_format",
                                   f"32-bit integer image with values outside 0..65535 ({arr.min()}..{arr.max()})")
        g = np.clip(np.rint(arr / 257.0), 0, 255).astype(np.uint8)
        return Image.fromarray(g, "L").convert("RGB"), f"{mode}->RGB (16-bit gray / 257)"
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        if np.nanmax(arr) <= 1.0 and np.nanmin(arr) >= 0.0:
            g, rule = arr * 255.0, "x255"
        else:
            g, rule = arr, "clipped to 0..255"
        g = np.clip(np.rint(np.nan_to_num(g)), 0, 255).astype(np.uint8)
        return Image.fromarray(g, "L").convert("RGB"), f"F->RGB (float gray {rule})"
    if mode == "P":
        if "transparency" in img.info:
            return _composite(img.convert("RGBA"), background), f"P+transparency->RGB over {list(background)}"
        return img.convert("RGB"), "P->RGB (palette)"
    if mode in ("LA", "La", "PA", "RGBA", "RGBa"):
        src = img.convert("RGBA") if mode != "RGBA" else img
        return _composite(src, background), f"{mode}->RGB (alpha over {list(background)})"
    if mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        return img.convert("RGB"), f"{mode}->RGB (Pillow conversion, no ICC)"
    try:
        return img.convert("RGB"), f"{mode}->RGB (Pillow conversion)"
    except (ValueError, OSError) as e:
        raise ImageDecodeError("unsupported_format", f"cannot convert mode {mode} to RGB: {e}") from e


def decode_image(path: str | Path, *, background: tuple[int, int, int] = (255, 255, 255),
                 max_pixels: int = 89_478_485, display_name: str | None = None) -> Decoded:
    """Open, fully decode and convert one image file (see module docstring for the rules)."""
    name = display_name or str(path)
    path = Path(path)
    old_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels  # PIL warns above this and raises above twice this
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                img = Image.open(path)
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
                raise ImageDecodeError(
                    "decompression_bomb",
                    f"{name}: refused as a possible decompression bomb ({e}); if the image is genuine, "
                    f"raise `max_pixels` (now {max_pixels}) for this dataset in params/datasets.yaml") from e
            except UnidentifiedImageError as e:
                reason = "unreadable" if path.suffix.lower() in IMAGE_SUFFIXES else "not_image"
                raise ImageDecodeError(reason, f"{name}: not a decodable image ({e})") from e
            except OSError as e:
                raise ImageDecodeError("unreadable", f"{name}: cannot open ({e})") from e
            with img:
                fmt = img.format or "?"
                if fmt not in ACCEPTED_FORMATS:
                    raise ImageDecodeError("unsupported_format",
                                           f"{name}: format {fmt} is not accepted "
                                           f"(accepted: {', '.join(sorted(ACCEPTED_FORMATS))}); convert it first")
                w, h = img.size
                if w * h > max_pixels:
                    raise ImageDecodeError(
                        "decompression_bomb",
                        f"{name}: {w}x{h} = {w * h} pixels exceeds max_pixels={max_pixels} (possible "
                        "decompression bomb); if the image is genuine, raise `max_pixels` in params/datasets.yaml")
                notes = []
                n_frames = getattr(img, "n_frames", 1)
                if n_frames > 1:
                    img.seek(0)
                    notes.append(f"{n_frames} frames, first used")
                try:
                    img.load()
                except (OSError, SyntaxError, ValueError) as e:
                    msg = str(e)
                    reason = "truncated" if "truncat" in msg.lower() else "unreadable"
                    raise ImageDecodeError(reason, f"{name}: decoding failed ({msg}); the file is "
                                                   "truncated or corrupt: re-download or remove it") from e
                try:
                    orientation = int(img.getexif().get(274, 1) or 1)
                except Exception:  # malformed EXIF must not kill a readable image
                    orientation = 1
                    notes.append("EXIF unreadable, orientation not applied")
                src_mode = img.mode
                oriented = ImageOps.exif_transpose(img) if orientation not in (0, 1) else img
                if orientation not in (0, 1):
                    notes.append(f"EXIF orientation {orientation} applied")
                rgb, conversion = to_rgb(oriented, tuple(background))
                rgb = rgb.copy() if rgb is img else rgb
                rgb.load()
    finally:
        Image.MAX_IMAGE_PIXELS = old_limit
    suffix = path.suffix.lower()
    expected = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".bmp": "BMP",
                ".tif": "TIFF", ".tiff": "TIFF"}.get(suffix)
    if expected and expected != fmt and not (expected == "JPEG" and fmt == "MPO"):
        notes.append(f"name says {suffix} but content is {fmt}")
    return Decoded(rgb, fmt, src_mode, (w, h), orientation, conversion, notes)
