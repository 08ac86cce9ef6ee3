"""Draws grasps on a BGR image: centre dot, closing line between the open jaws, rank, and a colour key."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from edgeseg.grasp.types import Grasp
from edgeseg.overlay import Labels

GOOD = (0, 220, 0)  # BGR: clear and fits
BAD = (0, 0, 255)  # BGR: collision or too wide
UNKNOWN = (0, 200, 255)  # BGR: no gripper check possible
#: The legend's line per colour.
KEY = {GOOD: "grasp fits, clear", BAD: "grasp too wide or blocked", UNKNOWN: "grasp unchecked (no metric scale)"}


def draw_grasps(image_bgr: np.ndarray, grasps: Sequence[Grasp], *, copy: bool = True,
                labels: Labels | None = None) -> np.ndarray:
    """Draws each grasp's closing line, jaw ticks, centre and ``#rank q<quality>`` tag, and a key of the colours used.

    Green: fits the gripper and clear of neighbours; red: too wide or
    blocked; yellow: not checked (a metric gripper without a camera scale).

    Args:
        image_bgr: ``(H, W, 3)`` uint8 BGR image.
        grasps: Grasps in rank order (as returned by ``plan_grasps``).
        copy: Draw on a copy (default) instead of in place.
        labels: The image's tag placer (shared with the class tags, so ranks
            do not cover them); a new one when None.

    Returns:
        The image with the grasps drawn (the same array when ``copy=False``).
    """
    if not isinstance(image_bgr, np.ndarray) or image_bgr.dtype != np.uint8 or image_bgr.ndim != 3 \
            or image_bgr.shape[2] != 3:
        got = getattr(image_bgr, "dtype", type(image_bgr).__name__), getattr(image_bgr, "shape", None)
        raise ValueError(f"image_bgr must be a (H, W, 3) uint8 array, got {got}")
    out = image_bgr.copy() if copy else image_bgr
    labels = labels or Labels(out.shape)
    thick = labels.style.line
    used = []
    for rank, g in enumerate(grasps):
        ok = g.clear and g.fits
        color = UNKNOWN if g.fits is None else (GOOD if ok else BAD)
        used += [color] if color not in used else []
        (ax, ay), (bx, by) = g.jaw_points
        p = lambda x, y: (int(round(x - 0.5)), int(round(y - 0.5)))  # noqa: E731 continuous -> pixel index
        cv2.line(out, p(ax, ay), p(bx, by), color, thick, cv2.LINE_AA)
        tick = np.array([-np.sin(g.angle), np.cos(g.angle)]) * max(4.0, 0.15 * g.length_px)
        for jx, jy in ((ax, ay), (bx, by)):
            cv2.line(out, p(jx - tick[0], jy - tick[1]), p(jx + tick[0], jy + tick[1]), color, thick + 1, cv2.LINE_AA)
        cv2.circle(out, p(*g.center), thick + 2, color, -1, cv2.LINE_AA)
        labels.put(out, f"#{rank} q{g.quality:.2f}", (g.center[0] + 2 * thick, g.center[1] + 2 * thick),
                   color, above=False)
    labels.legend(out, [(KEY[c], c) for c in (GOOD, BAD, UNKNOWN) if c in used])
    return out
