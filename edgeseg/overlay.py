"""Overlay drawing: masks, boxes and labels on a BGR image (for people to look at)."""

from __future__ import annotations

import cv2
import numpy as np

from edgeseg.result import Result

#: Distinct BGR colours, cycled by instance.
PALETTE = np.array(
    [
        (56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207),
        (10, 249, 72), (23, 204, 146), (134, 219, 61), (52, 147, 26), (187, 212, 0),
        (168, 153, 44), (255, 194, 0), (147, 69, 52), (255, 115, 100), (236, 24, 0),
        (255, 56, 132), (133, 0, 82), (255, 56, 203), (200, 149, 255), (199, 55, 255),
    ],
    dtype=np.uint8,
)


class MaskAnnotator:
    """Draws instance masks, boxes and ``name score`` labels (``#id name score`` and a colour per track id when tracked).

    Args:
        alpha: Mask opacity in [0, 1].
        thickness: Box line width in pixels.
    """

    def __init__(self, alpha: float = 0.45, thickness: int = 2) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.alpha = alpha
        self.thickness = thickness

    def annotate(self, image_bgr: np.ndarray, result: Result) -> np.ndarray:
        """Returns a copy of ``image_bgr`` with ``result`` drawn on it."""
        out = image_bgr.copy()
        for i, inst in enumerate(result.instances):
            key = inst.track_id if inst.track_id is not None and inst.track_id >= 0 else i
            color = PALETTE[key % len(PALETTE)]
            if inst.mask is not None and inst.mask.bitmap.size:
                m = inst.mask
                h, w = m.bitmap.shape
                region = out[m.y0 : m.y0 + h, m.x0 : m.x0 + w]
                blended = (region * (1 - self.alpha) + color * self.alpha).astype(np.uint8)
                region[m.bitmap] = blended[m.bitmap]
            x1, y1, x2, y2 = (int(round(v)) for v in inst.box)
            c = tuple(int(v) for v in color)
            cv2.rectangle(out, (x1, y1), (x2, y2), c, self.thickness)
            label = f"{inst.class_name} {inst.score:.2f}"
            if inst.track_id is not None and inst.track_id >= 0:
                label = f"#{inst.track_id} {label}"
            (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
            ty = max(y1, th + base)
            cv2.rectangle(out, (x1, ty - th - base), (x1 + tw, ty), c, -1)
            cv2.putText(out, label, (x1, ty - base), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        return out
