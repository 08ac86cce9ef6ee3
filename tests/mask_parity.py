"""Helpers the parity tests share: COCO RLE from a fixture -> bitmap, mask IoU, two Results equal."""

from __future__ import annotations

import numpy as np


def decode_rle(rle: dict) -> np.ndarray:
    """``{"size": [h, w], "counts": str}`` (a fixture's compressed COCO RLE) -> ``(h, w)`` bool."""
    from pycocotools import mask as mask_utils

    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two same-shape bool masks (1.0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def assert_same_results(a, b) -> None:
    """Two :class:`~edgeseg.Result` objects hold the same instances: classes, boxes, scores, mask placement and bits."""
    np.testing.assert_array_equal(a.class_ids, b.class_ids)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    np.testing.assert_array_equal(a.scores, b.scores)
    assert len(a.masks) == len(b.masks)
    for x, y in zip(a.masks, b.masks, strict=True):
        assert (x.x0, x.y0) == (y.x0, y.y0)
        np.testing.assert_array_equal(x.bitmap, y.bitmap)
