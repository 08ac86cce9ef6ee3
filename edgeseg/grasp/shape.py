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

    One C call (``es_sweep_quads``) builds every grasp's two finger quads
    with the reference's arithmetic and gives each finger its own window;
    each quad is rasterized with the reference's ``cv2.fillConvexPoly`` call
    into its window of one buffer (OpenCV's integer rasterization moves with
    the window by whole pixels), and one more (``es_runs_sweeps``) counts
    every sweep's swept intervals, both fingers together, against its
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
    h, w = result.image_size
    try:
        if not c:
            raise ValueError("the reference runs")
        params = np.column_stack([centers, closing, extent, width, scale])
        windows, pts = _cdecode.sweep_quads(params, float(gripper.finger_width), float(gripper.finger_thickness), h, w)
    except ValueError:  # or a quad corner past 1e7 pixels (absurd scales): the reference then, as it always did
        return np.array([
            reference.clearance((result.masks[j] for j in nb.tolist()), result.image_size, tuple(centers[k].tolist()),
                                float(angles[k]), float(extent[k]), float(width[k]), gripper, float(scale[k]))
            for k, nb in enumerate(neighbours)
        ], np.float64)
    bounds = np.concatenate(([0], np.cumsum([len(nb) for nb in neighbours]))).astype(np.int64)
    nb_all = np.concatenate(neighbours).astype(np.int64) if bounds[-1] else np.zeros(0, np.int64)
    # each finger that can meet a neighbour rasterized into its own window of one buffer (the others
    # get empty windows); the C call keeps per finger only the neighbours whose box meets its window
    on = (windows[:, 2] > 0) & (windows[:, 3] > 0) & np.repeat(bounds[1:] > bounds[:-1], 2)
    out = np.ones(len(centers), np.float64)
    if not on.any():
        return out
    windows[~on, 2:] = 0
    sizes = windows[:, 2].astype(np.int64) * windows[:, 3]
    offsets = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    buf = np.zeros(int(sizes[-1] + offsets[-1]), np.uint8)
    for f, o, sw, sh in zip(np.flatnonzero(on).tolist(), offsets[on].tolist(), windows[on, 2].tolist(),
                            windows[on, 3].tolist(), strict=True):
        cv2.fillConvexPoly(buf[o : o + sw * sh].reshape(sh, sw), pts[f], 1, lineType=cv2.LINE_8, shift=4)
    p = result.packed_masks
    first_row, row_start, runs = p.runs
    counts = _cdecode.sweeps(runs, row_start, first_row, p.spans, buf, offsets, windows, nb_all, bounds)
    area, hit = counts[:, 0], counts[:, 1]
    swept = area > 0
    out[swept] = 1.0 - hit[swept] / area[swept]
    return out
