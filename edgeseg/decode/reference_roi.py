"""Numpy reference for the ``roi`` family's mask paste (Mask R-CNN style).

A ``roi`` model gives, per detection, a box in original-image pixels and a
small ``(M, M)`` map of mask logits (28x28 in torchvision's Mask R-CNN) that
covers the box. Pasting resamples that map at the original resolution, only
at the pixels whose centres lie in the box (:func:`reference.pixel_span`):

* column ``x`` samples the map at ``p = ((x + 0.5) - x1) * (M / (x2 - x1)) - 0.5``
  (float64; ratio 0 when ``x2 <= x1``), clamped to ``[0, M - 1]``; rows the same
  with ``y1, y2``. This is ``grid_sample``/RoIAlign's ``align_corners=False``
  convention, with border clamping instead of zero padding, so the mask never
  leaks outside its box (a box with an infinite or NaN coordinate gets an
  empty span on that axis, :func:`reference.pixel_span`);
* interpolation and threshold are those of the ``proto`` family (step 5 of
  :mod:`edgeseg.decode.reference`): float32 bilinear, mask ``v > 0``
  (probability > 0.5 without the sigmoid).

The C path (``es_masks.c``) matches this bit for bit.

``sampling: "torchvision"`` on the masks output (torchvision's Mask R-CNN)
reproduces ``paste_masks_in_image`` through the same paste:
:func:`torchvision_paste_inputs` turns the logits into probabilities minus 0.5
(bilinear weights sum to one, so ``p > 0.5`` after resampling is ``p - 0.5 > 0``),
adds torchvision's one-cell border of probability 0, and gives each map the
integer box torchvision pastes it into (the box grown by ``(M + 2) / M`` about
its centre, truncated towards zero, one pixel wider than the difference of its
truncated corners). Sampling the ``(M + 2)`` map over that box at
``((x + 0.5) - x0) * (M + 2) / w - 0.5``, clamped, is ``F.interpolate(...,
mode="bilinear", align_corners=False)`` to the box size.
"""

from __future__ import annotations

import numpy as np

from edgeseg.decode.reference import pixel_span, resample_positive, sample_positions
from edgeseg.decode.tensors import QTensor
from edgeseg.result import CroppedMask


def _roi_axis(start: int, stop: int, lo: float, hi: float, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lo, hi = float(lo), float(hi)
    ratio = size / (hi - lo) if hi > lo else 0.0
    x = np.arange(start, stop, dtype=np.float64)
    return sample_positions(((x + 0.5) - lo) * ratio - 0.5, size)


def paste_mask(logits: np.ndarray, box: np.ndarray, image_size: tuple[int, int]) -> CroppedMask:
    """Pastes one ROI's mask logits into its box.

    Args:
        logits: ``(Mh, Mw)`` float32 mask logits covering the box.
        box: ``(4,)`` float32 XYXY in original pixels.
        image_size: ``(H, W)`` of the original image.

    Returns:
        The box-cropped bool mask.
    """
    oh, ow = image_size
    mh, mw = logits.shape
    x_start, x_stop = pixel_span(box[0], box[2], ow)
    y_start, y_stop = pixel_span(box[1], box[3], oh)
    if x_stop <= x_start or y_stop <= y_start:
        return CroppedMask(x_start, y_start, np.zeros((y_stop - y_start, x_stop - x_start), bool), image_size)
    cols = _roi_axis(x_start, x_stop, box[0], box[2], mw)
    rows = _roi_axis(y_start, y_stop, box[1], box[3], mh)
    return CroppedMask(x_start, y_start, resample_positive(logits, rows, cols), image_size)


def paste_masks(logits: QTensor, boxes: np.ndarray, image_size: tuple[int, int]) -> tuple[CroppedMask, ...]:
    """Pastes N ROI masks (numpy reference of the ``roi`` family's mask step).

    Args:
        logits: ``(N, Mh, Mw)`` mask logits, float32 or quantized.
        boxes: ``(N, 4)`` float32 XYXY in original pixels.
        image_size: ``(H, W)`` of the original image.
    """
    maps = logits.dequantize()
    if maps.ndim != 3 or boxes.shape != (maps.shape[0], 4):
        raise ValueError(f"expected logits (N, Mh, Mw) and boxes (N, 4), got {maps.shape} and {boxes.shape}")
    return tuple(paste_mask(maps[i], boxes[i].astype(np.float32), image_size) for i in range(maps.shape[0]))


def torchvision_paste_inputs(logits: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maps and boxes that make :func:`paste_masks` (or the C paste) torchvision's ``paste_masks_in_image``.

    Args:
        logits: ``(N, M, M)`` float32 mask logits (torchvision's per-ROI output before its sigmoid).
        boxes: ``(N, 4)`` float32 XYXY boxes in original pixels (torchvision's output boxes).

    Returns:
        ``(maps, paste_boxes)``: ``(N, M + 2, M + 2)`` float32 ``sigmoid(logits) - 0.5`` with a border
        of ``-0.5``, and ``(N, 4)`` float32 integer-valued XYXY boxes (``x2`` exclusive).
    """
    if logits.ndim != 3 or logits.shape[1] != logits.shape[2] or boxes.shape != (logits.shape[0], 4):
        raise ValueError(f"expected logits (N, M, M) and boxes (N, 4), got {logits.shape} and {boxes.shape}")
    n, m = logits.shape[:2]
    maps = np.full((n, m + 2, m + 2), -0.5, np.float32)
    with np.errstate(over="ignore"):
        maps[:, 1:-1, 1:-1] = np.float32(1.0) / (np.float32(1.0) + np.exp(-logits.astype(np.float32))) - np.float32(0.5)
    b = boxes.astype(np.float32)
    scale = np.float32((m + 2) / m)
    half_w = (b[:, 2] - b[:, 0]) * np.float32(0.5) * scale
    half_h = (b[:, 3] - b[:, 1]) * np.float32(0.5) * scale
    cx = (b[:, 2] + b[:, 0]) * np.float32(0.5)
    cy = (b[:, 3] + b[:, 1]) * np.float32(0.5)
    with np.errstate(invalid="ignore"):
        grown = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1)
    finite = np.isfinite(grown).all(axis=1)
    corners = np.where(finite[:, None], np.trunc(np.nan_to_num(grown)), 0.0)
    paste = corners.astype(np.float32)
    paste[:, 2:] += 1.0  # torchvision pastes columns x1 .. x2 inclusive
    paste[~finite] = np.nan  # an empty span (reference.pixel_span), never a crash
    return maps, paste
