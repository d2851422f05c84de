"""Image crops: the FFHQ / CelebA-HQ oriented face crop, and the simple `center`, `pad`, `none` modes.

Face crop (REFERENCE.md section 3; Karras et al. 2018 ProGAN CelebA-HQ, Karras et al. 2019 FFHQ
`recreate_aligned_images`):
- from 5 CelebA points (left eye, right eye, nose, left mouth corner, right mouth corner) or 68 dlib
  points (eyes = mean of points 36-41 and 42-47, mouth corners = points 48 and 54), form
  eye_avg, eye_to_eye, mouth_avg, eye_to_mouth;
- x = eye_to_eye - rot90(eye_to_mouth), unit length, times max(2.0 |eye_to_eye|, 1.8 |eye_to_mouth|);
  y = rot90(x); centre c = eye_avg + 0.1 eye_to_mouth; quad = (c-x-y, c-x+y, c+x+y, c+x-y); side = 2|x|;
- shrink the photo (antialiased) when the quad is more than 4x the output, crop with a border of
  max(0.1 side, 3) px, pad outside the photo by reflection with a blur and a fade to the median colour,
  warp the quad to a square of `supersample` x the output size (FFHQ: 4096 for 1024) and resize to
  the output with Lanczos (antialiasing).

Not done (ProGAN's CelebA-HQ pipeline ran them; fewgan skips them on purpose): the JPEG-artifact
removal network and the 4x super-resolution network. Curated faces therefore keep the source's
compression artifacts and resolution limits.

`rot90(v) = (-v_y, v_x)` in image coordinates (x right, y down).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

#: CelebA `list_landmarks_*.txt` column order (5 points).
CELEBA_POINTS = ("lefteye", "righteye", "nose", "leftmouth", "rightmouth")
# FFHQ scale factors: x scale = max(2.0 |eye_to_eye|, 1.8 |eye_to_mouth|), centre shift 0.1 (REFERENCE §3).
EYE_SCALE, MOUTH_SCALE, CENTRE_SHIFT = 2.0, 1.8, 0.1


def _rot90(v: np.ndarray) -> np.ndarray:
    return np.array([-v[1], v[0]], dtype=np.float64)


def face_points(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(left eye, right eye, left mouth corner, right mouth corner) from 5 or 68 landmarks.

    "Left" is the image-left side (CelebA's and dlib's convention)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape == (5, 2):
        return lm[0], lm[1], lm[3], lm[4]
    if lm.shape == (68, 2):
        # iBUG 68-point scheme (FFHQ): eyes 36-41 / 42-47, mouth corners 48 / 54.
        return lm[36:42].mean(0), lm[42:48].mean(0), lm[48], lm[54]
    raise ValueError(f"landmarks must have shape (5, 2) or (68, 2), got {lm.shape}")


def compute_quad(landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    """The oriented crop square (4, 2) (corners: top-left, bottom-left, bottom-right, top-right of the
    output) and its side length in source pixels. Pure function of the landmarks."""
    eye_l, eye_r, mouth_l, mouth_r = face_points(landmarks)
    eye_avg = (eye_l + eye_r) / 2
    eye_to_eye = eye_r - eye_l
    mouth_avg = (mouth_l + mouth_r) / 2
    eye_to_mouth = mouth_avg - eye_avg
    x = eye_to_eye - _rot90(eye_to_mouth)
    norm = np.hypot(*x)
    if not np.isfinite(norm) or norm < 1e-6:
        raise ValueError("degenerate landmarks: eyes and mouth coincide")
    x = x / norm * max(np.hypot(*eye_to_eye) * EYE_SCALE, np.hypot(*eye_to_mouth) * MOUTH_SCALE)
    y = _rot90(x)
    c = eye_avg + eye_to_mouth * CENTRE_SHIFT
    quad = np.stack([c - x - y, c - x + y, c + x + y, c + x - y])
    return quad, float(np.hypot(*x) * 2)


def map_to_output(points: np.ndarray, quad: np.ndarray, resolution: int) -> np.ndarray:
    """Where source points (pixel-index coordinates) land in the aligned output (pixel indices).

    The quad's axes are orthogonal and of equal length, so p = c + a x + b y with a, b in [-1, 1]
    across the crop; the output pixel index is ((a + 1) / 2) R - 0.5 (pixel centres at i + 0.5)."""
    q = np.asarray(quad, dtype=np.float64)
    c = q.mean(0)
    x = (q[3] - q[0]) / 2      # top-right minus top-left = 2x
    y = (q[1] - q[0]) / 2      # bottom-left minus top-left = 2y
    d = np.atleast_2d(np.asarray(points, dtype=np.float64)) - c
    a = d @ x / (x @ x)
    b = d @ y / (y @ y)
    return np.stack([(a + 1) / 2 * resolution - 0.5, (b + 1) / 2 * resolution - 0.5], axis=1)


def _reflect_pad_fade(arr: np.ndarray, pad: tuple[int, int, int, int], side: float) -> np.ndarray:
    """Reflect-pad (left, top, right, bottom) and blend the padding towards a blurred copy and then the
    median colour, more strongly far from the photo (FFHQ's padding)."""
    from scipy.ndimage import gaussian_filter

    pl, pt, pr, pb = pad
    img = np.pad(arr.astype(np.float32), ((pt, pb), (pl, pr), (0, 0)), mode="reflect")
    h, w, _ = img.shape
    yy, xx = np.ogrid[:h, :w]

    def ratio(dist, p):
        return dist / p if p > 0 else np.full_like(dist, np.inf, dtype=np.float32)

    with np.errstate(divide="ignore", invalid="ignore"):
        mx = 1.0 - np.minimum(ratio(xx.astype(np.float32), pl), ratio((w - 1 - xx).astype(np.float32), pr))
        my = 1.0 - np.minimum(ratio(yy.astype(np.float32), pt), ratio((h - 1 - yy).astype(np.float32), pb))
    mask = np.maximum(mx, my)[..., None]
    blur = side * 0.02  # FFHQ: gaussian sigma = 2% of the quad side
    blurred = gaussian_filter(img, [blur, blur, 0])
    img += (blurred - img) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
    img += (np.median(img, axis=(0, 1)) - img) * np.clip(mask, 0.0, 1.0)
    return img


def align_face(image: Image.Image, landmarks: np.ndarray, resolution: int, *, supersample: int = 4,
               padding: bool = True) -> tuple[Image.Image, np.ndarray]:
    """FFHQ-style aligned face crop of `image` (RGB) at `resolution`; returns (crop, quad) with the
    quad in the input image's coordinates. See the module docstring for the steps."""
    if image.mode != "RGB":
        raise ValueError(f"align_face expects an RGB image, got mode {image.mode}")
    quad, side = compute_quad(landmarks)
    q = quad.copy()
    img = image
    # Shrink (FFHQ): when the quad is at least 4x the output, downscale by an integer factor first.
    shrink = int(np.floor(side / resolution * 0.5))
    if shrink > 1:
        size = (max(1, int(round(img.width / shrink))), max(1, int(round(img.height / shrink))))
        img = img.resize(size, Image.LANCZOS)
        q = q / shrink
        side = side / shrink
    # Crop to the quad's bounding box plus a border.
    border = max(int(round(side * 0.1)), 3)  # FFHQ: border = max(0.1 side, 3)
    lo = np.floor(q.min(0)).astype(int)
    hi = np.ceil(q.max(0)).astype(int)
    crop = (max(lo[0] - border, 0), max(lo[1] - border, 0),
            min(hi[0] + border, img.width), min(hi[1] + border, img.height))
    if crop[2] - crop[0] < img.width or crop[3] - crop[1] < img.height:
        img = img.crop(crop)
        q = q - np.array(crop[:2], dtype=np.float64)
        lo = lo - np.array(crop[:2])
        hi = hi - np.array(crop[:2])
    # Pad outside the photo (reflection + blur + fade), only when the quad leaves it noticeably.
    pad = [max(-lo[0] + border, 0), max(-lo[1] + border, 0),
           max(hi[0] - img.width + border, 0), max(hi[1] - img.height + border, 0)]
    if padding and max(pad) > border - 4:
        pad = [int(p) for p in np.maximum(pad, int(np.rint(side * 0.3)))]  # FFHQ: at least 0.3 side
        arr = _reflect_pad_fade(np.asarray(img), tuple(pad), side)
        img = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "RGB")
        q = q + np.array(pad[:2], dtype=np.float64)
    # Warp the quad to a supersampled square, then resize down with antialiasing.
    size = resolution * supersample
    out = img.transform((size, size), Image.QUAD, tuple((q + 0.5).flatten()), Image.BILINEAR)
    if size != resolution:
        out = out.resize((resolution, resolution), Image.LANCZOS)
    return out, quad


def center_crop(image: Image.Image, resolution: int) -> tuple[Image.Image, np.ndarray]:
    """Largest centred square, resized (Lanczos) to `resolution`; returns (image, crop quad)."""
    w, h = image.size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    out = image.crop((left, top, left + s, top + s))
    if s != resolution:
        out = out.resize((resolution, resolution), Image.LANCZOS)
    quad = np.array([[left, top], [left, top + s], [left + s, top + s], [left + s, top]], dtype=np.float64)
    return out, quad


def pad_square(image: Image.Image, resolution: int,
               background: tuple[int, int, int] = (255, 255, 255)) -> tuple[Image.Image, np.ndarray]:
    """Pad to a centred square with `background`, resize (Lanczos); the quad may leave the photo."""
    w, h = image.size
    s = max(w, h)
    left, top = (s - w) // 2, (s - h) // 2
    canvas = Image.new("RGB", (s, s), tuple(background))
    canvas.paste(image, (left, top))
    if s != resolution:
        canvas = canvas.resize((resolution, resolution), Image.LANCZOS)
    quad = np.array([[-left, -top], [-left, s - top], [s - left, s - top], [s - left, -top]], dtype=np.float64)
    return canvas, quad


def resize_only(image: Image.Image, resolution: int) -> tuple[Image.Image, np.ndarray]:
    """`none` mode: the image is already aligned and square; only resize (Lanczos)."""
    w, h = image.size
    if w != h:
        raise ValueError(f"mode 'none' needs square images, got {w}x{h}; use mode 'center' or 'pad'")
    out = image if w == resolution else image.resize((resolution, resolution), Image.LANCZOS)
    quad = np.array([[0, 0], [0, h], [w, h], [w, 0]], dtype=np.float64)
    return out, quad
