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
