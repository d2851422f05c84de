"""A synthetic, procedurally drawn face "photo" dataset with exact landmarks (the demo dataset).

`generate(out_dir, count, seed)` draws `count` photos (160-320 px per side, gradient + noise
background), each with one cartoon face (hair, skin ellipse, eyebrows, eyes with black pupils, nose,
mouth) rotated by up to +-30 degrees, scaled and placed at random, and writes them as JPEG (3 of 4)
and PNG (1 of 4) with a CelebA-format `list_landmarks_celeba.txt` holding the ground truth (eye
centres = pupil centres, nose tip, mouth corners; rounded to integers as CelebA's file is).
Everything is a function of `seed`. Nothing here resembles a real person; it only exercises the face
alignment path of `curate` without any download.

Pupils are pure black (0, 0, 0) and nothing else in a photo is darker than 60 in every channel, so
tests can find the eyes in an aligned crop by colour.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from fewgan.io import atomic_write_bytes, atomic_write_text

LANDMARK_FILE = "list_landmarks_celeba.txt"
CELEBA_HEADER = ("lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y "
                 "leftmouth_x leftmouth_y rightmouth_x rightmouth_y")
# Canonical face geometry in units of the face half-width F (y down): landmark positions.
_EYE_L, _EYE_R = (-0.38, -0.15), (0.38, -0.15)
_NOSE = (0.0, 0.22)
_MOUTH_L, _MOUTH_R = (-0.30, 0.55), (0.30, 0.55)


def _colour(rng: np.random.Generator, lo: int = 60) -> tuple[int, int, int]:
    """A random colour whose brightest channel is at least 90 and every channel at least `lo`."""
    c = rng.integers(lo, 256, size=3)
    c[rng.integers(0, 3)] = max(int(c.max()), 90)
    return tuple(int(v) for v in c)


def _ellipse(cx: float, cy: float, a: float, b: float, n: int = 48) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + a * np.cos(t), cy + b * np.sin(t)], axis=1)


def draw_face_photo(rng: np.random.Generator) -> tuple[Image.Image, np.ndarray]:
    """One photo and its exact (5, 2) landmarks (float pixel coordinates)."""
    w, h = (int(v) for v in rng.integers(160, 321, size=2))
    # background: linear gradient between two colours plus gaussian noise, kept >= 60 per channel
    c0 = np.array(_colour(rng, 70), dtype=np.float32)
    c1 = np.array(_colour(rng, 70), dtype=np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    yy, xx = np.ogrid[0:h, 0:w]
    t = (np.float32(np.cos(ang) / w) * xx.astype(np.float32) + np.float32(np.sin(ang) / h) * yy.astype(np.float32))
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    bg = c0 + (c1 - c0) * t[..., None] + rng.standard_normal(size=(h, w, 3), dtype=np.float32) * np.float32(8)
    img = Image.fromarray(np.clip(bg, 60, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)

    f = rng.uniform(0.18, 0.30) * min(w, h)          # face half-width in pixels
    theta = np.deg2rad(rng.uniform(-30, 30))         # rotation in the image plane
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    margin = 1.35 * f
    centre = np.array([rng.uniform(margin, w - margin), rng.uniform(margin, h - margin)])

    def tf(pts) -> np.ndarray:
        return (np.atleast_2d(np.asarray(pts, dtype=np.float64)) * f) @ rot.T + centre

    def poly(pts, colour):
        draw.polygon([tuple(p) for p in tf(pts)], fill=colour)

    skin = _colour(rng, 90)
    hair = _colour(rng, 60)
    poly(_ellipse(0, -0.25, 1.15, 1.05), hair)                        # hair behind the head
    poly(_ellipse(0, 0.1, 1.0, 1.25), skin)                          # face
    brow = _colour(rng, 60)
    for ex, ey in (_EYE_L, _EYE_R):
        poly(_ellipse(ex, ey - 0.17, 0.17, 0.04), brow)               # eyebrow
        poly(_ellipse(ex, ey, 0.17, 0.09), (250, 250, 250))           # sclera
        poly(_ellipse(ex, ey, 0.065, 0.065, 24), (0, 0, 0))           # pupil, centred on the landmark
    nose = _colour(rng, 70)
    poly([(_NOSE[0], -0.05), (_NOSE[0] - 0.09, _NOSE[1]), (_NOSE[0] + 0.09, _NOSE[1])], nose)
    lips = (int(rng.integers(150, 230)), int(rng.integers(60, 100)), int(rng.integers(60, 110)))
    tt = np.linspace(0, np.pi, 16)
    upper = np.stack([0.30 * np.cos(tt), 0.55 - 0.03 * np.sin(tt)], axis=1)
    lower = np.stack([0.30 * np.cos(tt[::-1]), 0.55 + 0.10 * np.sin(tt[::-1])], axis=1)
    poly(np.concatenate([upper, lower]), lips)
    lm = tf([_EYE_L, _EYE_R, _NOSE, _MOUTH_L, _MOUTH_R])
    return img, lm


def generate(out_dir: str | Path, count: int, seed: int) -> dict:
    """Write `count` photos and `list_landmarks_celeba.txt` into `out_dir`; return
    {"files": [names], "landmarks": {name: (5, 2) float array (exact)}, "seed": seed}."""
    if count < 1:
        raise ValueError(f"synthetic dataset needs count >= 1, got {count}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5EED_FACE]))
    rows, files, exact = [], [], {}
    for i in range(count):
        img, lm = draw_face_photo(rng)
        fmt = "png" if i % 4 == 3 else "jpg"
        name = f"face_{i:05d}.{fmt}"
        buf = io.BytesIO()
        if fmt == "jpg":
            img.save(buf, "JPEG", quality=92)
        else:
            img.save(buf, "PNG")
        atomic_write_bytes(out / name, buf.getvalue())
        files.append(name)
        exact[name] = lm
        rows.append(name + " " + " ".join(str(int(round(v))) for v in lm.flatten()))
    atomic_write_text(out / LANDMARK_FILE, f"{count}\n{CELEBA_HEADER}\n" + "\n".join(rows) + "\n")
    return {"files": files, "landmarks": exact, "seed": int(seed)}
