"""Constant-velocity Kalman filter over boxes, vectorised over tracks.

State per track: ``(cx, cy, w, h, vx, vy, vw, vh)`` in pixels and pixels per
frame; measurement: ``(cx, cy, w, h)``. Process and measurement noise scale
with the box height, as in SORT / ByteTrack, so a large near object and a
small far one are equally sure of themselves. Hand-written (40 lines of
numpy) because the filter libraries (filterpy) are unmaintained and one
track at a time; this one steps every track of a frame in one call.
"""

from __future__ import annotations

import numpy as np

_F = np.eye(8)
_F[:4, 4:] = np.eye(4)
_H = np.eye(4, 8)
POS_STD, VEL_STD = 1.0 / 20, 1.0 / 160  # of the box height, per frame


def xyxy_to_cxcywh(b: np.ndarray) -> np.ndarray:
    """``(N, 4)`` XYXY -> ``(N, 4)`` centre, width, height."""
    return np.column_stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]])


def cxcywh_to_xyxy(s: np.ndarray) -> np.ndarray:
    """``(N, >=4)`` state or measurement -> ``(N, 4)`` XYXY."""
    cx, cy, w, h = s[:, 0], s[:, 1], np.maximum(s[:, 2], 1e-3), np.maximum(s[:, 3], 1e-3)
    return np.column_stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def initiate(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """States ``(N, 8)`` and covariances ``(N, 8, 8)`` for new tracks from ``(N, 4)`` XYXY boxes."""
    z = xyxy_to_cxcywh(boxes.astype(np.float64))
    mean = np.concatenate([z, np.zeros_like(z)], axis=1)
    h = np.maximum(z[:, 3], 1.0)
    std = np.stack([2 * POS_STD * h, 2 * POS_STD * h, 2 * POS_STD * h, 2 * POS_STD * h,
                    10 * VEL_STD * h, 10 * VEL_STD * h, 10 * VEL_STD * h, 10 * VEL_STD * h], axis=1)
    return mean, np.einsum("ni,ij->nij", std**2, np.eye(8))


def predict(mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One frame ahead for every track (``(N, 8)``, ``(N, 8, 8)``)."""
    h = np.maximum(mean[:, 3], 1.0)
    q = np.stack([POS_STD * h] * 4 + [VEL_STD * h] * 4, axis=1) ** 2
    mean = mean @ _F.T
    cov = _F @ cov @ _F.T + np.einsum("ni,ij->nij", q, np.eye(8))
    return mean, cov


def update(mean: np.ndarray, cov: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Corrects tracks with their matched ``(N, 4)`` XYXY boxes."""
    z = xyxy_to_cxcywh(boxes.astype(np.float64))
    h = np.maximum(mean[:, 3], 1.0)
    r = np.einsum("ni,ij->nij", (POS_STD * np.stack([h] * 4, axis=1)) ** 2, np.eye(4))
    s = _H @ cov @ _H.T + r
    k = cov @ _H.T @ np.linalg.inv(s)
    mean = mean + np.einsum("nij,nj->ni", k, z - mean[:, :4])
    cov = cov - k @ _H @ cov
    return mean, cov
