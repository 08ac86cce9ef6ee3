"""Typed inputs and outputs of grasp planning.

Conventions:
    * Image coordinates are continuous pixels: x right, y down, pixel ``i``
      covers ``[i, i+1)`` so its centre is ``i + 0.5``.
    * Image angles are radians from +x towards +y (clockwise on screen). A
      parallel-jaw grasp is symmetric under a half turn, so angles are wrapped
      to (-pi/2, pi/2].
    * The camera frame is OpenCV's: x right, y down, z forward (optical axis),
      metres. Quaternions are ``(qx, qy, qz, qw)`` (ROS order).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class GripperSpec:
    """A parallel-jaw gripper as seen from above.

    All lengths are in ``unit``: metres (``"m"``, the physical gripper, as a
    device config states it) or pixels (``"px"``, for a fixed camera without
    calibration). A metric gripper is converted to pixels per grasp when the
    planner knows the object's depth (depth image or table plane) or a fixed
    ``pixels_per_metre``; without any scale the gripper terms of the quality
    (fit and clearance sweep) are skipped and grasps say so (``fits=None``).

    Attributes:
        max_opening: Largest jaw opening.
        finger_width: Pad width, measured along the object's major axis.
        finger_thickness: Finger size along the closing direction; each finger
            sweeps this much beyond the opening.
        finger_depth: Finger length along the approach. In 3D with a known
            table plane, the grasp point sinks ``min(finger_depth, height) / 2``
            below the object's top surface.
        margin: Free space added on each side of the object when opening.
        unit: ``"m"`` or ``"px"``.
    """

    max_opening: float = 0.085
    finger_width: float = 0.02
    finger_thickness: float = 0.01
    finger_depth: float = 0.04
    margin: float = 0.01
    unit: Literal["m", "px"] = "m"

    def __post_init__(self) -> None:
        if self.unit not in ("m", "px"):
            raise ValueError(f"GripperSpec.unit must be 'm' or 'px', got {self.unit!r}")
        for name in ("max_opening", "finger_width", "finger_thickness", "finger_depth", "margin"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"GripperSpec.{name} must be a finite number >= 0, got {v!r}")
        if self.max_opening <= 0:
            raise ValueError(f"GripperSpec.max_opening must be > 0, got {self.max_opening}")


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics (pixels) with optional OpenCV distortion coefficients.

    Attributes:
        fx, fy: Focal lengths in pixels.
        cx, cy: Principal point in pixels (OpenCV convention, pixel centres at
            integers; the planner converts from its continuous coordinates).
        dist: OpenCV distortion ``(k1, k2, p1, p2[, k3, ...])``; empty = none.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    dist: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not (self.fx > 0 and self.fy > 0):
            raise ValueError(f"focal lengths must be > 0, got fx={self.fx}, fy={self.fy}")
        if len(self.dist) not in (0, 4, 5, 8, 12, 14):
            raise ValueError(f"dist must have 0, 4, 5, 8, 12 or 14 coefficients, got {len(self.dist)}")

    @property
    def matrix(self) -> np.ndarray:
        """``(3, 3)`` float64 camera matrix K."""
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], np.float64)


@dataclass(frozen=True)
class TablePlane:
    """The support plane ``normal . p + offset = 0`` in the camera frame (metres).

    Attributes:
        normal: Unit normal pointing from the table towards the camera.
        offset: The camera's distance to the plane (positive when the normal
            points towards the camera). Example: a camera 0.6 m above a table
            looking straight down: ``normal=(0, 0, -1)``, ``offset=0.6``.
    """

    normal: tuple[float, float, float]
    offset: float

    def __post_init__(self) -> None:
        n = np.asarray(self.normal, np.float64)
        if n.shape != (3,) or not np.isfinite(n).all() or abs(np.linalg.norm(n) - 1) > 1e-3:
            raise ValueError(f"TablePlane.normal must be a unit 3-vector, got {self.normal}")


@dataclass(frozen=True)
class Pose3D:
    """A grasp pose: position, orientation and yaw.

    Attributes:
        position: ``(x, y, z)`` metres.
        quaternion: ``(qx, qy, qz, qw)`` of the gripper frame whose z axis is
            the approach and x axis the closing direction.
        yaw: Closing direction about the frame's up axis (camera: the optical
            axis; robot: base +z, assumed to be the table normal), radians,
            wrapped to (-pi/2, pi/2].
        rotation: ``(3, 3)`` float64 rotation matrix (columns: closing,
            binormal, approach).
    """

    position: tuple[float, float, float]
    quaternion: tuple[float, float, float, float]
    yaw: float
    rotation: np.ndarray


@dataclass(frozen=True)
class Grasp:
    """One planned grasp for one instance.

    Attributes:
        instance: Row of the instance in the Result.
        class_id: Class index of the instance.
        score: Detection confidence in [0, 1].
        quality: Grasp quality in [0, 1] (product of solidity, fit and
            clearance terms); ranks grasps after feasibility (see planner).
        center: ``(x, y)`` grasp centre in image pixels (continuous coords).
        angle: Closing direction in the image, radians (see module doc).
        width_px: Jaw opening in pixels: extent across the object + 2 margins.
        extent_px: Object extent along the closing direction, pixels.
        length_px: Object extent along the major axis, pixels.
        solidity: Mask area / convex hull area, in [0, 1].
        clearance: Free fraction of the fingers' sweep area, in [0, 1].
        clear: True when no other mask enters the fingers' sweep; None when
            the sweep is unknown (metric gripper without a scale).
        fits: Opening within the gripper's range; None without a scale for a
            metric gripper.
        width_m: Jaw opening in metres when a metric scale is known.
        camera_pose: Pose in the camera frame when depth or a plane is known.
        robot_pose: Pose in the robot base frame when a hand-eye is given.
    """

    instance: int
    class_id: int
    score: float
    quality: float
    center: tuple[float, float]
    angle: float
    width_px: float
    extent_px: float
    length_px: float
    solidity: float
    clearance: float
    clear: bool | None
    fits: bool | None
    width_m: float | None = None
    camera_pose: Pose3D | None = None
    robot_pose: Pose3D | None = None

    def to_dict(self, rank: int | None = None) -> dict:
        """JSON-ready (``edgeseg run``'s per-frame ``grasps``; schema in ``docs/frame.schema.json``).

        Args:
            rank: Position in the frame's ranking (0 = best), written when given.
        """
        d = {} if rank is None else {"rank": rank}
        d.update(instance=self.instance, class_id=self.class_id, score=round(self.score, 5),
                 quality=round(self.quality, 5), center=[round(self.center[0], 2), round(self.center[1], 2)],
                 angle=round(self.angle, 5), width_px=round(self.width_px, 2), extent_px=round(self.extent_px, 2),
                 length_px=round(self.length_px, 2), solidity=round(self.solidity, 4),
                 clearance=round(self.clearance, 4), clear=self.clear, fits=self.fits)
        if self.width_m is not None:
            d["width_m"] = round(self.width_m, 5)
        for key, pose in (("camera_pose", self.camera_pose), ("robot_pose", self.robot_pose)):
            if pose is not None:
                d[key] = {"position": [round(float(v), 5) for v in pose.position],
                          "quaternion": [round(float(v), 6) for v in pose.quaternion], "yaw": round(pose.yaw, 5)}
        return d

    @property
    def jaw_points(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """Image points ``((x, y), (x, y))`` of the two open jaws."""
        dx = math.cos(self.angle) * self.width_px / 2
        dy = math.sin(self.angle) * self.width_px / 2
        cx, cy = self.center
        return (cx - dx, cy - dy), (cx + dx, cy + dy)


def wrap_half_turn(angle: float) -> float:
    """Wraps an angle in radians to (-pi/2, pi/2]."""
    a = math.remainder(angle, math.pi)
    return math.pi / 2 if a <= -math.pi / 2 else a
