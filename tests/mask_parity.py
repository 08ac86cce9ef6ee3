"""Helpers the library-parity tests share: COCO RLE from a fixture -> bitmap, mask IoU."""

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
