"""Mask forms from Segmenter.__call__: cropped, rle and full agree, on both decoding paths."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import edgeseg
from edgeseg.decode import cpath
from edgeseg.grasp import plan_grasps

mask_api = pytest.importorskip("pycocotools.mask")
SAMPLE = Path(__file__).resolve().parents[1] / "edgeseg/assets/samples/scene_02.jpg"
PATHS = ["c", "numpy"] if cpath.available() else ["numpy"]


@pytest.fixture(scope="module")
def image():
    return cv2.resize(cv2.imread(str(SAMPLE)), (1280, 720))


@pytest.mark.parametrize("path", PATHS)
def test_forms_agree_and_rle_equals_pycocotools(path, image, monkeypatch):
    monkeypatch.setenv("EDGESEG_DECODER", path)
    seg = edgeseg.load()
    cropped = seg(image, score_threshold=0.1)
    assert len(cropped) >= 5
    out = np.ones((seg.decoder.options.max_detections, 720, 1280), bool)  # dirty: every byte must be written
    full = seg(image, score_threshold=0.1, masks="full", out=out)
    rle = seg(image, score_threshold=0.1, masks="rle")
    expected = cropped.full_masks()
    assert np.shares_memory(full.mask_frames, out)
    assert (full.mask_frames == expected).all() and (full.full_masks() == expected).all()
    assert len(rle.mask_rles) == len(cropped) and not rle.masks
    for i, frame in enumerate(expected):
        ref = mask_api.encode(np.asfortranarray(frame.astype(np.uint8)))["counts"].decode()
        assert rle.mask_rles[i]["counts"] == ref == cropped.rles()[i]["counts"] == cropped.masks[i].rle()["counts"]
    assert rle.to_dict()["instances"] == cropped.to_dict()["instances"]
    assert json.loads(cropped.to_json()) == cropped.to_dict()
    assert (rle.full_masks() == expected).all()
    with pytest.raises(ValueError, match="cropped"):
        plan_grasps(rle)


def test_bad_form_arguments_are_named(image):
    seg = edgeseg.load()
    with pytest.raises(ValueError, match="masks must be one of"):
        seg(image, masks="polygons")
    with pytest.raises(ValueError, match="needs out="):
        seg(image, masks="full")
    with pytest.raises(ValueError, match="only for masks='full'"):
        seg(image, out=np.zeros((1, 2, 2), bool))
    with pytest.raises(ValueError, match="out must be"):
        seg(image, masks="full", out=np.zeros((100, 10, 10), bool))
