"""Similarity between tracks and detections, and the assignment between them.

Similarity is box IoU; where a track's and a detection's boxes overlap and
both carry masks, it is the mean of box IoU and mask IoU (the track's last
mask moved by its predicted motion), which tells apart two same-class
objects whose boxes overlap while they cross. Only same-class pairs match.
The assignment is :func:`scipy.optimize.linear_sum_assignment` on
``1 - similarity`` with pairs below the threshold forbidden.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from edgeseg.result import CroppedMask


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of ``(N, 4)`` and ``(M, 4)`` XYXY boxes -> ``(N, M)`` float64."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def mask_iou(a: CroppedMask, shift: tuple[int, int], b: CroppedMask) -> float:
    """IoU of cropped mask ``a`` moved by ``shift`` (dx, dy) pixels and cropped mask ``b``."""
    ax, ay = a.x0 + shift[0], a.y0 + shift[1]
    ah, aw = a.bitmap.shape
    bh, bw = b.bitmap.shape
    x1, y1 = max(ax, b.x0), max(ay, b.y0)
    x2, y2 = min(ax + aw, b.x0 + bw), min(ay + ah, b.y0 + bh)
    inter = 0
    if x2 > x1 and y2 > y1:
        pa = a.bitmap[y1 - ay : y2 - ay, x1 - ax : x2 - ax]
        pb = b.bitmap[y1 - b.y0 : y2 - b.y0, x1 - b.x0 : x2 - b.x0]
        inter = int(np.count_nonzero(pa & pb))
    union = a.area + b.area - inter
    return inter / union if union else 0.0


def similarity(track_boxes: np.ndarray, track_classes: np.ndarray, track_masks: list, shifts: np.ndarray,
               det_boxes: np.ndarray, det_classes: np.ndarray, det_masks: tuple) -> np.ndarray:
    """``(T, D)`` similarity in [0, 1]; 0 across classes.

    Args:
        track_boxes: ``(T, 4)`` predicted XYXY boxes.
        track_classes: ``(T,)`` class ids.
        track_masks: T last masks (or None).
        shifts: ``(T, 2)`` int pixel motion of each track since its last mask.
        det_boxes: ``(D, 4)`` XYXY boxes.
        det_classes: ``(D,)`` class ids.
        det_masks: D masks (or an empty tuple).
    """
    sim = box_iou(track_boxes, det_boxes)
    sim[track_classes[:, None] != det_classes[None, :]] = 0.0
    if det_masks:
        for t, d in zip(*np.nonzero(sim > 0), strict=True):
            if track_masks[t] is not None:
                sim[t, d] = 0.5 * sim[t, d] + 0.5 * mask_iou(track_masks[t], tuple(shifts[t]), det_masks[d])
    return sim


def assign(sim: np.ndarray, threshold: float) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Best one-to-one matching with similarity >= ``threshold``.

    Returns:
        ``(matches [(row, col)], unmatched rows, unmatched cols)``.
    """
    rows, cols = sim.shape
    if not rows or not cols:
        return [], list(range(rows)), list(range(cols))
    cost = np.where(sim >= threshold, 1.0 - sim, 1e6)
    r, c = linear_sum_assignment(cost)
    matches = [(i, j) for i, j in zip(r.tolist(), c.tolist(), strict=True) if cost[i, j] < 1e6]
    mr, mc = {i for i, _ in matches}, {j for _, j in matches}
    return matches, [i for i in range(rows) if i not in mr], [j for j in range(cols) if j not in mc]
