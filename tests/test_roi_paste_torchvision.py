"""The ``roi`` paste with ``sampling: "torchvision"`` against torchvision's own ``paste_masks_in_image``.

Random logits and boxes (inside, across the border, tiny, sub-pixel, empty)
go through torchvision (sigmoid, paste, ``> 0.5``) and through edgeseg's C and
numpy pastes after :func:`~edgeseg.decode.reference_roi.torchvision_paste_inputs`.
The C and numpy pastes must agree bit for bit; against torchvision every mask
must have IoU >= 0.999 and at most a handful of pixels may differ (float32
sampling positions computed in another order can round across 0.5 exactly
at a threshold crossing).
"""

from __future__ import annotations

import numpy as np
import pytest

from edgeseg.decode import cpath, reference_roi
from edgeseg.decode.tensors import QTensor

torch = pytest.importorskip("torch", reason="torchvision comes with the export extra (make test installs it)")
roi_heads = pytest.importorskip("torchvision.models.detection.roi_heads")


def _boxes(rng: np.random.Generator, n: int, h: int, w: int) -> np.ndarray:
    """Boxes as Mask R-CNN outputs them: clipped to the image (torchvision's paste slices with negative
    indices, i.e. wrongly, for a box wholly outside it)."""
    x1 = rng.uniform(-0.2 * w, w, n)
    y1 = rng.uniform(-0.2 * h, h, n)
    bw = np.where(rng.random(n) < 0.2, rng.uniform(0, 3, n), rng.uniform(3, 0.6 * w, n))
    bh = np.where(rng.random(n) < 0.2, rng.uniform(0, 3, n), rng.uniform(3, 0.6 * h, n))
    boxes = np.stack([x1, y1, x1 + bw, y1 + bh], 1)
    return np.clip(boxes, 0, [w, h, w, h]).astype(np.float32)


def _torchvision(logits: np.ndarray, boxes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    probs = torch.from_numpy(logits)[:, None].sigmoid()
    return (roi_heads.paste_masks_in_image(probs, torch.from_numpy(boxes), size)[:, 0] > 0.5).numpy()


@pytest.mark.parametrize("seed,size,m", [(0, (720, 1280), 28), (1, (333, 250), 28), (2, (64, 48), 14)])
def test_paste_matches_torchvision(seed, size, m):
    rng = np.random.default_rng(seed)
    n = 60
    # smooth logit maps crossing zero inside the map, like a mask head's
    yy, xx = np.mgrid[0:m, 0:m].astype(np.float32) / m
    cx, cy, r = rng.uniform(0.2, 0.8, (3, n, 1, 1)).astype(np.float32)
    logits = (8 * (r * 0.6 - np.hypot(xx - cx, yy - cy)) + rng.normal(0, 0.5, (n, m, m))).astype(np.float32)
    boxes = _boxes(rng, n, *size)
    expected = _torchvision(logits, boxes, size)
    maps, paste_boxes = reference_roi.torchvision_paste_inputs(logits, boxes)
    ref = reference_roi.paste_masks(QTensor(maps, None), paste_boxes, size)
    got = cpath.paste_roi(QTensor(maps, None), paste_boxes, size) if cpath.available() else ref
    worst = 1.0
    for i in range(n):
        a, b = got[i].full(), ref[i].full()
        assert np.array_equal(a, b), f"C and numpy pastes differ on mask {i}"
        union = np.logical_or(a, expected[i]).sum()
        diff = int(np.logical_xor(a, expected[i]).sum())
        iou = 1.0 if union == 0 else float(np.logical_and(a, expected[i]).sum() / union)
        worst = min(worst, iou)
        assert diff <= 4 and iou >= 0.999, f"mask {i} box {boxes[i]}: {diff} pixels differ, IoU {iou:.4f}"
    assert sum(int(e.any()) for e in expected) > n // 2  # the case is not vacuous


def test_paste_inputs_reject_bad_shapes_and_survive_nonfinite_boxes():
    with pytest.raises(ValueError, match=r"expected logits \(N, M, M\) and boxes \(N, 4\)"):
        reference_roi.torchvision_paste_inputs(np.zeros((2, 28, 14), np.float32), np.zeros((2, 4), np.float32))
    boxes = np.array([[np.nan, 0, 10, 10], [0, 0, np.inf, 10], [2, 2, 9, 9]], np.float32)
    maps, paste = reference_roi.torchvision_paste_inputs(np.full((3, 28, 28), 5.0, np.float32), boxes)
    masks = reference_roi.paste_masks(QTensor(maps, None), paste, (20, 20))
    assert [m.area for m in masks[:2]] == [0, 0] and masks[2].area > 0
