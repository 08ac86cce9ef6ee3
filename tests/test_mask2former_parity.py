"""Mask2Former exported from transformers, imported and run: transformers' own instances (committed fixtures).

``tests/fixtures/mask2former/`` holds a small ``Mask2FormerForUniversalSegmentation``
(random weights, built from a config) exported to ONNX by
``export.transformers_onnx`` and ``predictions.json``: what transformers'
``Mask2FormerImageProcessor`` + ``post_process_instance_segmentation`` made
of that very file on five images of three aspect ratios (made by
``scripts/mask2former_fixtures.py`` in a throwaway venv; transformers never
enters this suite). The file goes through ``edgeseg import`` and ``edgeseg
run`` from the command line; the runtime's instances must equal the
library's: same count and labels, scores within 1e-4, mask IoU >= 0.99. The
``exact`` mask sampling (bilinear from the logits at the original resolution,
deliberately more exact than the library) is measured against the same
masks, and its C and numpy paths must agree bit for bit.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from mask_parity import decode_rle as _decode_rle
from mask_parity import iou as _iou

REPO = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "fixtures" / "mask2former"
PRED = json.loads((FIXTURE / "predictions.json").read_text())
SCORE_TOL, MASK_IOU = 1e-4, 0.99
#: ``exact`` sampling against the library's masks, as measured on this fixture (README: mean 0.972, min 0.928).
EXACT_MEAN_IOU, EXACT_MIN_IOU = 0.95, 0.9


def _pairs(expected: list[dict], got: list[tuple[int, float, np.ndarray]]) -> list[tuple[dict, tuple]]:
    """Each expected instance with the runtime's instance of the same label and the nearest score."""
    free = list(range(len(got)))
    pairs = []
    for e in sorted(expected, key=lambda e: -e["score"]):
        cands = [j for j in free if got[j][0] == e["label_id"]]
        assert cands, f"no runtime instance of label {e['label_id']} left for {e}"
        j = min(cands, key=lambda j: abs(got[j][1] - e["score"]))
        free.remove(j)
        pairs.append((e, got[j]))
    return pairs


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """The fixture model imported and run on its images through the command line."""
    tmp = tmp_path_factory.mktemp("m2f")
    exe = [sys.executable, "-m", "edgeseg"]
    out = subprocess.run([*exe, "import", str(FIXTURE / PRED["model"]), "--out", str(tmp / "bundle")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    images = tmp / "images"
    images.mkdir()
    for name, item in PRED["images"].items():
        (images / name).symlink_to(REPO / item["path"])
    out = subprocess.run([*exe, "run", str(images), "--bundle", str(tmp / "bundle"), "--out", str(tmp / "out"),
                          "--score", str(PRED["threshold"])], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    results = {name: json.loads((tmp / "out" / f"{Path(name).stem}.json").read_text()) for name in PRED["images"]}
    return tmp / "bundle", results


def test_import_reads_the_library_conventions(cli_run):
    from edgeseg.bundle import load_bundle

    m = load_bundle(cli_run[0]).manifest
    assert m.family == "query" and m.classes == tuple(PRED["classes"])
    assert m.input.letterbox.keep_aspect is False and m.input.letterbox.resample == "torchvision-bilinear"
    assert m.input.mean == (0.485, 0.456, 0.406) and m.output("mask_logits").sampling == "transformers"
    assert (m.thresholds.score, m.thresholds.nms, m.thresholds.drop_empty_masks) == (0.5, False, True)


def test_same_instances_as_transformers_post_processing(cli_run):
    _, results = cli_run
    total = 0
    for name, expected in PRED["images"].items():
        got = [(i["class_id"], i["score"], _decode_rle(i["mask_rle"])) for i in results[name]["instances"]]
        assert len(got) == len(expected["instances"]), name
        for e, (_, score, mask) in _pairs(expected["instances"], got):
            assert abs(score - e["score"]) <= SCORE_TOL, (name, e["score"], score)
            assert _iou(mask, _decode_rle(e["mask"])) >= MASK_IOU, name
        total += len(got)
    assert total >= 40, f"the fixture should compare dozens of instances, got {total}"


def _api_instances(bundle: Path, sampling: str, path: str, monkeypatch) -> dict:
    import edgeseg

    monkeypatch.setenv("EDGESEG_DECODER", path)
    seg = edgeseg.load(bundle)
    opts = dataclasses.replace(seg.decoder.options, mask_sampling=sampling, score_threshold=PRED["threshold"])
    out = {}
    for name, item in PRED["images"].items():
        image = cv2.imread(str(REPO / item["path"]))
        tensor, lb = seg.preprocessor(image)
        out[name] = seg.decoder(seg.backend.run(tensor), lb, opts)
    return out


def test_exact_sampling_is_measured_against_the_library_and_c_equals_numpy(cli_run, monkeypatch):
    from edgeseg.decode import cpath

    bundle = cli_run[0]
    ious = []
    numpy_results = _api_instances(bundle, "exact", "numpy", monkeypatch)
    for name, r in numpy_results.items():
        got = [(int(c), float(s), m.full()) for c, s, m in zip(r.class_ids, r.scores, r.masks, strict=True)]
        for e, (_, score, mask) in _pairs(PRED["images"][name]["instances"], got):
            assert abs(score - e["score"]) <= SCORE_TOL
            ious.append(_iou(mask, _decode_rle(e["mask"])))
        # every box is its mask's box
        for box, m in zip(r.boxes, r.masks, strict=True):
            assert box.tolist() == [m.x0, m.y0, m.x0 + m.bitmap.shape[1], m.y0 + m.bitmap.shape[0]]
    assert np.mean(ious) >= EXACT_MEAN_IOU and min(ious) >= EXACT_MIN_IOU, (np.mean(ious), min(ious))
    if not cpath.available():
        pytest.skip("C decoder extension not built")
    for name, c in _api_instances(bundle, "exact", "c", monkeypatch).items():
        n = numpy_results[name]
        np.testing.assert_array_equal(c.boxes, n.boxes)
        np.testing.assert_array_equal(c.scores, n.scores)
        for a, b in zip(c.masks, n.masks, strict=True):
            assert (a.x0, a.y0) == (b.x0, b.y0)
            np.testing.assert_array_equal(a.bitmap, b.bitmap)


def test_mask_forms_and_bad_outputs(cli_run):
    import edgeseg
    from edgeseg.families.query import query_tensors

    seg = edgeseg.load(cli_run[0])
    image = cv2.imread(str(REPO / "edgeseg/assets/samples/scene_00.jpg"))
    cropped = seg(image, score_threshold=PRED["threshold"])
    rle = seg(image, score_threshold=PRED["threshold"], masks="rle")
    frames = seg(image, score_threshold=PRED["threshold"], masks="full", out=np.zeros((30, *image.shape[:2]), bool))
    assert len(cropped) > 0 and list(rle.mask_rles) == cropped.rles()
    for m, f in zip(cropped.masks, frames.mask_frames, strict=True):
        np.testing.assert_array_equal(m.full(), f)
    m = seg.manifest
    with pytest.raises(ValueError, match=r"must have 4 channels"):
        query_tensors({"class_queries_logits": np.zeros((1, 20, 7), np.float32),
                       "masks_queries_logits": np.zeros((1, 20, 64, 64), np.float32)}, m)
    with pytest.raises(ValueError, match="20 queries but mask logits have 19"):
        query_tensors({"class_queries_logits": np.zeros((1, 20, 4), np.float32),
                       "masks_queries_logits": np.zeros((1, 19, 64, 64), np.float32)}, m)
    with pytest.raises(ValueError, match="mask_sampling must be one of"):
        dataclasses.replace(seg.decoder.options, mask_sampling="nearest")
