"""Candidates of DETR-style query models (RF-DETR-Seg), scored as rfdetr's ``PostProcess`` scores them.

``rfdetr.models.postprocess.PostProcess`` (rfdetr 1.11, read in its source)
does, per image:

1. scores ``sigmoid(class_logits)`` over every column (no "no object"
   column: a low sigmoid everywhere is "nothing"); the top ``num_select``
   (query, class) pairs of the flattened ``(Q, C)`` scores, descending with
   ties broken by the lower flat index (``argsort(stable=True)``); one query
   may fill several pairs with different classes;
2. each pair's box: the query's ``cxcywh`` box (fractions of the input)
   turned into ``xyxy`` and multiplied by the original image's width and
   height, clamped to ``[0, W] x [0, H]``;
3. ``RFDETR.predict`` keeps a pair when ``score > threshold`` (strict);
   its mask is the query's mask logits resized with bilinear
   (``align_corners=False``) straight to the original image and ``> 0``;
   empty masks are kept.

The runtime follows steps 1-2 in float32; the masks of step 3 are the
mask-first path's (:mod:`edgeseg.decode.maskfirst`), which renders the
logits at the original resolution with the same bilinear mapping, only
inside each mask's region. Hand-written: rfdetr and torch are not runtime
dependencies.
"""

from __future__ import annotations

import numpy as np


def sigmoid_scores(logits: np.ndarray) -> np.ndarray:
    """``(Q, C)`` float32 ``1 / (1 + exp(-x))`` of class logits (no column dropped)."""
    x = logits.astype(np.float32)
    with np.errstate(over="ignore"):
        return (np.float32(1) / (np.float32(1) + np.exp(-x))).astype(np.float32)


def boxes_xyxy(boxes_cxcywh: np.ndarray) -> np.ndarray:
    """``(N, 4)`` normalized ``cx, cy, w, h`` -> ``(N, 4)`` float32 ``x0, y0, x1, y1`` (same units), as rfdetr's
    ``box_cxcywh_to_xyxy`` (``cx - 0.5 * w`` ...)."""
    b = boxes_cxcywh.astype(np.float32)
    half_w, half_h = np.float32(0.5) * b[:, 2], np.float32(0.5) * b[:, 3]
    return np.stack([b[:, 0] - half_w, b[:, 1] - half_h, b[:, 0] + half_w, b[:, 1] + half_h], axis=1)
