"""Draws grasps on a BGR image: centre dot, closing line between the open jaws, rank."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from edgeseg.grasp.types import Grasp

GOOD = (0, 220, 0)  # BGR: clear and fits
BAD = (0, 0, 255)  # BGR: collision or too wide
UNKNOWN = (0, 200, 255)  # BGR: no gripper check possible


def draw_grasps(image_bgr: np.ndarray, grasps: Sequence[Grasp], *, copy: bool = True) -> np.ndarray:
    """Draws each grasp's closing line, jaw ticks, centre and rank.

    Args:
        image_bgr: ``(H, W, 3)`` uint8 BGR image.
        grasps: Grasps in rank order (as returned by ``plan_grasps``).
        copy: Draw on a copy (default) instead of in place.

    Returns:
        The image with the grasps drawn (the same array when ``copy=False``).
    """
    if not isinstance(image_bgr, np.ndarray) or image_bgr.dtype != np.uint8 or image_bgr.ndim != 3 \
            or image_bgr.shape[2] != 3:
        got = getattr(image_bgr, "dtype", type(image_bgr).__name__), getattr(image_bgr, "shape", None)
        raise ValueError(f"image_bgr must be a (H, W, 3) uint8 array, got {got}")
    out = image_bgr.copy() if copy else image_bgr
    thick = max(1, round(max(out.shape[:2]) / 400))
    for rank, g in enumerate(grasps):
        ok = g.clear and g.fits
        color = UNKNOWN if g.fits is None else (GOOD if ok else BAD)
        (ax, ay), (bx, by) = g.jaw_points
        p = lambda x, y: (int(round(x - 0.5)), int(round(y - 0.5)))  # noqa: E731 continuous -> pixel index
        cv2.line(out, p(ax, ay), p(bx, by), color, thick, cv2.LINE_AA)
        tick = np.array([-np.sin(g.angle), np.cos(g.angle)]) * max(4.0, 0.15 * g.length_px)
        for jx, jy in ((ax, ay), (bx, by)):
            cv2.line(out, p(jx - tick[0], jy - tick[1]), p(jx + tick[0], jy + tick[1]), color, thick + 1, cv2.LINE_AA)
        cv2.circle(out, p(*g.center), thick + 2, color, -1, cv2.LINE_AA)
        cv2.putText(out, f"#{rank} q{g.quality:.2f}", p(g.center[0] + 6, g.center[1] - 6),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thick, color, thick, cv2.LINE_AA)
    return out
