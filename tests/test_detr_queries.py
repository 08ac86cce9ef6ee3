"""The ``query`` family's ``sigmoid`` scoring (RF-DETR-Seg) against rfdetr's post-processing, written in torch.

``_rfdetr_post_process`` restates what ``rfdetr.models.postprocess.PostProcess``
(rfdetr 1.11.2) and ``RFDETR.predict``'s filter compute, in torch (rfdetr is
not installed by ``make test``; torch is, by the export extra): sigmoid of
every column, the top ``num_select`` flat pairs (stable, descending), boxes
``cxcywh -> xyxy`` times the image size clamped, masks bilinear to the image
``> 0``, kept when ``score > threshold``. On random RF-DETR-shaped outputs of
several sizes the runtime's decoder must give the same instances in the same
order. Hand cases pin ties, one query with two classes, strictness, and the
float preprocessing's padding.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from edgeseg.families.query import FAMILY, QueryDecoder
from edgeseg.manifest import parse_manifest
from edgeseg.preprocess import LetterboxInfo, Preprocessor

torch = pytest.importorskip("torch")


def _rfdetr_post_process(logits, boxes, masks, threshold, target_size):
    """rfdetr's instances for one image: ``[(label, score, box (4,), mask (H, W) bool)]``, its order."""
    prob = torch.from_numpy(logits).sigmoid().reshape(-1)
    order = torch.argsort(prob, descending=True, stable=True)[: logits.shape[0]]
    query, label, score = order // logits.shape[1], order % logits.shape[1], prob[order]
    b = torch.from_numpy(boxes)[query]
    xyxy = torch.stack([b[:, 0] - 0.5 * b[:, 2], b[:, 1] - 0.5 * b[:, 3], b[:, 0] + 0.5 * b[:, 2],
                        b[:, 1] + 0.5 * b[:, 3]], dim=1)
    h, w = target_size
    scale = torch.tensor([w, h, w, h], dtype=torch.float32)
    xyxy = (xyxy * scale).clamp_min(0.0).clamp(max=scale)
    up = torch.nn.functional.interpolate(torch.from_numpy(masks)[query][:, None], size=target_size, mode="bilinear",
                                         align_corners=False)[:, 0] > 0
    keep = (score > threshold).nonzero(as_tuple=True)[0]
    return [(int(label[k]), float(score[k]), xyxy[k].numpy(), up[k].numpy()) for k in keep]


def _manifest(q: int, columns: int, size: tuple[int, int], *, keep_aspect: bool = False):
    return parse_manifest({
        "schema_version": 1, "name": "m", "family": "query", "format": "onnx", "precision": "fp32", "model": "m.onnx",
        "input": {"name": "input", "shape": [1, 3, *size], "scale": 1 / 255, "mean": [0.485, 0.456, 0.406],
                  "std": [0.229, 0.224, 0.225],
                  "letterbox": {"keep_aspect": keep_aspect, "resample": "torch-bilinear", "pad_value": 0}},
        "outputs": [{"name": "labels", "role": "class_logits", "layout": "BAC", "activation": "sigmoid"},
                    {"name": "masks", "role": "mask_logits", "layout": "NCHW", "sampling": "exact"},
                    {"name": "dets", "role": "boxes", "layout": "BAC", "encoding": "cxcywh", "normalized": True}],
        "classes": [f"c{i}" for i in range(columns)],
        "thresholds": {"score": 0.5, "score_strict": True, "nms": False, "max_detections": q},
    })


def _outputs(rng, q, columns, grid):
    logits = rng.normal(-1.0, 2.0, (q, columns)).astype(np.float32)
    boxes = np.concatenate([rng.uniform(0.1, 0.9, (q, 2)), rng.uniform(0.05, 0.6, (q, 2))], axis=1).astype(np.float32)
    yy, xx = np.mgrid[0 : grid[0], 0 : grid[1]].astype(np.float32)
    masks = np.empty((q, *grid), np.float32)
    for i in range(q):
        cx, cy, rx, ry = rng.uniform(0, grid[1]), rng.uniform(0, grid[0]), *rng.uniform(1.5, grid[0] / 3, 2)
        masks[i] = 6.0 * (1.0 - np.sqrt(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2)) + rng.normal(0, 0.7, grid)
    return logits, boxes, masks


@pytest.mark.parametrize(("q", "columns", "size", "image"), [
    (30, 4, (312, 312), (480, 640)), (100, 91, (384, 384), (720, 1280)), (20, 2, (128, 192), (333, 250))])
@pytest.mark.parametrize("path", ["numpy", "c"])
def test_same_instances_as_rfdetr(q, columns, size, image, path):
    from edgeseg.decode import cpath

    if path == "c" and not cpath.available():
        pytest.skip("C decoder extension not built")
    rng = np.random.default_rng(q + columns)
    grid = (size[0] // 4, size[1] // 4)
    logits, boxes, masks = _outputs(rng, q, columns, grid)
    m = _manifest(q, columns, size)
    raw = {"labels": logits[None], "dets": boxes[None], "masks": masks[None]}
    got = QueryDecoder(m, path)(raw, LetterboxInfo.stretch(image, size), FAMILY.options(m))
    want = _rfdetr_post_process(logits, boxes, masks, 0.5, image)
    assert len(want) >= 5 and [int(c) for c in got.class_ids] == [w[0] for w in want]
    np.testing.assert_allclose(got.scores, [w[1] for w in want], rtol=0, atol=1e-6)
    np.testing.assert_allclose(got.boxes, np.stack([w[2] for w in want]), rtol=0, atol=1e-3)
    for mask, w in zip(got.masks, want, strict=True):
        full = mask.full()
        union = np.logical_or(full, w[3]).sum()
        assert union == 0 or np.logical_and(full, w[3]).sum() / union >= 0.99


def test_sigmoid_hand_cases():
    """Two classes of one query, a tie (lower flat index first), strict threshold, top-Q cap, model boxes."""
    m = _manifest(4, 2, (8, 8))
    x = np.log(np.float32(0.8) / np.float32(0.2))  # sigmoid -> 0.8
    logits = np.array([[-9, x], [x, x], [0.0, -9], [-9, -9]], np.float32)  # query 2's 0.5 is not > 0.5
    boxes = np.array([[0.5, 0.5, 0.5, 0.5], [0.25, 0.25, 0.5, 0.5], [0.5, 0.5, 1, 1], [0.5, 0.5, 1, 1]], np.float32)
    masks = np.full((4, 2, 2), 5.0, np.float32)
    raw = {"labels": logits[None], "dets": boxes[None], "masks": masks[None]}
    lb = LetterboxInfo.stretch((10, 20), (8, 8))
    r = QueryDecoder(m, "numpy")(raw, lb, FAMILY.options(m))
    # pairs with 0.8 in flat order: (0, 1), (1, 0), (1, 1); then (2, 0) at exactly 0.5
    assert r.class_ids.tolist() == [1, 0, 1] and np.allclose(r.scores, 0.8)
    np.testing.assert_allclose(r.boxes, [[5, 2.5, 15, 7.5], [0, 0, 10, 5], [0, 0, 10, 5]], atol=1e-5)
    loose = QueryDecoder(m, "numpy")(raw, lb, dataclasses.replace(FAMILY.options(m), score_strict=False))
    assert loose.class_ids.tolist() == [1, 0, 1, 0] and loose.boxes[3].tolist() == [0, 0, 20, 10]
    capped = dataclasses.replace(FAMILY.options(m), max_detections=1)
    assert QueryDecoder(m, "numpy")(raw, lb, capped).class_ids.tolist() == [1]


def test_float_resize_pads_with_the_normalized_pad_value():
    m = _manifest(3, 2, (64, 64), keep_aspect=True)
    image = np.full((20, 40, 3), 200, np.uint8)
    tensor, lb = Preprocessor(m.input)(image)
    assert tensor.shape == (1, 3, 64, 64) and (lb.pad_top, lb.scale_x) == (16, 1.6)
    mean, std = np.float32([0.485, 0.456, 0.406]), np.float32([0.229, 0.224, 0.225])
    np.testing.assert_allclose(tensor[0, :, 0, 0], (0 - mean) / std, rtol=1e-6)
    np.testing.assert_allclose(tensor[0, :, 32, 32], (np.float32(200) / 255 - mean) / std, rtol=1e-6)
    with pytest.raises(ValueError, match="needs a float32 NCHW input"):
        Preprocessor(dataclasses.replace(m.input, layout="NHWC", shape=(1, 64, 64, 3)))(image)
