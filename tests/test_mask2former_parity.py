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
masks, and its C and numpy paths must agree bit for bit. Every test runs on
both fixtures: the random-weight one and ``tests/fixtures/mask2former-trained/``
(the same architecture trained briefly on the synthetic scenes by
``scripts/train_tiny_mask2former.py``: object-shaped masks).
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
from mask_parity import assert_same_results
from mask_parity import decode_rle as _decode_rle
from mask_parity import iou as _iou

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
SCORE_TOL, MASK_IOU = 1e-4, 0.99
#: Fixture folder -> (mean, min) IoU of ``exact`` sampling against the library's masks, as measured there
#: (README): the random-weight model (mean 0.972, min 0.928) and the same model trained briefly on the
#: synthetic scenes (``mask2former-trained``: small object-shaped masks, mean 0.916, min 0.782).
EXACT_BOUNDS = {"mask2former": (0.95, 0.9), "mask2former-trained": (0.9, 0.75)}
#: Instances each fixture compares at least (67 and 31 as recorded).
MIN_INSTANCES = {"mask2former": 40, "mask2former-trained": 30}


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


@pytest.fixture(scope="module", params=list(EXACT_BOUNDS))
def cli_run(request, tmp_path_factory):
    """A fixture model imported and run on its images through the command line: (bundle, results, predictions,
    fixture name)."""
    fixture = FIXTURES / request.param
    pred = json.loads((fixture / "predictions.json").read_text())
    tmp = tmp_path_factory.mktemp("m2f")
    exe = [sys.executable, "-m", "edgeseg"]
    out = subprocess.run([*exe, "import", str(fixture / pred["model"]), "--out", str(tmp / "bundle")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    images = tmp / "images"
    images.mkdir()
    for name, item in pred["images"].items():
        (images / name).symlink_to(REPO / item["path"])
    out = subprocess.run([*exe, "run", str(images), "--bundle", str(tmp / "bundle"), "--out", str(tmp / "out"),
                          "--score", str(pred["threshold"])], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    results = {name: json.loads((tmp / "out" / f"{Path(name).stem}.json").read_text()) for name in pred["images"]}
    return tmp / "bundle", results, pred, request.param


def test_import_reads_the_library_conventions(cli_run):
    from edgeseg.bundle import load_bundle

    m = load_bundle(cli_run[0]).manifest
    assert m.family == "query" and m.classes == tuple(cli_run[2]["classes"])
    assert m.input.letterbox.keep_aspect is False and m.input.letterbox.resample == "torchvision-bilinear"
    assert m.input.mean == (0.485, 0.456, 0.406) and m.output("mask_logits").sampling == "transformers"
    assert (m.thresholds.score, m.thresholds.nms, m.thresholds.drop_empty_masks) == (0.5, False, True)


def test_same_instances_as_transformers_post_processing(cli_run):
    _, results, pred, fixture = cli_run
    total = 0
    for name, expected in pred["images"].items():
        got = [(i["class_id"], i["score"], _decode_rle(i["mask_rle"])) for i in results[name]["instances"]]
        assert len(got) == len(expected["instances"]), name
        for e, (_, score, mask) in _pairs(expected["instances"], got):
            assert abs(score - e["score"]) <= SCORE_TOL, (name, e["score"], score)
            assert _iou(mask, _decode_rle(e["mask"])) >= MASK_IOU, name
        total += len(got)
    assert total >= MIN_INSTANCES[fixture], f"the fixture should compare dozens of instances, got {total}"


def _api_instances(bundle: Path, pred: dict, sampling: str, path: str, monkeypatch) -> dict:
    import edgeseg

    monkeypatch.setenv("EDGESEG_DECODER", path)
    seg = edgeseg.load(bundle)
    opts = dataclasses.replace(seg.decoder.options, mask_sampling=sampling, score_threshold=pred["threshold"])
    out = {}
    for name, item in pred["images"].items():
        image = cv2.imread(str(REPO / item["path"]))
        tensor, lb = seg.preprocessor(image)
        out[name] = seg.decoder(seg.backend.run(tensor), lb, opts)
    return out


def test_exact_sampling_is_measured_against_the_library_and_c_equals_numpy(cli_run, monkeypatch):
    from edgeseg.decode import cpath

    bundle, _, pred, fixture = cli_run
    ious = []
    numpy_results = _api_instances(bundle, pred, "exact", "numpy", monkeypatch)
    for name, r in numpy_results.items():
        got = [(int(c), float(s), m.full()) for c, s, m in zip(r.class_ids, r.scores, r.masks, strict=True)]
        for e, (_, score, mask) in _pairs(pred["images"][name]["instances"], got):
            assert abs(score - e["score"]) <= SCORE_TOL
            ious.append(_iou(mask, _decode_rle(e["mask"])))
        # every box is its mask's box
        for box, m in zip(r.boxes, r.masks, strict=True):
            assert box.tolist() == [m.x0, m.y0, m.x0 + m.bitmap.shape[1], m.y0 + m.bitmap.shape[0]]
    mean_bound, min_bound = EXACT_BOUNDS[fixture]
    assert np.mean(ious) >= mean_bound and min(ious) >= min_bound, (np.mean(ious), min(ious))
    if not cpath.available():
        pytest.skip("C decoder extension not built")
    for name, c in _api_instances(bundle, pred, "exact", "c", monkeypatch).items():
        assert_same_results(c, numpy_results[name])


def test_mask_forms_and_bad_outputs(cli_run):
    import edgeseg
    from edgeseg.families.query import query_tensors

    bundle, _, pred, _ = cli_run
    seg = edgeseg.load(bundle)
    image = cv2.imread(str(REPO / "edgeseg/assets/samples/scene_00.jpg"))
    cropped = seg(image, score_threshold=pred["threshold"])
    rle = seg(image, score_threshold=pred["threshold"], masks="rle")
    frames = seg(image, score_threshold=pred["threshold"], masks="full", out=np.zeros((30, *image.shape[:2]), bool))
    assert len(cropped) > 0 and list(rle.mask_rles) == cropped.rles()
    for m, f in zip(cropped.masks, frames.mask_frames, strict=True):
        np.testing.assert_array_equal(m.full(), f)
    m = seg.manifest
    q, columns = pred["queries"], len(pred["classes"]) + 1
    with pytest.raises(ValueError, match=rf"must have {columns} channels"):
        query_tensors({"class_queries_logits": np.zeros((1, q, columns + 3), np.float32),
                       "masks_queries_logits": np.zeros((1, q, 64, 64), np.float32)}, m)
    with pytest.raises(ValueError, match=f"{q} queries but mask logits have {q - 1}"):
        query_tensors({"class_queries_logits": np.zeros((1, q, columns), np.float32),
                       "masks_queries_logits": np.zeros((1, q - 1, 64, 64), np.float32)}, m)
    with pytest.raises(ValueError, match="mask_sampling must be one of"):
        dataclasses.replace(seg.decoder.options, mask_sampling="nearest")
