"""Overlay drawing: masks, boxes and labels on a BGR image (for people to look at).

Everything scales with the image (:class:`Style`: line widths and text sizes
of a 640 px image, grown with the longer side), and every text tag goes
through one :class:`Labels` per image, which keeps tags inside the image and
off each other (class tags, grasp ranks, legends alike). Hand-written on
OpenCV's drawing calls: the placement is a few candidate positions per tag
tried in order, which is all an overlay needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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

FONT = cv2.FONT_HERSHEY_SIMPLEX
#: Longer image side at which sizes are the base sizes; larger images scale up, smaller ones keep them.
BASE_SIDE = 640


@dataclass(frozen=True)
class Style:
    """Drawing sizes for one image size.

    Attributes:
        scale: ``max(1, longer side / BASE_SIDE)``.
    """

    scale: float = 1.0

    @classmethod
    def for_shape(cls, shape: tuple[int, ...]) -> Style:
        """The style of an image of ``shape`` ``(H, W[, C])``."""
        return cls(max(1.0, max(shape[:2]) / BASE_SIDE))

    @property
    def line(self) -> int:
        """Box and grasp line width, pixels (2 at 640 px)."""
        return max(1, round(2 * self.scale))

    @property
    def font_scale(self) -> float:
        """OpenCV font scale of tags (0.5 at 640 px)."""
        return 0.5 * self.scale

    @property
    def text_thickness(self) -> int:
        return max(1, round(self.scale))


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> int:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return max(0, w) * max(0, h)


class Labels:
    """Places text tags on one image: inside its bounds, and off the tags already placed.

    Args:
        shape: The image's ``(H, W[, C])``.
    """

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.height, self.width = int(shape[0]), int(shape[1])
        self.style = Style.for_shape(shape)
        self.placed: list[tuple[int, int, int, int]] = []

    def size(self, text: str) -> tuple[int, int]:
        """``(width, height)`` of a tag of ``text``, background padding included."""
        (tw, th), base = cv2.getTextSize(text, FONT, self.style.font_scale, self.style.text_thickness)
        pad = self.style.text_thickness + 1
        return tw + 2 * pad, th + base + 2 * pad

    def place(self, text: str, anchor: tuple[float, float], *, above: bool = True) -> tuple[int, int, int, int]:
        """Chooses where the tag of ``text`` goes near ``anchor`` (x, y) and reserves it.

        Candidates, in order: above (or below) the anchor, then the other side,
        then stepping down and up by a tag's height; each clamped into the
        image. The first free one wins; if none is free, the least covered.

        Returns:
            ``(x1, y1, x2, y2)`` of the tag.
        """
        w, h = self.size(text)
        x = min(max(0, int(round(anchor[0]))), max(0, self.width - w))
        y0 = int(round(anchor[1]))
        first, second = (y0 - h, y0) if above else (y0, y0 - h)
        ys = [first, second] + [y + s * k * h for k in range(1, 7) for s in (1, -1) for y in (first,)]
        best, best_cover = None, None
        for y in ys:
            y = min(max(0, y), max(0, self.height - h))
            rect = (x, y, x + w, y + h)
            cover = sum(_overlap(rect, r) for r in self.placed)
            if best_cover is None or cover < best_cover:
                best, best_cover = rect, cover
            if cover == 0:
                break
        self.placed.append(best)
        return best

    def put(self, image: np.ndarray, text: str, anchor: tuple[float, float], color, *, above: bool = True) -> None:
        """Draws ``text`` on a filled tag of ``color`` (BGR) near ``anchor``, readable on any colour."""
        x1, y1, x2, y2 = self.place(text, anchor, above=above)
        c = tuple(int(v) for v in color)
        cv2.rectangle(image, (x1, y1), (x2 - 1, y2 - 1), c, -1)
        ink = (0, 0, 0) if 0.114 * c[0] + 0.587 * c[1] + 0.299 * c[2] > 150 else (255, 255, 255)
        pad = self.style.text_thickness + 1
        (_, th), _ = cv2.getTextSize(text, FONT, self.style.font_scale, self.style.text_thickness)
        cv2.putText(image, text, (x1 + pad, y1 + pad + th), FONT, self.style.font_scale, ink,
                    self.style.text_thickness, cv2.LINE_AA)

    def legend(self, image: np.ndarray, entries: Sequence[tuple[str, tuple[int, int, int]]]) -> None:
        """A key in the top-right corner: one line per ``(text, BGR colour)``, a colour swatch before each."""
        if not entries:
            return
        sizes = [self.size(text) for text, _ in entries]
        h = max(s[1] for s in sizes)
        w = max(s[0] for s in sizes) + h
        x1 = max(0, self.width - w - 4)
        y = 4
        panel = (x1, y, x1 + w, y + h * len(entries))
        sub = image[panel[1]:panel[3], panel[0]:panel[2]]
        sub[:] = (sub * 0.35).astype(np.uint8)  # darkened backdrop, still shows what is under it
        for text, color in entries:
            cv2.rectangle(image, (x1 + 3, y + 3), (x1 + h - 3, y + h - 3), tuple(int(v) for v in color), -1)
            (_, th), _ = cv2.getTextSize(text, FONT, self.style.font_scale, self.style.text_thickness)
            cv2.putText(image, text, (x1 + h, y + (h + th) // 2), FONT, self.style.font_scale, (255, 255, 255),
                        self.style.text_thickness, cv2.LINE_AA)
            y += h
        self.placed.append(panel)


class MaskAnnotator:
    """Draws instance masks, boxes and ``name score`` labels (``#id name score`` and a colour per track id when tracked).

    Args:
        alpha: Mask opacity in [0, 1].
    """

    def __init__(self, alpha: float = 0.45) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.alpha = alpha

    def annotate(self, image_bgr: np.ndarray, result: Result, labels: Labels | None = None) -> np.ndarray:
        """Returns a copy of ``image_bgr`` with ``result`` drawn on it.

        Args:
            image_bgr: ``(H, W, 3)`` uint8 BGR image.
            result: What to draw (boxes in ``image_bgr`` pixels).
            labels: The image's tag placer, to share with later drawers (grasps); a new one when None.
        """
        out = image_bgr.copy()
        labels = labels or Labels(out.shape)
        line = labels.style.line
        tags = []
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
            cv2.rectangle(out, (x1, y1), (x2, y2), tuple(int(v) for v in color), line)
            label = f"{inst.class_name} {inst.score:.2f}"
            if inst.track_id is not None and inst.track_id >= 0:
                label = f"#{inst.track_id} {label}"
            tags.append((label, (x1, y1), color))
        for label, anchor, color in tags:  # after every mask, so no mask is painted over a tag
            labels.put(out, label, anchor, color)
        return out
