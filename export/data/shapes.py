"""Object shapes and textures for the synthetic tabletop scenes.

Each class has one shape function that draws the object's silhouette into a
full-frame ``uint8`` mask (255 inside) and returns a shading map for it; the
scene renderer (:mod:`export.data.synthetic`) colours, shadows and composites
them. Coordinates are image pixels (x right, y down), float centres, drawn with
OpenCV's sub-pixel ``shift`` so small objects keep their shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np

CLASS_NAMES: tuple[str, ...] = ("box", "can", "bottle", "bolt", "ring", "blob")
"""Grasping classes, in class-id order (COCO category id = class id + 1)."""

_SHIFT = 4
_ONE = 1 << _SHIFT


def smooth_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Smooth value noise in [0, 1].

    Args:
        rng: Random generator.
        h: Output height.
        w: Output width.
        cell: Feature size in pixels (larger = smoother).

    Returns:
        ``(h, w)`` float32 array.
    """
    gh, gw = max(2, int(h / cell) + 2), max(2, int(w / cell) + 2)
    small = rng.random((gh, gw), dtype=np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).clip(0.0, 1.0)


def _poly(mask: np.ndarray, pts: np.ndarray) -> None:
    cv2.fillPoly(mask, [np.round(pts * _ONE).astype(np.int32)], 255, cv2.LINE_8, _SHIFT)


def _circle(mask: np.ndarray, cx: float, cy: float, r: float, value: int = 255) -> None:
    cv2.circle(mask, (round(cx * _ONE), round(cy * _ONE)), round(r * _ONE), value, -1, cv2.LINE_8, _SHIFT)


def _transform(pts: np.ndarray, cx: float, cy: float, angle: float) -> np.ndarray:
    """Rotates ``(N, 2)`` local points by ``angle`` radians and moves them to (cx, cy)."""
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s], [s, c]], dtype=np.float64)
    return pts @ rot.T + np.array([cx, cy])


def _axis_coord(shape: tuple[int, int], cx: float, cy: float, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel coordinates (u along the object axis, v across it) around (cx, cy)."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = xs - cx, ys - cy
    c, s = math.cos(angle), math.sin(angle)
    return dx * c + dy * s, -dx * s + dy * c


def draw_box(rng, mask, cx, cy, size, angle):
    """Cardboard box / block from above: rotated rectangle, bevelled edges."""
    a = size / 2.0
    b = a * rng.uniform(0.5, 1.0)
    _poly(mask, _transform(np.array([[-a, -b], [a, -b], [a, b], [-a, b]]), cx, cy, angle))
    u, v = _axis_coord(mask.shape, cx, cy, angle)
    edge = np.minimum(a - np.abs(u), b - np.abs(v))
    shade = 0.8 + 0.25 * np.clip(edge / max(2.0, 0.15 * b), 0.0, 1.0)
    if rng.random() < 0.5:  # a tape stripe along the long axis
        shade = np.where(np.abs(v) < 0.12 * b, shade * 1.15, shade)
    return shade


def draw_can(rng, mask, cx, cy, size, angle):
    """Can seen from above: disc with a rim and a lid."""
    r = size / 2.0
    _circle(mask, cx, cy, r)
    u, v = _axis_coord(mask.shape, cx, cy, angle)
    d = np.sqrt(u * u + v * v) / r
    shade = 1.05 - 0.35 * d * d
    shade = np.where(np.abs(d - 0.82) < 0.06, shade * 1.25, shade)
    return shade


def draw_bottle(rng, mask, cx, cy, size, angle):
    """Bottle lying on the table: rounded body, narrower neck and a cap."""
    length = size
    body_r = length * rng.uniform(0.14, 0.2)
    body_len = length * 0.62
    neck_r = body_r * rng.uniform(0.4, 0.55)
    x0 = -length / 2.0
    body = np.array([[x0 + body_r, -body_r], [x0 + body_len, -body_r], [x0 + body_len + body_r * 0.8, -neck_r],
                     [length / 2.0, -neck_r], [length / 2.0, neck_r], [x0 + body_len + body_r * 0.8, neck_r],
                     [x0 + body_len, body_r], [x0 + body_r, body_r]])
    _poly(mask, _transform(body, cx, cy, angle))
    ex, ey = _transform(np.array([[x0 + body_r, 0.0]]), cx, cy, angle)[0]
    _circle(mask, ex, ey, body_r)
    u, v = _axis_coord(mask.shape, cx, cy, angle)
    across = np.abs(v) / body_r
    shade = 1.1 - 0.4 * np.clip(across, 0, 1) ** 2 + 0.25 * np.exp(-((v + 0.35 * body_r) / (0.15 * body_r)) ** 2)
    shade = np.where(u > length / 2.0 - 0.12 * length, shade * 0.7, shade)  # the cap
    return shade


def draw_bolt(rng, mask, cx, cy, size, angle):
    """Bolt / elongated part: threaded shaft with a hexagonal head."""
    length = size
    shaft_r = length * rng.uniform(0.05, 0.09)
    head_r = shaft_r * rng.uniform(1.8, 2.4)
    x0 = -length / 2.0 + head_r
    shaft = np.array([[x0, -shaft_r], [length / 2.0, -shaft_r], [length / 2.0, shaft_r], [x0, shaft_r]])
    _poly(mask, _transform(shaft, cx, cy, angle))
    hexa = np.array([[head_r * math.cos(t), head_r * math.sin(t)] for t in np.arange(6) * math.pi / 3 + 0.3])
    hexa[:, 0] += x0
    _poly(mask, _transform(hexa, cx, cy, angle))
    u, v = _axis_coord(mask.shape, cx, cy, angle)
    thread = 0.9 + 0.15 * np.sin(u * (2 * math.pi / max(2.0, shaft_r)))
    shade = np.where(u > x0 + head_r, thread, 1.0) * (1.1 - 0.3 * np.clip(np.abs(v) / head_r, 0, 1))
    return shade


def draw_ring(rng, mask, cx, cy, size, angle):
    """Ring / washer: an annulus; the hole shows whatever lies below."""
    r = size / 2.0
    inner = r * rng.uniform(0.35, 0.6)
    _circle(mask, cx, cy, r)
    _circle(mask, cx, cy, inner, value=0)
    u, v = _axis_coord(mask.shape, cx, cy, angle)
    d = np.sqrt(u * u + v * v)
    mid = (r + inner) / 2.0
    return 1.15 - 0.4 * np.abs(d - mid) / max(1.0, r - mid) + 0.1 * np.sign(u) * (d > mid)


def draw_blob(rng, mask, cx, cy, size, angle):
    """Irregular blob (sponge, fruit, bag): smooth random radial outline."""
    n = 48
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    radius = np.ones(n)
    for k in (2, 3, 4):
        radius += rng.uniform(0.0, 0.22 / (k - 1)) * np.cos(k * t + rng.uniform(0, 2 * math.pi))
    radius *= size / 2.0 / radius.max()
    pts = np.stack([radius * np.cos(t), radius * np.sin(t)], -1)
    _poly(mask, _transform(pts, cx, cy, angle))
    u, v = _axis_coord(mask.shape, cx, cy, angle)
    d = np.sqrt(u * u + v * v) / (size / 2.0)
    return 1.05 - 0.3 * d * d


SHAPES: dict[int, Callable] = dict(enumerate([draw_box, draw_can, draw_bottle, draw_bolt, draw_ring, draw_blob]))
"""Class id -> shape function ``(rng, mask, cx, cy, size, angle) -> shade (H, W) float32``."""
