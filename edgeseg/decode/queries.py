"""Candidates of query-based models (Mask2Former), scored as Hugging Face transformers scores them.

``post_process_instance_segmentation`` of ``Mask2FormerImageProcessor``
(transformers 5.x, read in ``image_processing_mask2former.py``) does, per image:

1. class probabilities ``softmax(class_logits)`` over ``C + 1`` columns, the
   last (no object) dropped; the top ``Q`` (query, class) pairs of the
   flattened ``(Q, C)`` probabilities (``Q`` = number of queries);
2. each pair's query mask logits upsampled bilinearly (half-pixel centres,
   ``align_corners=False``) to a fixed 384 x 384 grid, thresholded at 0;
   mask score = mean sigmoid inside that mask (``sum / (count + 1e-6)``);
   score = class probability x mask score;
3. a pair is kept when its score is ``>= threshold`` and its mask (resized
   with ``nearest`` to the target size) is not empty.

The runtime follows steps 1-2 exactly (float32, OpenCV's bilinear resize on
float equals torch's ``interpolate`` up to rounding) with one shortcut that
cannot change the result: the mask score is below 1, so a pair whose class
probability is already below the threshold can never pass and gets no mask
work. Survivors' masks are then rendered once at the original resolution from
the logits (:mod:`edgeseg.decode.maskfirst`), not resized from the 384 grid
with ``nearest``: more exact than the library; README quantifies the
difference. Hand-written: transformers and torch are not runtime
dependencies.
"""

from __future__ import annotations

import cv2
import numpy as np

#: The grid transformers measures mask scores on ("(384, 384) for all models").
SCORE_GRID = (384, 384)


def class_probabilities(logits: np.ndarray) -> np.ndarray:
    """``(Q, C)`` float32 softmax probabilities over ``C + 1`` columns without the last (no object)."""
    x = logits.astype(np.float32)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True))[:, :-1]


def top_pairs(probs: np.ndarray, k: int, threshold: float, *, strict: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The top ``k`` (query, class) pairs by probability, then only those that may still reach ``threshold``.

    Returns:
        ``(query (n,) int64, class (n,) int32, probability (n,) float32)``, best first, ties by flat index.
    """
    flat = probs.ravel()
    order = np.argsort(-flat, kind="stable")[:k]
    p = flat[order]
    thr = np.float32(threshold)
    order = order[p > thr if strict else p >= thr]
    c = probs.shape[1]
    return order // c, (order % c).astype(np.int32), flat[order]


def upsample(logits: np.ndarray, grid: tuple[int, int] = SCORE_GRID) -> np.ndarray:
    """One ``(Hm, Wm)`` float32 logit map bilinearly resized to ``grid`` (half-pixel centres, as torch's
    ``interpolate(align_corners=False)``); one map at a time is OpenCV's fast path (3x a 100-channel resize)."""
    return cv2.resize(np.ascontiguousarray(logits), (grid[1], grid[0]), interpolation=cv2.INTER_LINEAR)


def mask_scores(maps: np.ndarray, grid: tuple[int, int] = SCORE_GRID) -> np.ndarray:
    """Mean sigmoid inside each mask on the library's score grid.

    The sigmoid is evaluated only where the mask is (``u > 0``), where the
    library multiplies it by 1; elsewhere it multiplies it by 0.

    Args:
        maps: ``(n, Hm, Wm)`` float32 mask logits.
        grid: ``(H, W)`` the logits are upsampled to first.

    Returns:
        ``(n,)`` float32 ``sum(sigmoid(u) * (u > 0)) / (count(u > 0) + 1e-6)``.
    """
    out = np.zeros(maps.shape[0], np.float32)
    for i in range(maps.shape[0]):
        up = upsample(maps[i], grid)
        inside = up[up > 0]
        with np.errstate(over="ignore"):
            total = (np.float32(1) / (np.float32(1) + np.exp(-inside))).sum(dtype=np.float32)
        out[i] = total / (np.float32(inside.size) + np.float32(1e-6))
    return out


def _nearest(out_size: int, in_size: int) -> np.ndarray:
    """torch's ``interpolate(mode="nearest")`` source index per output index (float32 scale, floor)."""
    if out_size == in_size:
        return np.arange(out_size)
    if out_size == 2 * in_size:
        return np.arange(out_size) >> 1
    scale = np.float32(in_size) / np.float32(out_size)
    return np.minimum(np.floor(np.arange(out_size, dtype=np.float32) * scale).astype(np.int64), in_size - 1)


def library_masks(maps: np.ndarray, image_size: tuple[int, int], grid: tuple[int, int] = SCORE_GRID) -> tuple:
    """Masks as transformers makes them (``mask_sampling="transformers"``): bilinear to ``grid``, ``> 0``,
    then ``nearest`` to the image, the whole image covering the grid (the processor stretches, never pads).

    Only each mask's region is indexed: the grid cells that are positive, mapped to the pixels whose
    nearest cell lies among them (the nearest index never decreases along an axis).

    Args:
        maps: ``(n, Hm, Wm)`` float32 survivors' mask logits.
        image_size: ``(H, W)`` of the original image.
        grid: The score grid (:data:`SCORE_GRID`).

    Returns:
        Untightened :class:`~edgeseg.result.CroppedMask` per survivor (see
        :func:`edgeseg.decode.reference_maskfirst.tighten_all`).
    """
    from edgeseg.result import CroppedMask

    rows, cols = _nearest(image_size[0], grid[0]), _nearest(image_size[1], grid[1])
    out = []
    for i in range(maps.shape[0]):
        cell = upsample(maps[i], grid) > 0
        r, c = np.flatnonzero(cell.any(axis=1)), np.flatnonzero(cell.any(axis=0))
        y0, y1 = (int(np.searchsorted(rows, r[0])), int(np.searchsorted(rows, r[-1], "right"))) if r.size else (0, 0)
        x0, x1 = (int(np.searchsorted(cols, c[0])), int(np.searchsorted(cols, c[-1], "right"))) if c.size else (0, 0)
        if y1 <= y0 or x1 <= x0:
            out.append(CroppedMask(0, 0, np.zeros((0, 0), bool), image_size))
            continue
        bitmap = np.ascontiguousarray(cell[rows[y0:y1][:, None], cols[x0:x1][None, :]])
        out.append(CroppedMask(x0, y0, bitmap, image_size))
    return tuple(out)
