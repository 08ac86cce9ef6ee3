"""Counting tracked instances: line crossings and zone occupancy, per class.

A track's position is its box centre. :class:`LineCounter` counts a track
once when the step between two of its consecutive positions crosses the
line segment (the conveyor case: how many of each class passed).
:class:`ZoneCounter` reports how many tracks of each class are inside a
polygon now, and how many have entered it so far. Both need
``Result.track_ids`` (run :class:`~edgeseg.track.InstanceTracker` first);
untracked instances (id -1) are not counted. Hand-written: a segment
intersection test and ``cv2.pointPolygonTest`` are all it takes.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from edgeseg.result import Result

FORGET_AFTER = 150  # frames after which a vanished track's last position is forgotten


def _centres(result: Result) -> list[tuple[int, str, float, float]]:
    if result.track_ids is None:
        raise ValueError("counting needs Result.track_ids: run an InstanceTracker before the counter")
    b = result.boxes
    return [(int(t), result.class_names[int(c)], float((b[i, 0] + b[i, 2]) / 2), float((b[i, 1] + b[i, 3]) / 2))
            for i, (t, c) in enumerate(zip(result.track_ids, result.class_ids, strict=True)) if t >= 0]


def _side(p: np.ndarray, q: np.ndarray, r: tuple[float, float]) -> float:
    return float((q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0]))


class LineCounter:
    """Counts tracks crossing the segment ``p1``-``p2``, once per track, per class.

    Args:
        p1: ``(x, y)`` one end of the line, image pixels.
        p2: ``(x, y)`` the other end.
        name: Key of this counter in the frame's counts.
    """

    def __init__(self, p1: Sequence[float], p2: Sequence[float], name: str = "line") -> None:
        self.p1, self.p2 = np.asarray(p1, np.float64), np.asarray(p2, np.float64)
        if self.p1.shape != (2,) or self.p2.shape != (2,) or np.allclose(self.p1, self.p2):
            raise ValueError(f"a count line needs two distinct (x, y) points, got {p1} and {p2}")
        self.name = name
        self.counts: dict[str, int] = {}
        self._last: dict[int, tuple[float, float, int]] = {}
        self._counted: set[int] = set()
        self._frame = 0

    def update(self, result: Result) -> dict[str, dict[str, int]]:
        """Counts this frame's crossings; returns ``{name: running count per class}``."""
        self._frame += 1
        for tid, cls, x, y in _centres(result):
            last = self._last.get(tid)
            self._last[tid] = (x, y, self._frame)
            if last is None or tid in self._counted:
                continue
            a, b = last[:2], (x, y)
            s1, s2 = _side(self.p1, self.p2, a), _side(self.p1, self.p2, b)
            s3 = _side(np.asarray(a), np.asarray(b), tuple(self.p1))
            s4 = _side(np.asarray(a), np.asarray(b), tuple(self.p2))
            if s1 * s2 < 0 or (s1 != 0 and s2 == 0):
                if s3 * s4 <= 0:
                    self._counted.add(tid)
                    self.counts[cls] = self.counts.get(cls, 0) + 1
        stale = [t for t, (_, _, f) in self._last.items() if self._frame - f > FORGET_AFTER]
        for t in stale:
            del self._last[t]
            self._counted.discard(t)
        return {self.name: dict(self.counts)}

    def draw(self, image: np.ndarray) -> np.ndarray:
        """Draws the line and its counts on ``image`` (in place); returns it."""
        p1, p2 = tuple(int(v) for v in self.p1), tuple(int(v) for v in self.p2)
        cv2.line(image, p1, p2, (0, 255, 255), 2, cv2.LINE_AA)
        text = f"{self.name}: " + (", ".join(f"{c} {n}" for c, n in sorted(self.counts.items())) or "0")
        cv2.putText(image, text, (p1[0] + 4, max(p1[1] - 6, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 255, 255), 1,
                    cv2.LINE_AA)
        return image


class ZoneCounter:
    """Tracks inside a polygon now, and tracks that have entered it, per class.

    Args:
        polygon: ``(K, 2)`` vertices ``(x, y)`` in image pixels, K >= 3.
        name: Key of this counter in the frame's counts (``name`` = inside
            now, ``name:entered`` = entered so far).
    """

    def __init__(self, polygon: Sequence[Sequence[float]], name: str = "zone") -> None:
        self.polygon = np.asarray(polygon, np.float32)
        if self.polygon.ndim != 2 or self.polygon.shape[1] != 2 or len(self.polygon) < 3:
            raise ValueError(f"a count zone needs >= 3 (x, y) vertices, got shape {self.polygon.shape}")
        self.name = name
        self.inside: dict[str, int] = {}
        self.entered: dict[str, int] = {}
        self._seen: set[int] = set()

    def update(self, result: Result) -> dict[str, dict[str, int]]:
        """Returns ``{name: inside now per class, name:entered: entered so far per class}``."""
        self.inside = {}
        for tid, cls, x, y in _centres(result):
            if cv2.pointPolygonTest(self.polygon, (x, y), False) >= 0:
                self.inside[cls] = self.inside.get(cls, 0) + 1
                if tid not in self._seen:
                    self._seen.add(tid)
                    self.entered[cls] = self.entered.get(cls, 0) + 1
        return {self.name: dict(self.inside), f"{self.name}:entered": dict(self.entered)}

    def draw(self, image: np.ndarray) -> np.ndarray:
        """Draws the zone and its occupancy on ``image`` (in place); returns it."""
        pts = self.polygon.astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(image, [pts], True, (255, 255, 0), 2, cv2.LINE_AA)
        x, y = (int(v) for v in self.polygon[0])
        text = f"{self.name}: " + (", ".join(f"{c} {n}" for c, n in sorted(self.inside.items())) or "0")
        cv2.putText(image, text, (x + 4, y + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 0), 1, cv2.LINE_AA)
        return image
