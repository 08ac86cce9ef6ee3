"""Seeded synthetic tracking sequences: ground-truth tracks and the detections a segmenter would give.

Five scenarios, each a function in :data:`SCENARIOS` (seed -> :class:`Sequence`):

* ``conveyor``: objects of several classes enter on the left in lanes, move
  right at a steady speed with a little jitter, leave on the right.
* ``crossing``: pairs of same-class objects meet head-on in one lane and
  pass through each other (their boxes overlap for several frames).
* ``occlusion``: objects pass behind an opaque band and are fully hidden for
  several frames (no ground truth, no detection), then come out again.
* ``enter_leave``: objects appear and vanish at random times and places,
  moving in random directions.
* ``brightness``: a conveyor whose lighting drops for a stretch of frames:
  the detector still sees the objects but with low confidence (scores 0.15 to 0.45).

Detections come from the ground truth, the way a real segmenter errs: box
corners with Gaussian noise, masks (ellipses filling the true box), missed
detections (``dropout``), occasional low-score false positives. This keeps
the comparison between trackers fair (the same detections for all) and fast
(no model in the loop). Used by ``benchmarks/track_bench.py`` and the tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edgeseg.result import CroppedMask, Result

CLASS_NAMES = ("box", "can", "bottle")


@dataclass(frozen=True)
class Sequence:
    """One sequence.

    Attributes:
        name: Scenario name.
        image_size: ``(H, W)``.
        gt: Per frame ``(ids (K,) int, boxes (K, 4) float XYXY, class ids (K,) int)`` of visible objects.
        detections: Per frame, the detector's Result (boxes, scores, class ids, cropped masks).
    """

    name: str
    image_size: tuple[int, int]
    gt: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
    detections: list[Result]


@dataclass
class _Obj:
    oid: int
    cls: int
    x: float
    y: float
    w: float
    h: float
    vx: float
    vy: float
    start: int
    end: int


def _ellipse(w: int, h: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return ((xx + 0.5 - w / 2) / (w / 2)) ** 2 + ((yy + 0.5 - h / 2) / (h / 2)) ** 2 <= 1.0


def _render(name: str, objs: list[_Obj], frames: int, size: tuple[int, int], rng: np.random.Generator, *,
            dropout: float = 0.05, noise: float = 1.5, hidden: Callable[[float, float], bool] | None = None,
            dim: tuple[int, int] | None = None, false_pos: float = 0.1) -> Sequence:
    H, W = size
    gt, dets = [], []
    for f in range(frames):
        ids, boxes, classes = [], [], []
        d_boxes, d_scores, d_cls, d_masks = [], [], [], []
        for o in objs:
            if not o.start <= f < o.end:
                continue
            t = f - o.start
            cx, cy = o.x + o.vx * t + rng.normal(0, 0.3), o.y + o.vy * t + rng.normal(0, 0.3)
            x1, y1 = max(cx - o.w / 2, 0.0), max(cy - o.h / 2, 0.0)
            x2, y2 = min(cx + o.w / 2, W), min(cy + o.h / 2, H)
            if x2 - x1 < 4 or y2 - y1 < 4 or (hidden is not None and hidden(cx, cy)):
                continue
            ids.append(o.oid)
            boxes.append((x1, y1, x2, y2))
            classes.append(o.cls)
            if rng.random() < dropout:
                continue
            b = np.array([x1, y1, x2, y2]) + rng.normal(0, noise, 4)
            b = np.clip(b, 0, [W, H, W, H])
            if b[2] - b[0] < 2 or b[3] - b[1] < 2:
                continue
            low = dim is not None and dim[0] <= f < dim[1]
            d_boxes.append(b)
            d_scores.append(rng.uniform(0.15, 0.45) if low else rng.uniform(0.6, 0.95))
            d_cls.append(o.cls)
            d_masks.append(_mask(b, (H, W)))
        if rng.random() < false_pos:
            w, h = rng.uniform(10, 30, 2)
            x, y = rng.uniform(0, W - w), rng.uniform(0, H - h)
            b = np.array([x, y, x + w, y + h])
            d_boxes.append(b)
            d_scores.append(rng.uniform(0.2, 0.5))
            d_cls.append(int(rng.integers(len(CLASS_NAMES))))
            d_masks.append(_mask(b, (H, W)))
        gt.append((np.array(ids, np.int64), np.array(boxes, np.float64).reshape(-1, 4), np.array(classes, np.int64)))
        order = np.argsort(-np.array(d_scores)) if d_scores else np.zeros(0, np.int64)
        dets.append(Result(
            boxes=np.array(d_boxes, np.float32).reshape(-1, 4)[order],
            scores=np.array(d_scores, np.float32)[order],
            class_ids=np.array(d_cls, np.int32)[order],
            masks=tuple(d_masks[i] for i in order),
            class_names=CLASS_NAMES, image_size=(H, W), frame_id=f,
        ))
    return Sequence(name, (H, W), gt, dets)


def _mask(b: np.ndarray, size: tuple[int, int]) -> CroppedMask:
    x0, y0 = int(np.floor(b[0])), int(np.floor(b[1]))
    x1, y1 = min(int(np.ceil(b[2])), size[1]), min(int(np.ceil(b[3])), size[0])
    return CroppedMask(x0, y0, np.ascontiguousarray(_ellipse(max(x1 - x0, 1), max(y1 - y0, 1))), size)


def conveyor(seed: int, frames: int = 150, objects: int = 24, size: tuple[int, int] = (240, 320),
             lanes: int = 4, dim: tuple[int, int] | None = None) -> Sequence:
    """Objects entering left in ``lanes`` lanes, moving right, leaving right."""
    rng = np.random.default_rng(seed)
    H, W = size
    objs = []
    for i in range(objects):
        speed = rng.uniform(2.5, 4.0)
        w, h = rng.uniform(18, 30, 2)
        lane = i % lanes
        start = int(i // lanes * (frames / (objects / lanes + 1)) + rng.integers(0, 6))
        objs.append(_Obj(i + 1, int(rng.integers(len(CLASS_NAMES))), -w / 2 + 2, (lane + 0.5) * H / lanes,
                         w, h, speed, rng.normal(0, 0.05), start, frames))
    return _render("conveyor" if dim is None else "brightness", objs, frames, size, rng, dim=dim)


def crossing(seed: int, frames: int = 120, pairs: int = 4, size: tuple[int, int] = (240, 320)) -> Sequence:
    """Same-class pairs meeting head-on in one lane."""
    rng = np.random.default_rng(seed)
    H, W = size
    objs = []
    for p in range(pairs):
        y = (p + 0.5) * H / pairs
        cls = int(rng.integers(len(CLASS_NAMES)))
        start = int(rng.integers(0, frames // 4))
        speed = rng.uniform(2.0, 3.5)
        w, h = rng.uniform(20, 28, 2)
        objs.append(_Obj(2 * p + 1, cls, 10, y, w, h, speed, 0.0, start, frames))
        objs.append(_Obj(2 * p + 2, cls, W - 10, y + rng.normal(0, 2), w, h, -speed, 0.0, start, frames))
    return _render("crossing", objs, frames, size, rng)


def occlusion(seed: int, frames: int = 150, objects: int = 12, size: tuple[int, int] = (240, 320)) -> Sequence:
    """A conveyor with an opaque band at x in [140, 180): objects vanish for several frames."""
    rng = np.random.default_rng(seed)
    H, W = size
    objs = []
    for i in range(objects):
        w, h = rng.uniform(16, 24, 2)
        start = int(i // 3 * (frames / (objects / 3 + 1)) + rng.integers(0, 6))
        objs.append(_Obj(i + 1, int(rng.integers(len(CLASS_NAMES))), -w / 2 + 2, (i % 3 + 0.5) * H / 3,
                         w, h, rng.uniform(3.0, 4.0), 0.0, start, frames))
    return _render("occlusion", objs, frames, size, rng, hidden=lambda cx, cy: 140 <= cx < 180)


def enter_leave(seed: int, frames: int = 150, objects: int = 30, size: tuple[int, int] = (240, 320)) -> Sequence:
    """Objects appearing and vanishing at random times, moving in random directions."""
    rng = np.random.default_rng(seed)
    H, W = size
    objs = []
    for i in range(objects):
        start = int(rng.integers(0, frames - 20))
        end = int(min(frames, start + rng.integers(15, 80)))
        ang = rng.uniform(0, 2 * np.pi)
        sp = rng.uniform(0.5, 3.0)
        objs.append(_Obj(i + 1, int(rng.integers(len(CLASS_NAMES))), rng.uniform(30, W - 30), rng.uniform(30, H - 30),
                         *rng.uniform(14, 26, 2), sp * np.cos(ang), sp * np.sin(ang), start, end))
    return _render("enter_leave", objs, frames, size, rng)


def brightness(seed: int, frames: int = 150) -> Sequence:
    """A conveyor whose lighting drops between frames 50 and 90 (low detection scores)."""
    return conveyor(seed, frames, dim=(50, 90))


def dense(seed: int, instances: int, frames: int = 30, size: tuple[int, int] = (720, 1280)) -> Sequence:
    """``instances`` objects in view from the first frame to the last (tracker cost per frame)."""
    rng = np.random.default_rng(seed)
    H, W = size
    cols = int(np.ceil(np.sqrt(instances * W / H)))
    rows = int(np.ceil(instances / cols))
    objs = [_Obj(i + 1, int(rng.integers(len(CLASS_NAMES))), (i % cols + 0.3) * W / cols, (i // cols + 0.5) * H / rows,
                 *rng.uniform(20, 36, 2), rng.uniform(1.0, 3.0), rng.normal(0, 0.3), 0, frames)
            for i in range(instances)]
    return _render("dense", objs, frames, size, rng, dropout=0.0, false_pos=0.0)


SCENARIOS: dict[str, Callable[[int], Sequence]] = {
    "conveyor": conveyor, "crossing": crossing, "occlusion": occlusion,
    "enter_leave": enter_leave, "brightness": brightness,
}
