"""3D helpers for grasps: robust depth, back-projection, poses, hand-eye.

Frames: the camera frame is OpenCV's (x right, y down, z forward, metres);
the robot base frame is whatever the hand-eye matrix maps into (its +z is
taken as the table normal for yaw). Image points are continuous pixel
coordinates (pixel ``i`` covers ``[i, i+1)``); OpenCV's intrinsics put pixel
centres at integers, so ``0.5`` is subtracted before undistorting.
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

from edgeseg.grasp.types import CameraIntrinsics, Pose3D, TablePlane, wrap_half_turn
from edgeseg.result import CroppedMask

DEPTH_ERODE_PX = 3  # erosion radius before taking the median depth, pixels


def check_depth(depth: np.ndarray, image_size: tuple[int, int]) -> None:
    """Raises TypeError/ValueError unless ``depth`` is an aligned depth image.

    Args:
        depth: ``(H, W)`` uint16 millimetres or float32/float64 metres; 0 or
            non-finite = no reading.
        image_size: ``(H, W)`` of the colour image the masks belong to.
    """
    if not isinstance(depth, np.ndarray):
        raise TypeError(f"depth must be a numpy array, got {type(depth).__name__}")
    if depth.dtype not in (np.uint16, np.float32, np.float64):
        raise TypeError(f"depth must be uint16 (mm) or float32/float64 (m), got {depth.dtype}")
    if depth.shape != tuple(image_size):
        raise ValueError(f"depth must be aligned to the image: expected shape {tuple(image_size)}, got {depth.shape}")


def robust_depth(depth: np.ndarray, mask: CroppedMask) -> float | None:
    """Median depth in metres over the eroded mask, ignoring missing readings.

    Erosion by :data:`DEPTH_ERODE_PX` drops the mask border where depth
    bleeds into the background; a mask too thin to survive it is used as is.

    Args:
        depth: ``(H, W)`` uint16 millimetres or float metres (see check_depth).
        mask: The instance's cropped mask.

    Returns:
        The median depth in metres, or None when no valid reading lies inside.
    """
    bm = mask.bitmap.astype(np.uint8)
    k = 2 * DEPTH_ERODE_PX + 1
    eroded = cv2.erode(bm, np.ones((k, k), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    sel = eroded.astype(bool) if eroded.any() else mask.bitmap
    h, w = mask.bitmap.shape
    vals = depth[mask.y0 : mask.y0 + h, mask.x0 : mask.x0 + w][sel]
    vals = vals[(vals > 0) & np.isfinite(vals)] if vals.dtype.kind == "f" else vals[vals > 0]
    if vals.size == 0:
        return None
    z = float(np.median(vals))
    return z * 0.001 if depth.dtype == np.uint16 else z


def pixel_rays(camera: CameraIntrinsics, points_xy: np.ndarray) -> np.ndarray:
    """Undistorted viewing rays ``(N, 3)`` with z = 1 for image points ``(N, 2)``."""
    pts = np.asarray(points_xy, np.float64).reshape(-1, 1, 2) - 0.5
    if camera.dist:
        norm = cv2.undistortPoints(pts, camera.matrix, np.asarray(camera.dist, np.float64)).reshape(-1, 2)
    else:
        norm = (pts.reshape(-1, 2) - (camera.cx, camera.cy)) / (camera.fx, camera.fy)
    return np.hstack([norm, np.ones((len(norm), 1))])


def points_at_depth(camera: CameraIntrinsics, points_xy: np.ndarray, z: float) -> np.ndarray:
    """Back-projects image points to ``(N, 3)`` camera-frame points at depth ``z`` (metres)."""
    return pixel_rays(camera, points_xy) * z


def points_on_plane(camera: CameraIntrinsics, points_xy: np.ndarray, plane: TablePlane) -> np.ndarray | None:
    """Intersects the image points' rays with ``plane``; None if any ray misses it."""
    rays = pixel_rays(camera, points_xy)
    n = np.asarray(plane.normal, np.float64)
    denom = rays @ n
    if np.any(np.abs(denom) < 1e-9):
        return None
    t = -plane.offset / denom
    if np.any(t <= 0):
        return None
    return rays * t[:, None]


def plane_depths(camera: CameraIntrinsics, points_xy: np.ndarray, plane: TablePlane) -> list[float | None]:
    """Depth (camera z, metres) where each image point's ray meets ``plane``; None where it misses.

    Same arithmetic as :func:`points_on_plane` per point, for many points at once.
    """
    rays = pixel_rays(camera, points_xy)
    denom = rays @ np.asarray(plane.normal, np.float64)
    out: list[float | None] = []
    for d, rz in zip(denom.tolist(), rays[:, 2].tolist(), strict=True):
        t = -plane.offset / d if abs(d) >= 1e-9 else 0.0
        out.append(rz * t if t > 0 else None)
    return out


def check_hand_eye(hand_eye: np.ndarray) -> np.ndarray:
    """Validates a ``(4, 4)`` rigid transform (camera -> robot base); returns it as float64."""
    m = np.asarray(hand_eye, np.float64)
    if m.shape != (4, 4):
        raise ValueError(f"hand_eye must be a 4x4 matrix, got shape {m.shape}")
    r = m[:3, :3]
    if not np.allclose(r @ r.T, np.eye(3), atol=1e-4) or abs(np.linalg.det(r) - 1) > 1e-4:
        raise ValueError("hand_eye rotation part must be orthonormal with determinant +1")
    if not np.allclose(m[3], (0, 0, 0, 1)):
        raise ValueError(f"hand_eye last row must be (0, 0, 0, 1), got {tuple(m[3])}")
    return m


def quaternion_from_matrix(r: np.ndarray) -> tuple[float, float, float, float]:
    """``(qx, qy, qz, qw)`` of a rotation matrix, with qw >= 0."""
    return tuple(quaternions_from_matrices(np.asarray(r, np.float64)[None])[0].tolist())


def _rows_unit(v: np.ndarray) -> np.ndarray:
    return v / np.sqrt((v * v).sum(axis=1))[:, None]


def _rows_cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.column_stack([a[:, 1] * b[:, 2] - a[:, 2] * b[:, 1], a[:, 2] * b[:, 0] - a[:, 0] * b[:, 2],
                            a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]])


def quaternions_from_matrices(r: np.ndarray) -> np.ndarray:
    """``(M, 4)`` ``(qx, qy, qz, qw)`` of ``(M, 3, 3)`` rotation matrices, qw >= 0 (as :func:`quaternion_from_matrix`)."""
    r = np.asarray(r, np.float64).reshape(-1, 9)
    q = np.empty((len(r), 4))
    tr = r[:, 0] + r[:, 4] + r[:, 8]
    pos = tr > 0
    branch = np.where(pos, -1, np.argmax(r[:, [0, 4, 8]], axis=1))
    for i in np.unique(branch).tolist():  # only the branches some row takes
        rows = branch == i
        e = r[rows]
        if i < 0:
            s = np.sqrt(tr[rows] + 1.0) * 2
            q[rows] = np.column_stack([(e[:, 7] - e[:, 5]) / s, (e[:, 2] - e[:, 6]) / s, (e[:, 3] - e[:, 1]) / s, 0.25 * s])
            continue
        j, k = (i + 1) % 3, (i + 2) % 3
        s = np.sqrt(1.0 + e[:, 4 * i] - e[:, 4 * j] - e[:, 4 * k]) * 2
        sub = np.empty((len(e), 4))
        sub[:, 3] = (e[:, 3 * k + j] - e[:, 3 * j + k]) / s
        sub[:, i] = 0.25 * s
        sub[:, j] = (e[:, 3 * j + i] + e[:, 3 * i + j]) / s
        sub[:, k] = (e[:, 3 * k + i] + e[:, 3 * i + k]) / s
        q[rows] = sub
    q /= np.sqrt((q * q).sum(axis=1))[:, None]
    q[q[:, 3] < 0] *= -1
    return q + 0.0  # + 0.0 turns -0.0 into 0.0


@functools.lru_cache(maxsize=8)
def _yaw_axes(up: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Unit axes ``e1``, ``e2`` of the plane normal to ``up`` that yaw is measured in."""
    u = np.asarray(up, np.float64)
    u = u / math.sqrt(float(u @ u))
    ref = np.array([1.0, 0, 0]) if abs(u[0]) < 0.9 else np.array([0, 1.0, 0])
    e1 = ref - (ref @ u) * u
    e1 /= math.sqrt(float(e1 @ e1))
    return e1, _rows_cross(u[None], e1[None])[0]


def _poses(position: np.ndarray, rot: np.ndarray, up) -> list[Pose3D]:
    """Poses from ``(M, 3)`` positions and ``(M, 3, 3)`` rotations (columns: closing, binormal, approach)."""
    e1, e2 = _yaw_axes(tuple(float(v) for v in np.asarray(up).reshape(3)))
    x = rot[:, :, 0]
    yaw = np.arctan2(x @ e2, x @ e1).tolist()
    quats = quaternions_from_matrices(rot).tolist()
    return [Pose3D(tuple(p), tuple(q), wrap_half_turn(w), r)
            for p, q, w, r in zip(position.tolist(), quats, yaw, rot, strict=True)]


def make_poses(position: np.ndarray, closing: np.ndarray, approach: np.ndarray, up: np.ndarray) -> list[Pose3D]:
    """Gripper poses for many grasps at once: z = approach, x = closing (orthogonalised), y = z x x.

    Args:
        position: ``(M, 3)`` metres.
        closing: ``(M, 3)`` closing directions (any length, not parallel to approach).
        approach: ``(M, 3)`` or ``(3,)`` directions the gripper moves in along (into the scene).
        up: ``(3,)`` axis the yaw is measured about (its sign does not matter).

    Returns:
        M poses; yaw measured from ``up``'s reference axis projected onto the
        plane normal to ``up``.
    """
    position = np.asarray(position, np.float64).reshape(-1, 3)
    m = len(position)
    z = _rows_unit(np.broadcast_to(np.asarray(approach, np.float64), (m, 3)))
    c = np.asarray(closing, np.float64).reshape(-1, 3)
    x = _rows_unit(c - (c * z).sum(axis=1)[:, None] * z)
    rot = np.stack([x, _rows_cross(z, x), z], axis=2)  # columns x, y, z
    return _poses(position, rot, up)


def make_pose(position: np.ndarray, closing: np.ndarray, approach: np.ndarray, up: np.ndarray) -> Pose3D:
    """One gripper pose (see :func:`make_poses`)."""
    return make_poses(position, closing, approach, up)[0]


def transform_poses(poses: list[Pose3D], hand_eye: np.ndarray) -> list[Pose3D]:
    """Maps camera-frame poses into the robot base frame (yaw about base +z)."""
    if not poses:
        return []
    r, t = hand_eye[:3, :3], hand_eye[:3, 3]
    rot = r @ np.stack([p.rotation for p in poses])  # rotations stay orthonormal (hand_eye is checked)
    pos = np.array([p.position for p in poses], np.float64) @ r.T + t
    return _poses(pos, rot, (0.0, 0.0, 1.0))


def transform_pose(pose: Pose3D, hand_eye: np.ndarray) -> Pose3D:
    """Maps a camera-frame pose into the robot base frame (yaw about base +z)."""
    return transform_poses([pose], hand_eye)[0]


def grasp_poses(position: np.ndarray, closing: np.ndarray, approach: np.ndarray, hand_eye: np.ndarray | None, *,
                c: bool | None = None) -> tuple[list[Pose3D], list[Pose3D | None]]:
    """Camera-frame poses (:func:`make_poses`, yaw about ``approach``) and their robot-frame ones.

    With the compiled extension this is one call into ``es_pose.c`` (the same
    expressions per row; what it saves is numpy's per-call overhead, which
    dominates at ~10 grasps per frame), else the numpy functions above.

    Args:
        position: ``(M, 3)`` metres; closing: ``(M, 3)`` closing directions.
        approach: ``(3,)`` approach direction, also the camera yaw axis.
        hand_eye: ``(4, 4)`` camera -> robot transform, or None (robot poses None).
        c: Force the C path (True) or numpy (False); default: the decoder's choice.

    Returns:
        ``(camera poses, robot poses or Nones)``, M each.
    """
    from edgeseg.grasp.shape import _cdecode, use_c

    if c is None:
        c = use_c()
    if not c:
        poses = make_poses(position, closing, approach, approach)
        return poses, transform_poses(poses, hand_eye) if hand_eye is not None else [None] * len(poses)
    out = _cdecode.poses(position, closing, approach, approach, hand_eye)
    rows = out[:, :, :8].tolist()
    rot = out[:, :, 8:].reshape(-1, 2, 3, 3)  # one reshape; list() of its slices makes the per-pose views
    cam = [Pose3D(tuple(r[0][:3]), tuple(r[0][3:7]), r[0][7], m) for r, m in zip(rows, list(rot[:, 0]), strict=True)]
    if hand_eye is None:
        return cam, [None] * len(cam)
    return cam, [Pose3D(tuple(r[1][:3]), tuple(r[1][3:7]), r[1][7], m) for r, m in zip(rows, list(rot[:, 1]), strict=True)]
