"""``min_score`` (``--min-score``): a floor on the reported score, for every family and mask form.

solo-nano (``kernel`` family) is the case that needs it: its reported scores
come after maskness and Matrix NMS decay, so instances far below the
candidate threshold reach the result (its overlays show the decayed
duplicates).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from mask_parity import assert_same_results

import edgeseg

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "edgeseg" / "assets" / "samples"
BUNDLES = {"kernel": REPO / "bundles" / "solo-nano", "proto": REPO / "edgeseg" / "assets" / "edgeseg-nano"}


@pytest.fixture(scope="module", params=sorted(BUNDLES))
def seg(request):
    return edgeseg.load(BUNDLES[request.param])


@pytest.fixture(scope="module")
def image():
    return cv2.imread(str(SAMPLES / "scene_03.jpg"))


def test_floor_keeps_exactly_the_instances_at_or_above_it(seg, image):
    everything = seg(image, score_threshold=0.05)
    floor = float(np.median(everything.scores))  # some kept, some dropped
    floored = seg(image, score_threshold=0.05, min_score=floor)
    keep = everything.scores >= np.float32(floor)
    assert 0 < len(floored) < len(everything)
    assert_same_results(floored, everything.select(keep))


def test_kernel_scores_fall_below_the_candidate_threshold_without_a_floor(image):
    seg = edgeseg.load(BUNDLES["kernel"])
    assert seg(image, score_threshold=0.3).scores.min() < 0.3  # why the floor exists
    assert seg(image, score_threshold=0.3, min_score=0.3).scores.min() >= 0.3


def test_floor_in_every_mask_form(seg, image):
    cropped = seg(image, score_threshold=0.05, min_score=0.3)
    assert 0 < len(cropped) < len(seg(image, score_threshold=0.05))  # rows dropped: the frames must move
    rle = seg(image, score_threshold=0.05, min_score=0.3, masks="rle")
    out = np.ones((200, *image.shape[:2]), bool)
    full = seg(image, score_threshold=0.05, min_score=0.3, masks="full", out=out)
    np.testing.assert_array_equal(rle.scores, cropped.scores)
    np.testing.assert_array_equal(full.scores, cropped.scores)
    assert [r["counts"] for r in rle.mask_rles] == [r["counts"] for r in cropped.rles()]
    assert full.mask_frames.base is out or np.shares_memory(full.mask_frames, out)  # still the caller's buffer
    np.testing.assert_array_equal(full.mask_frames, cropped.full_masks())


def test_bad_floor_is_refused(seg, image):
    with pytest.raises(ValueError, match="min_score must be in"):
        seg(image, min_score=1.5)


def test_cli_min_score(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "edgeseg", "run", str(SAMPLES / "scene_00.jpg"), "--bundle",
                           str(BUNDLES["kernel"]), "--min-score", "0.3", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads((out / "scene_00.json").read_text())
    scores = [inst["score"] for inst in record["instances"]]
    assert scores and min(scores) >= 0.3
    bad = subprocess.run([sys.executable, "-m", "edgeseg", "run", str(SAMPLES), "--bundle", str(BUNDLES["kernel"]),
                          "--min-score", "2"], capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "--min-score must be in [0, 1]" in bad.stderr
