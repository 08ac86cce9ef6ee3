"""Synthetic scenes with known answers, for tests, demos and hook smoke runs."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from edgeseg.result import CroppedMask, Result


def rectangle_mask(image_size: tuple[int, int], center: tuple[float, float], length: float, width: float,
                   angle: float) -> np.ndarray:
    """A filled rotated rectangle as a full ``(H, W)`` bool mask.

    Args:
        image_size: ``(H, W)``.
        center: ``(x, y)`` in continuous pixel coordinates.
        length: Side along the major axis, pixels.
        width: Side along the minor axis, pixels.
        angle: Major axis direction, radians from +x towards +y.
    """
    h, w = image_size
    ys, xs = np.mgrid[0:h, 0:w]
    dx, dy = xs + 0.5 - center[0], ys + 0.5 - center[1]  # pixel centres
    c, s = math.cos(angle), math.sin(angle)
    along, across = dx * c + dy * s, -dx * s + dy * c
    return (np.abs(along) < length / 2) & (np.abs(across) < width / 2)


def result_from_masks(masks: Sequence[np.ndarray], *, class_ids: Sequence[int] | None = None,
                      scores: Sequence[float] | None = None, class_names: tuple[str, ...] = ("object",),
                      frame_id: int = 0) -> Result:
    """Builds a Result from full-frame bool masks (boxes = tight mask boxes).

    Args:
        masks: ``(H, W)`` bool arrays, one per instance, all the same shape.
        class_ids: Class per instance (default 0).
        scores: Score per instance (default 0.9).
        class_names: Names for the class ids.
        frame_id: Frame counter to store in the Result.
    """
    if not masks:
        raise ValueError("result_from_masks needs at least one mask")
    image_size = masks[0].shape
    boxes, crops = [], []
    for m in masks:
        if m.shape != image_size or m.dtype != np.bool_:
            raise ValueError(f"masks must be bool {image_size}, got {m.dtype} {m.shape}")
        ys, xs = np.nonzero(m)
        if len(xs) == 0:
            raise ValueError("empty mask")
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        boxes.append((x0, y0, x1, y1))
        crops.append(CroppedMask(int(x0), int(y0), np.ascontiguousarray(m[y0:y1, x0:x1]), image_size))
    n = len(masks)
    return Result(
        boxes=np.asarray(boxes, np.float32),
        scores=np.asarray(scores if scores is not None else [0.9] * n, np.float32),
        class_ids=np.asarray(class_ids if class_ids is not None else [0] * n, np.int32),
        masks=tuple(crops),
        class_names=class_names,
        image_size=image_size,
        frame_id=frame_id,
    )
