"""Numpy reference of the mask-first decode: whole-image mask logits -> cropped masks and boxes from them.

Mask-first models (query models such as Mask2Former, SOLOv2-style kernel
models) give each surviving instance a low-resolution map of mask logits over
the whole model input; there is no box to crop to. Per instance ``i`` with map
``L_i`` of ``(Hm, Wm)`` cells:

1. **Region.** The cells with ``L > 0`` (NaN is not) bound the mask: with
   non-negative bilinear weights a pixel can be positive only when one of its
   four neighbouring cells is. Along each axis the pixels whose neighbour
   pair ``(i0, i1)`` meets the positive cells' range ``[c0, c1]`` form one
   contiguous span (``i0`` and ``i1`` never decrease along an axis). No
   positive cell, or no pixel sampling one: the empty region ``(0, 0, 0, 0)``.
2. **Render** the region only, at the original resolution with the letterbox
   undone: pixel centre ``x + 0.5`` samples the map at
   ``p = ((x + 0.5) * scale_x + pad_left) * (Wm / W_in) - 0.5``, clamped to
   ``[0, Wm - 1]`` (float64), bilinear in float32 and ``v > 0`` exactly as
   step 5 of :mod:`edgeseg.decode.reference` (the ``proto`` family's
   sampling with the logit map in place of ``c . P``). The C path renders the
   same region with the same arithmetic (``ES_MODE_MAP`` in ``es_render.c``).
3. **Box from the mask** (:func:`tighten`): the bitmap is cut to its positive
   rows and columns; the box is ``(x_min, y_min, x_max + 1, y_max + 1)``
   float32 in original pixels (pixel ``i`` covers ``[i, i + 1)``). An empty
   mask gets the box ``(0, 0, 0, 0)`` and a 0x0 bitmap at ``(0, 0)``.

The work follows the mask: a region scan over each survivor's small map, then
pixels only inside its region. Hand-written: no library resamples a
letterboxed low-resolution logit map into a cropped bitmap.
"""

from __future__ import annotations

import numpy as np

from edgeseg.decode.reference import _sample_axis, resample_positive
from edgeseg.decode.tensors import QTensor
from edgeseg.preprocess import LetterboxInfo
from edgeseg.result import CroppedMask

Axis = tuple[np.ndarray, np.ndarray, np.ndarray]


def map_axes(lb: LetterboxInfo, map_size: tuple[int, int]) -> tuple[Axis, Axis]:
    """Sample neighbours of every original row and column on a ``(Hm, Wm)`` map (step 2).

    Returns:
        ``(rows, cols)``, each ``(i0, i1, f)`` over all pixels of that axis.
    """
    (oh, ow), (ih, iw), (hm, wm) = lb.orig_size, lb.input_size, map_size
    rows = _sample_axis(0, oh, lb.scale_y, lb.pad_top, hm / ih, hm)
    cols = _sample_axis(0, ow, lb.scale_x, lb.pad_left, wm / iw, wm)
    return rows, cols


def _span(axis: Axis, lo: int, hi: int) -> tuple[int, int]:
    """Pixels whose neighbour pair meets cells ``[lo, hi]``: ``[start, stop)``."""
    i0, i1, _ = axis
    return int(np.searchsorted(i1, lo, "left")), int(np.searchsorted(i0, hi, "right"))


def regions(maps: np.ndarray, lb: LetterboxInfo, axes: tuple[Axis, Axis] | None = None) -> np.ndarray:
    """Pixel regions that can hold each map's mask (step 1).

    Args:
        maps: ``(N, Hm, Wm)`` float32 mask logits.
        lb: The frame's letterbox.
        axes: :func:`map_axes` of this geometry (computed when ``None``).

    Returns:
        ``(N, 4)`` float32 ``(x0, y0, x1, y1)`` whole-pixel regions; ``(0, 0, 0, 0)``
        for a map without a positive cell.
    """
    rows, cols = axes or map_axes(lb, maps.shape[1:])
    out = np.zeros((maps.shape[0], 4), np.float32)
    with np.errstate(invalid="ignore"):
        positive = maps > 0
    any_col, any_row = positive.any(axis=1), positive.any(axis=2)
    for i in range(maps.shape[0]):
        c = np.flatnonzero(any_col[i])
        if c.size == 0:
            continue
        r = np.flatnonzero(any_row[i])
        x0, x1 = _span(cols, int(c[0]), int(c[-1]))
        y0, y1 = _span(rows, int(r[0]), int(r[-1]))
        if x1 > x0 and y1 > y0:  # no pixel may sample a positive cell: an empty region
            out[i] = (x0, y0, x1, y1)
    return out


def render(maps: QTensor, areas: np.ndarray, lb: LetterboxInfo) -> tuple[CroppedMask, ...]:
    """Renders each map inside its region (step 2), untightened.

    Args:
        maps: ``(N, Hm, Wm)`` mask logits, float32 or quantized.
        areas: ``(N, 4)`` float32 whole-pixel regions from :func:`regions`.
        lb: The frame's letterbox.
    """
    logits = maps.dequantize()
    rows, cols = map_axes(lb, logits.shape[1:])
    out = []
    for i, (x0, y0, x1, y1) in enumerate(areas.astype(np.int64).tolist()):
        if x1 <= x0 or y1 <= y0:
            out.append(CroppedMask(0, 0, np.zeros((0, 0), bool), lb.orig_size))
            continue
        r = tuple(a[y0:y1] for a in rows)
        c = tuple(a[x0:x1] for a in cols)
        wy0, wy1, wx0, wx1 = int(r[0][0]), int(r[1][-1]) + 1, int(c[0][0]), int(c[1][-1]) + 1
        window = logits[i, wy0:wy1, wx0:wx1]
        bitmap = resample_positive(window, (r[0] - wy0, r[1] - wy0, r[2]), (c[0] - wx0, c[1] - wx0, c[2]))
        out.append(CroppedMask(x0, y0, bitmap, lb.orig_size))
    return tuple(out)


def tighten(mask: CroppedMask) -> tuple[CroppedMask, np.ndarray]:
    """The mask cut to its positive rows and columns, and its box (step 3).

    Returns:
        ``(mask, box)``: box ``(4,)`` float32 XYXY in original pixels.
    """
    b = mask.bitmap
    cols, rows = np.flatnonzero(b.any(axis=0)), np.flatnonzero(b.any(axis=1))
    if cols.size == 0:
        return CroppedMask(0, 0, np.zeros((0, 0), bool), mask.image_size), np.zeros(4, np.float32)
    c0, c1, r0, r1 = int(cols[0]), int(cols[-1]) + 1, int(rows[0]), int(rows[-1]) + 1
    x0, y0 = mask.x0 + c0, mask.y0 + r0
    bitmap = np.ascontiguousarray(b[r0:r1, c0:c1])
    return CroppedMask(x0, y0, bitmap, mask.image_size), np.array([x0, y0, x0 + c1 - c0, y0 + r1 - r0], np.float32)


def tighten_all(masks: tuple[CroppedMask, ...]) -> tuple[np.ndarray, tuple[CroppedMask, ...]]:
    """:func:`tighten` of every mask: ``((N, 4) float32 boxes, masks)``."""
    pairs = [tighten(m) for m in masks]
    boxes = np.stack([p[1] for p in pairs]) if pairs else np.zeros((0, 4), np.float32)
    return boxes, tuple(p[0] for p in pairs)
