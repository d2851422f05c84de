"""Landmark file readers: CelebA text, dlib imglab XML, JSON; malformed files name the problem."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fewgan.data.landmarks import (LandmarkError, get_detector, match_to_images, read_celeba, read_dlib_xml,
                                   read_json, read_landmarks)

HEADER = "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y"


def test_celeba_reader(tmp_path):
    p = tmp_path / "list_landmarks_celeba.txt"
    p.write_text(f"2\n{HEADER}\n000001.jpg 165 184 244 176 196 249 194 271 266 260\n"
                 "000002.jpg   140 204 220 204 168 254 146 289 226 289\n")
    got = read_celeba(p)
    np.testing.assert_array_equal(got["000001.jpg"][0], [[165, 184], [244, 176], [196, 249], [194, 271], [266, 260]])
    assert len(got) == 2
    p.write_text(f"3\n{HEADER}\n000001.jpg 1 2 3 4 5 6 7 8 9 10\n")
    with pytest.raises(LandmarkError, match="announces 3 rows but the file has 1"):
        read_celeba(p)
    p.write_text(f"1\n{HEADER}\n000001.jpg 1 2 3\n")
    with pytest.raises(LandmarkError, match=r":3: expected a file name and 10 numbers"):
        read_celeba(p)


def test_dlib_xml_reader_counts_faces(shared_data):
    root = shared_data / "faces-in-the-wild-dlib-voc"
    stats = {}
    faces = read_dlib_xml(root / "testing_with_face_landmarks.xml", stats)
    assert sorted(faces) == ["2008_002470.jpg", "2008_002506.jpg", "2008_004176.jpg", "2008_007676.jpg",
                             "2009_004587.jpg"]
    assert sum(len(v) for v in faces.values()) == 25 and all(f.shape == (68, 2) for v in faces.values() for f in v)
    assert faces["2008_002470.jpg"][0][0].tolist() == [277, 194]  # part 00 of the first box
    boxes_only = read_dlib_xml(root / "testing.xml", stats)  # boxes without parts are counted, not faces
    assert sum(len(v) for v in boxes_only.values()) == 0 and stats["boxes_without_parts"] == 25


def test_dlib_xml_refuses_entities_and_bad_parts(tmp_path):
    p = tmp_path / "x.xml"
    p.write_text('<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaa">]><dataset><images/></dataset>')
    with pytest.raises(LandmarkError, match="DOCTYPE"):
        read_dlib_xml(p)
    p.write_text("<dataset><images><image file='a.jpg'><box top='1' left='1' width='2' height='2'>"
                 "<part name='00' x='1' y='1'/></box></image></images></dataset>")
    with pytest.raises(LandmarkError, match="68 parts"):
        read_dlib_xml(p)


def test_json_reader_and_matching(tmp_path):
    p = tmp_path / "lm.json"
    one = [[10, 10], [20, 10], [15, 15], [12, 20], [18, 20]]
    p.write_text(json.dumps({"images": {"a/x.jpg": one, "y.png": [one, one]}}))
    got = read_json(p)
    assert len(got["a/x.jpg"]) == 1 and len(got["y.png"]) == 2
    matched, missing = match_to_images(got, ["sub/x.jpg", "y.png"], "lm.json")  # unique basename match
    assert set(matched) == {"sub/x.jpg", "y.png"} and missing == []
    matched, missing = match_to_images(got, ["s1/x.jpg", "s2/x.jpg"], "lm.json")  # ambiguous -> missing
    assert missing == ["a/x.jpg", "y.png"]
    p.write_text(json.dumps({"z.jpg": [[1, 2], [3, 4]]}))
    with pytest.raises(LandmarkError, match="5 or 68"):
        read_json(p)
    with pytest.raises(LandmarkError, match="not found"):
        read_landmarks("json", [tmp_path / "nope.json"], tmp_path)


def test_unknown_detector():
    with pytest.raises(LandmarkError, match="unknown detector"):
        get_detector("nope")
