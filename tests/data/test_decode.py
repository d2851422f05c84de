"""Decoding rules: content-decided format, EXIF, mode conversions, broken and hostile files."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from fewgan.data.decode import ImageDecodeError, decode_image


def test_webp_named_jpg_decoded_by_content(shared_data):
    d = decode_image(shared_data / "faces-in-the-wild-deepface" / "img47.jpg")
    assert d.format == "WEBP"
    assert d.image.mode == "RGB" and d.image.size == (1350, 1800)
    assert any("content is WEBP" in n for n in d.notes)


def test_4352_px_photo_decodes(shared_data):
    d = decode_image(shared_data / "faces-in-the-wild-deepface" / "img49.jpg")
    assert d.source_size == (4352, 2903) and d.image.size == (4352, 2903) and d.format == "JPEG"


def test_rgba_composited_on_background(tmp_path):
    arr = np.zeros((4, 4, 4), dtype=np.uint8)
    arr[..., 0] = 255
    arr[..., 3] = 128  # half transparent red
    arr[0, 0] = [0, 0, 255, 0]  # fully transparent blue
    p = tmp_path / "rgba.png"
    Image.fromarray(arr, "RGBA").save(p)
    white = np.asarray(decode_image(p).image)
    # out = a * colour + (1 - a) * background, a = 128/255
    assert tuple(white[1, 1]) == (255, 127, 127)
    assert tuple(white[0, 0]) == (255, 255, 255)
    black = np.asarray(decode_image(p, background=(0, 0, 0)).image)
    assert tuple(black[1, 1]) == (128, 0, 0)
    d = decode_image(p, background=(0, 0, 0))
    assert "RGBA->RGB" in d.conversion


def test_16bit_gray_png(tmp_path):
    arr = np.array([[0, 257, 32768, 65535]], dtype=np.uint16)
    p = tmp_path / "g16.png"
    Image.fromarray(arr).save(p)
    d = decode_image(p)
    out = np.asarray(d.image)
    assert out.shape == (1, 4, 3)
    np.testing.assert_array_equal(out[0, :, 0], [0, 1, 128, 255])
    assert "16-bit" in d.conversion


def test_gray_palette_cmyk(tmp_path):
    Image.new("L", (5, 5), 77).save(tmp_path / "g.png")
    assert tuple(np.asarray(decode_image(tmp_path / "g.png").image)[0, 0]) == (77, 77, 77)
    pal = Image.new("P", (5, 5), 1)
    pal.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    pal.save(tmp_path / "p.png")
    assert tuple(np.asarray(decode_image(tmp_path / "p.png").image)[0, 0]) == (10, 20, 30)
    pal.save(tmp_path / "pt.png", transparency=1)
    assert tuple(np.asarray(decode_image(tmp_path / "pt.png", background=(9, 9, 9)).image)[0, 0]) == (9, 9, 9)
    Image.new("CMYK", (5, 5), (0, 255, 255, 0)).save(tmp_path / "c.jpg", quality=100)
    d = decode_image(tmp_path / "c.jpg")
    r, g, b = np.asarray(d.image)[2, 2].astype(int)
    assert r > 200 and g < 60 and b < 60 and "CMYK" in d.conversion


def test_exif_orientation_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (200, 10, 10))
    exif = Image.Exif()
    exif[274] = 6  # rotate 90 degrees clockwise for display
    p = tmp_path / "o.jpg"
    img.save(p, exif=exif.tobytes())
    d = decode_image(p)
    assert d.image.size == (20, 40) and d.exif_orientation == 6
    assert any("orientation 6" in n for n in d.notes)


def test_truncated_file_named(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    p = tmp_path / "cut.jpg"
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageDecodeError) as e:
        decode_image(p)
    assert e.value.reason == "truncated" and "cut.jpg" in str(e.value)


def test_garbage_and_non_images(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ImageDecodeError) as e:
        decode_image(tmp_path / "bad.png")
    assert e.value.reason == "unreadable" and "bad.png" in str(e.value)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ImageDecodeError) as e:
        decode_image(tmp_path / "notes.txt")
    assert e.value.reason == "not_image"
    Image.new("RGB", (4, 4)).save(tmp_path / "x.gif")
    with pytest.raises(ImageDecodeError) as e:
        decode_image(tmp_path / "x.gif")
    assert e.value.reason == "unsupported_format"


@pytest.mark.parametrize("limit", [5000, 1000])  # above limit (our check) and above 2x limit (PIL's own)
def test_decompression_bomb_is_a_clear_per_file_error(tmp_path, limit):
    p = tmp_path / "big.png"
    Image.new("RGB", (100, 100)).save(p)
    old = Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageDecodeError) as e:
        decode_image(p, max_pixels=limit)
    assert e.value.reason == "decompression_bomb" and "big.png" in str(e.value) and "max_pixels" in str(e.value)
    assert Image.MAX_IMAGE_PIXELS == old  # global limit restored
