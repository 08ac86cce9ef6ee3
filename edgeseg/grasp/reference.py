"""Per-mask grasp geometry in numpy/OpenCV: the contract the C path is held to.

These are the planner's original per-instance steps, unchanged in what they
compute: image moments (``cv2.moments``), principal axis, convex-hull
solidity (``cv2.findContours`` + ``cv2.convexHull``), extents of every pixel
centre along the closing direction and the major axis, and the clearance of
the fingers' sweep (``cv2.fillConvexPoly``) against the other masks.
:mod:`edgeseg.grasp.shape` runs the first three for all masks of a frame in
one C call (``es_grasp.c``) and uses these functions when the extension is
not built; the tests compare both on synthetic masks and the sample scenes.

Coordinates are continuous image pixels (pixel ``i`` covers ``[i, i+1)``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import cv2
import numpy as np

from edgeseg.grasp.types import GripperSpec, wrap_half_turn
from edgeseg.result import CroppedMask


def shape(mask: CroppedMask) -> tuple[float, float, float, float, float]:
    """Area, centroid, closing angle and solidity of one mask.

    Returns:
        ``(area, cx, cy, angle, solidity)``: area in pixels (``m00``), the
        centroid in continuous image pixels, the closing direction (across the
        major axis) wrapped to (-pi/2, pi/2], and area / convex hull area where
        the hull runs through pixel centres plus the half-pixel rim. An empty
        mask gives zeros.
    """
    bm = mask.bitmap.view(np.uint8)
    m = cv2.moments(bm, binaryImage=True)
    if m["m00"] == 0:
        return 0.0, 0.0, 0.0, 0.0, 0.0
    cx, cy = mask.x0 + m["m10"] / m["m00"] + 0.5, mask.y0 + m["m01"] / m["m00"] + 0.5
    theta = 0.5 * math.atan2(2 * m["mu11"], m["mu20"] - m["mu02"])  # major axis
    angle = wrap_half_turn(theta + math.pi / 2)
    contours, _ = cv2.findContours(bm, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull = cv2.convexHull(np.vstack(contours))
    # The hull runs through pixel centres; add the half-pixel rim (perimeter / 2 + 1),
    # which makes a filled w x h rectangle's hull exactly w * h.
    hull_area = cv2.contourArea(hull) + cv2.arcLength(hull, True) / 2 + 1
    solidity = float(min(1.0, m["m00"] / hull_area))
    return float(m["m00"]), cx, cy, angle, solidity


def extents(mask: CroppedMask, centroid: tuple[float, float], angle: float, half_band: float | None
            ) -> tuple[float, float, float, float]:
    """Extents of the mask's pixel centres in the grasp frame.

    Args:
        mask: The instance's mask.
        centroid: ``(x, y)`` from :func:`shape`.
        angle: Closing direction from :func:`shape`.
        half_band: Half the finger pad width in pixels; ``s`` is measured only
            over pixels with ``|t| <= half_band`` (all pixels when ``None`` or
            when none lies in the band).

    Returns:
        ``(t_min, t_max, s_min, s_max)`` with ``s`` along the closing
        direction and ``t`` along the major axis, relative to the centroid.
    """
    closing = np.array([math.cos(angle), math.sin(angle)])
    major = np.array([-closing[1], closing[0]])
    ys, xs = np.nonzero(mask.bitmap)
    points = np.column_stack([xs + mask.x0 + 0.5, ys + mask.y0 + 0.5])
    rel = points - np.asarray(centroid)
    s, t = rel @ closing, rel @ major
    if half_band is not None:
        band = np.abs(t) <= half_band
        if band.any():
            s = s[band]
    return float(t.min()), float(t.max()), float(s.min()), float(s.max())


def clearance(masks: Iterable[CroppedMask], image_size: tuple[int, int], center, angle: float, extent: float,
              width: float, gripper: GripperSpec, scale: float) -> float:
    """Free fraction of the two fingers' sweep regions (1.0 = no other mask inside).

    Args:
        masks: The other instances' masks (those far away may be left out:
            only masks inside the sweep's window count).
        image_size: ``(H, W)``.
        center: ``(x, y)`` grasp centre.
        angle: Closing direction, radians.
        extent: Object extent along the closing direction, pixels.
        width: Jaw opening, pixels.
        gripper: Finger geometry.
        scale: Pixels per gripper unit.
    """
    closing = np.array([math.cos(angle), math.sin(angle)])
    major = np.array([-closing[1], closing[0]])
    center = np.asarray(center)
    half_pad = max(gripper.finger_width * scale / 2, 0.5)
    outer = width / 2 + gripper.finger_thickness * scale
    inner = extent / 2
    polys = []
    for sign in (-1.0, 1.0):
        corners = [(sign * inner, -half_pad), (sign * outer, -half_pad), (sign * outer, half_pad), (sign * inner, half_pad)]
        polys.append(np.array([center + a * closing + b * major for a, b in corners]))
    h, w = image_size
    allp = np.vstack(polys)
    x0, y0 = (max(0, int(math.floor(v)) - 1) for v in allp.min(axis=0))
    x1, y1 = min(w, int(math.ceil(allp[:, 0].max())) + 1), min(h, int(math.ceil(allp[:, 1].max())) + 1)
    if x1 <= x0 or y1 <= y0:
        return 1.0
    sweep = np.zeros((y1 - y0, x1 - x0), np.uint8)
    for p in polys:  # continuous coords -> OpenCV pixel-centre coords, 4 fractional bits
        pts = np.round((p - (x0 + 0.5, y0 + 0.5)) * 16).astype(np.int32)
        cv2.fillConvexPoly(sweep, pts, 1, lineType=cv2.LINE_8, shift=4)
    area = int(sweep.sum())
    # Fingers reaching past the image border count as free (nothing seen there).
    if area == 0:
        return 1.0
    others = np.zeros_like(sweep, dtype=bool)
    for m in masks:
        mh, mw = m.bitmap.shape
        ax0, ay0, ax1, ay1 = max(x0, m.x0), max(y0, m.y0), min(x1, m.x0 + mw), min(y1, m.y0 + mh)
        if ax1 > ax0 and ay1 > ay0:
            others[ay0 - y0 : ay1 - y0, ax0 - x0 : ax1 - x0] |= m.bitmap[ay0 - m.y0 : ay1 - m.y0, ax0 - m.x0 : ax1 - m.x0]
    hit = int(np.count_nonzero(others & sweep.astype(bool)))
    return 1.0 - hit / area
