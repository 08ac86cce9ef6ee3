"""Grasp geometry of all masks of a frame at once: C core, or the reference per mask.

:func:`shapes` gives every mask's area, centroid, closing angle and solidity;
:func:`extents` every mask's extents along its closing direction and major
axis. With the compiled extension both are one call into ``es_grasp.c`` over
the frame's masks as one buffer (:attr:`edgeseg.result.Result.packed_masks`,
no copy for decoder output), reading runs of foreground per row instead of
every pixel; without it (or with ``EDGESEG_DECODER=numpy``) they loop over
:mod:`edgeseg.grasp.reference`, which defines the results.

Agreement with the reference (tests/test_grasp_parity.py): area exact;
centroid, angle, solidity and extents within 1e-9 (the C path sums moments in
integers as OpenCV does and evaluates the same expressions without fused
multiply-adds; the hull perimeter is summed in another order).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeseg.grasp import reference
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
        out = _cdecode.shapes(p.bits, p.offsets, p.spans)
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
        p = result.packed_masks.take(rows)
        params = np.column_stack([centroid, closing, half_band])
        return _cdecode.extents(p.bits, p.offsets, p.spans, params)
    return np.array([
        reference.extents(result.masks[i], (float(centroid[k, 0]), float(centroid[k, 1])), float(angle[k]),
                          None if np.isnan(half_band[k]) else float(half_band[k]))
        for k, i in enumerate(rows.tolist())
    ], np.float64).reshape(-1, 4)
