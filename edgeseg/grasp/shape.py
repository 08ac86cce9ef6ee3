"""Grasp geometry of all masks of a frame at once: C core, or the reference per mask.

:func:`shapes` gives every mask's area, centroid, closing angle and solidity;
:func:`extents` every mask's extents along its closing direction and major
axis. With the compiled extension both are one call into ``es_grasp.c`` over
the frame's masks as runs of foreground per row
(:attr:`edgeseg.result.PackedMasks.runs`: made once per frame from the
decoder's buffer in one C pass, then read by both instead of every pixel);
without it (or with ``EDGESEG_DECODER=numpy``) they loop over
:mod:`edgeseg.grasp.reference`, which defines the results.

Agreement with the reference (tests/test_grasp_parity.py): area exact;
centroid, angle, solidity and extents within 1e-9 (the C path sums moments in
integers as OpenCV does and evaluates the same expressions without fused
multiply-adds; the hull perimeter is summed in another order).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edgeseg.grasp import reference
from edgeseg.grasp.types import GripperSpec
from edgeseg.result import Result

try:
    from edgeseg._c import _cdecode
except ImportError:  # not built: the reference runs
    _cdecode = None


def use_c() -> bool:
    """Whether the C path runs (the decoder's choice: ``edgeseg.decode.active_path``)."""
    if _cdecode is None:
        return False
    from edgeseg.decode import active_path

    return active_path() == "c"


@dataclass(frozen=True)
class Shapes:
    """Per-mask geometry of a frame, as columns (N = number of masks).

    Attributes:
        area: ``(N,)`` float64 foreground pixels.
        centroid: ``(N, 2)`` float64 ``(x, y)`` in continuous image pixels.
        angle: ``(N,)`` float64 closing direction, radians in (-pi/2, pi/2].
        solidity: ``(N,)`` float64 area / convex hull area, in [0, 1].
    """

    area: np.ndarray
    centroid: np.ndarray
    angle: np.ndarray
    solidity: np.ndarray


def shapes(result: Result, *, c: bool | None = None) -> Shapes:
    """Area, centroid, closing angle and solidity of every mask of ``result``.

    Args:
        result: The frame (cropped masks).
        c: Force the C path (True) or the reference (False); default :func:`use_c`.
    """
    if c is None:
        c = use_c()
    if c:
        p = result.packed_masks
        first_row, row_start, runs = p.runs
        out = _cdecode.shapes(runs, row_start, first_row, p.spans)
    else:
        out = np.array([reference.shape(m) for m in result.masks], np.float64).reshape(-1, 5)
    return Shapes(out[:, 0], out[:, 1:3], out[:, 3], out[:, 4])


def extents(result: Result, rows: np.ndarray, centroid: np.ndarray, angle: np.ndarray, closing: np.ndarray,
            half_band: np.ndarray, *, c: bool | None = None) -> np.ndarray:
    """Extents of the masks at ``rows`` in their grasp frames.

    Args:
        result: The frame.
        rows: ``(M,)`` int indices of the masks.
        centroid: ``(M, 2)`` float64 centroids.
        angle: ``(M,)`` float64 closing angles.
        closing: ``(M, 2)`` float64 ``(cos, sin)`` of ``angle``.
        half_band: ``(M,)`` float64 half pad width in pixels, NaN for none.
        c: As in :func:`shapes`.

    Returns:
        ``(M, 4)`` float64 ``(t_min, t_max, s_min, s_max)`` (see
        :func:`edgeseg.grasp.reference.extents`).
    """
    if c is None:
        c = use_c()
    if c:
        p = result.packed_masks
        first_row, row_start, runs = p.runs
        params = np.column_stack([centroid, closing, half_band])
        return _cdecode.extents(runs, row_start, first_row[rows], p.spans[rows], params)
    return np.array([
        reference.extents(result.masks[i], (float(centroid[k, 0]), float(centroid[k, 1])), float(angle[k]),
                          None if np.isnan(half_band[k]) else float(half_band[k]))
        for k, i in enumerate(rows.tolist())
    ], np.float64).reshape(-1, 4)


def clearances(result: Result, centers: np.ndarray, angles: np.ndarray, closing: np.ndarray, extent: np.ndarray,
               width: np.ndarray, scale: np.ndarray, gripper: GripperSpec, neighbours: list[np.ndarray], *,
               c: bool | None = None) -> np.ndarray:
    """Free fraction of each grasp's finger sweep (see :func:`edgeseg.grasp.reference.clearance`).

    The sweep polygons and their windows are computed for all grasps at once
    with the reference's arithmetic; each is rasterized with the same
    ``cv2.fillConvexPoly`` call into its window of one buffer, and one C call
    (``es_runs_sweeps``) counts every sweep's swept intervals against its
    neighbours' runs.

    Args:
        result: The frame.
        centers: ``(M, 2)`` grasp centres; angles ``(M,)``; closing ``(M, 2)`` its cos, sin.
        extent, width, scale: ``(M,)`` object extent and jaw opening (pixels), pixels per gripper unit.
        gripper: Finger geometry.
        neighbours: Per grasp, the indices of the masks that may reach its sweep.
        c: As in :func:`shapes`.

    Returns:
        ``(M,)`` float64 clearance in [0, 1].
    """
    if c is None:
        c = use_c()
    if not c:
        return np.array([
            reference.clearance((result.masks[j] for j in nb.tolist()), result.image_size, tuple(centers[k].tolist()),
                                float(angles[k]), float(extent[k]), float(width[k]), gripper, float(scale[k]))
            for k, nb in enumerate(neighbours)
        ], np.float64)
    major = np.column_stack([-closing[:, 1], closing[:, 0]])
    half_pad = np.maximum(gripper.finger_width * scale / 2, 0.5)
    outer = width / 2 + gripper.finger_thickness * scale
    inner = extent / 2
    a = np.stack([-inner, -outer, -outer, -inner, inner, outer, outer, inner], axis=1)  # (M, 8): two quads
    b = np.stack([-half_pad, -half_pad, half_pad, half_pad] * 2, axis=1)
    polys = centers[:, None, :] + a[..., None] * closing[:, None, :] + b[..., None] * major[:, None, :]
    h, w = result.image_size
    lo, hi = polys.min(axis=1), polys.max(axis=1)
    x0 = np.maximum(0, np.floor(lo[:, 0]).astype(np.int64) - 1)
    y0 = np.maximum(0, np.floor(lo[:, 1]).astype(np.int64) - 1)
    x1 = np.minimum(w, np.ceil(hi[:, 0]).astype(np.int64) + 1)
    y1 = np.minimum(h, np.ceil(hi[:, 1]).astype(np.int64) + 1)
    origin = np.column_stack([x0 + 0.5, y0 + 0.5])
    pts = np.round((polys - origin[:, None, :]) * 16).astype(np.int32)
    p = result.packed_masks
    out = np.ones(len(centers), np.float64)
    # only masks inside the sweep's window can hit it (as in the reference): one test for all pairs
    owner = np.repeat(np.arange(len(centers)), [len(nb) for nb in neighbours])
    nb_all = np.concatenate(neighbours).astype(np.int64) if len(owner) else np.zeros(0, np.int64)
    sp = p.spans[nb_all].astype(np.int64)
    inside = ((sp[:, 0] < x1[owner]) & (sp[:, 0] + sp[:, 2] > x0[owner]) & (sp[:, 1] < y1[owner])
              & (sp[:, 1] + sp[:, 3] > y0[owner]))
    owner, nb_all = owner[inside], nb_all[inside]
    bounds = np.searchsorted(owner, np.arange(len(centers) + 1))
    # each finger of every sweep that can hit something rasterized into its own window of one buffer
    # (the rest get empty windows), then one C call counts the union of each grasp's two fingers
    todo = (x1 > x0) & (y1 > y0) & (bounds[1:] > bounds[:-1])
    if not todo.any():
        return out
    fingers = polys.reshape(-1, 4, 2)  # (2M, 4, 2): each grasp's two quads
    flo, fhi = fingers.min(axis=1), fingers.max(axis=1)
    fx0 = np.maximum(0, np.floor(flo[:, 0]).astype(np.int64) - 1)
    fy0 = np.maximum(0, np.floor(flo[:, 1]).astype(np.int64) - 1)
    fx1 = np.minimum(w, np.ceil(fhi[:, 0]).astype(np.int64) + 1)
    fy1 = np.minimum(h, np.ceil(fhi[:, 1]).astype(np.int64) + 1)
    on = np.repeat(todo, 2) & (fx1 > fx0) & (fy1 > fy0)
    windows = np.column_stack([fx0, fy0, np.where(on, fx1 - fx0, 0), np.where(on, fy1 - fy0, 0)]).astype(np.int32)
    sizes = windows[:, 2].astype(np.int64) * windows[:, 3]
    offsets = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    buf = np.zeros(int(sizes.sum()), np.uint8)
    # the same points as one window over both quads would get, moved by a whole number of pixels:
    # OpenCV's integer rasterization is the same up to that move
    fpts = pts.reshape(-1, 4, 2) - (np.column_stack([fx0 - np.repeat(x0, 2), fy0 - np.repeat(y0, 2)]) * 16)[:, None, :]
    for f, o, sw, sh in zip(np.flatnonzero(on).tolist(), offsets[on].tolist(), windows[on, 2].tolist(),
                            windows[on, 3].tolist(), strict=True):
        cv2.fillConvexPoly(buf[o : o + sw * sh].reshape(sh, sw), fpts[f], 1, lineType=cv2.LINE_8, shift=4)
    first_row, row_start, runs = p.runs
    counts = _cdecode.sweeps(runs, row_start, first_row, p.spans, buf, offsets, windows, nb_all, bounds)
    area, hit = counts[:, 0], counts[:, 1]
    swept = area > 0
    out[swept] = 1.0 - hit[swept] / area[swept]
    return out
