"""The frame path after inference as it was before issue 21 (commit b2b187a), kept callable.

``benchmarks/frame_budget.py`` times it against the current path in the same
run, and ``tests/test_grasp_parity.py`` holds the current grasp planner to
it. Verbatim copies: the grasp planner (``edgeseg/grasp/planner.py``, with the
numpy pose helpers of ``geometry3d.py`` it called), ``Preprocessor.__call__``
and ``Result.to_dict`` (rows rebuilt per access, masks through the numpy RLE
encoder). Not part of the runtime.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from types import SimpleNamespace

import cv2
import numpy as np

from edgeseg import rle as _rle
from edgeseg.grasp import geometry3d as _g3
from edgeseg.grasp.types import CameraIntrinsics, Grasp, GripperSpec, Pose3D, TablePlane, wrap_half_turn
from edgeseg.preprocess import LetterboxInfo, check_image
from edgeseg.result import CroppedMask, Result


def _letterbox_v0(pre, image_bgr: np.ndarray):
    check_image(image_bgr)
    info = LetterboxInfo.fit(image_bgr.shape[:2], (pre.spec.height, pre.spec.width), center=pre.spec.letterbox.center)
    rh, rw = info.resized_size
    canvas = pre._canvas
    canvas[...] = pre.spec.letterbox.pad_value
    region = canvas[info.pad_top : info.pad_top + rh, info.pad_left : info.pad_left + rw]
    if (rh, rw) == image_bgr.shape[:2]:
        region[...] = image_bgr
    else:
        cv2.resize(image_bgr, (rw, rh), dst=region, interpolation=cv2.INTER_LINEAR)
    return canvas, info


def preprocess_v0(pre, image_bgr: np.ndarray):
    """``Preprocessor.__call__`` before issue 21 (``pre``: an ``edgeseg.preprocess.Preprocessor``)."""
    canvas, info = _letterbox_v0(pre, image_bgr)
    spec = pre.spec
    img = cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB) if spec.color == "RGB" else canvas
    x = img.astype(np.float32)
    x *= pre._mul
    x += pre._add
    if spec.quant is not None:
        x = x / np.float32(spec.quant.scale) + np.float32(spec.quant.zero_point)
        info_dtype = np.iinfo(np.dtype(spec.dtype))
        x = np.clip(np.rint(x), info_dtype.min, info_dtype.max)
    x = x.astype(spec.dtype, copy=False)
    if spec.layout == "NCHW":
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x[None]), info


def to_dict_v0(result: Result) -> dict:
    """``Result.to_dict`` before issue 21: rows rebuilt, one numpy RLE per mask."""
    instances = [
        (int(result.class_ids[i]), result.class_names[int(result.class_ids[i])], float(result.scores[i]),
         tuple(float(v) for v in result.boxes[i]), result.masks[i] if result.masks else None)
        for i in range(len(result))
    ]
    return {
        "frame_id": result.frame_id,
        "image_size": list(result.image_size),
        "timings_ms": {
            "preprocess": round(result.timings.preprocess_ms, 3),
            "infer": round(result.timings.infer_ms, 3),
            "decode": round(result.timings.decode_ms, 3),
        },
        "instances": [
            {
                "class_id": c,
                "class_name": name,
                "score": round(s, 5),
                "box_xyxy": [round(v, 2) for v in box],
                "mask_rle": _rle.encode_cropped(m.bitmap, m.x0, m.y0, m.image_size) if m is not None else None,
            }
            for c, name, s, box, m in instances
        ],
    }


def _quaternion_from_matrix(r: np.ndarray) -> tuple[float, float, float, float]:
    """``(qx, qy, qz, qw)`` of a rotation matrix, with qw >= 0."""
    tr = r[0, 0] + r[1, 1] + r[2, 2]
    if tr > 0:
        s = math.sqrt(tr + 1.0) * 2
        q = ((r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s, 0.25 * s)
    else:
        i = int(np.argmax(np.diag(r)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = math.sqrt(1.0 + r[i, i] - r[j, j] - r[k, k]) * 2
        q = [0.0, 0.0, 0.0, (r[k, j] - r[j, k]) / s]
        q[i] = 0.25 * s
        q[j] = (r[j, i] + r[i, j]) / s
        q[k] = (r[k, i] + r[i, k]) / s
    q = np.asarray(q)
    q = q / np.linalg.norm(q)
    if q[3] < 0:
        q = -q
    return tuple(float(v) + 0.0 for v in q)  # + 0.0 turns -0.0 into 0.0


def _make_pose(position: np.ndarray, closing: np.ndarray, approach: np.ndarray, up: np.ndarray) -> Pose3D:
    """Builds a gripper pose: z = approach, x = closing (orthogonalised), y = z x x.

    Args:
        position: ``(3,)`` metres.
        closing: ``(3,)`` closing direction (any length, not parallel to approach).
        approach: ``(3,)`` direction the gripper moves in along (into the scene).
        up: ``(3,)`` axis the yaw is measured about (its sign does not matter).
    """
    z = approach / np.linalg.norm(approach)
    x = closing - (closing @ z) * z
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    rot = np.column_stack([x, y, z])
    # Yaw of the closing direction about `up`, measured from the frame's x axis
    # projected onto the plane normal to `up`.
    u = up / np.linalg.norm(up)
    ref = np.array([1.0, 0, 0]) if abs(u[0]) < 0.9 else np.array([0, 1.0, 0])
    e1 = ref - (ref @ u) * u
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(u, e1)
    yaw = wrap_half_turn(math.atan2(x @ e2, x @ e1))
    return Pose3D(tuple(float(v) for v in position), _quaternion_from_matrix(rot), yaw, rot)


def _transform_pose(pose: Pose3D, hand_eye: np.ndarray) -> Pose3D:
    """Maps a camera-frame pose into the robot base frame (yaw about base +z)."""
    r, t = hand_eye[:3, :3], hand_eye[:3, 3]
    rot = r @ pose.rotation
    pos = r @ np.asarray(pose.position) + t
    return _make_pose(pos, rot[:, 0], rot[:, 2], np.array([0.0, 0.0, 1.0]))


g3 = SimpleNamespace(
    check_depth=_g3.check_depth, robust_depth=_g3.robust_depth, points_on_plane=_g3.points_on_plane,
    points_at_depth=_g3.points_at_depth, check_hand_eye=_g3.check_hand_eye, make_pose=_make_pose,
    transform_pose=_transform_pose,
)

log = logging.getLogger("frame_baseline")

MIN_AREA_PX = 9  # masks smaller than this get no grasp


@dataclass(frozen=True)
class _Shape:
    """Moments-derived shape of one mask; positions in continuous image pixels."""

    centroid: np.ndarray  # (2,) x, y
    closing: np.ndarray  # (2,) unit vector across the minor axis
    major: np.ndarray  # (2,) unit vector along the major axis
    angle: float
    points: np.ndarray  # (K, 2) pixel centres
    solidity: float


def _shape(mask: CroppedMask) -> _Shape | None:
    bm = mask.bitmap.view(np.uint8)
    m = cv2.moments(bm, binaryImage=True)
    if m["m00"] < MIN_AREA_PX:
        return None
    centroid = np.array([mask.x0 + m["m10"] / m["m00"] + 0.5, mask.y0 + m["m01"] / m["m00"] + 0.5])
    theta = 0.5 * math.atan2(2 * m["mu11"], m["mu20"] - m["mu02"])  # major axis
    angle = wrap_half_turn(theta + math.pi / 2)
    closing = np.array([math.cos(angle), math.sin(angle)])
    major = np.array([-closing[1], closing[0]])
    ys, xs = np.nonzero(bm)
    points = np.column_stack([xs + mask.x0 + 0.5, ys + mask.y0 + 0.5])
    contours, _ = cv2.findContours(bm, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull = cv2.convexHull(np.vstack(contours))
    # The hull runs through pixel centres; add the half-pixel rim (perimeter / 2 + 1),
    # which makes a filled w x h rectangle's hull exactly w * h.
    hull_area = cv2.contourArea(hull) + cv2.arcLength(hull, True) / 2 + 1
    solidity = float(min(1.0, m["m00"] / hull_area))
    return _Shape(centroid, closing, major, angle, points, solidity)


class GraspPlannerV0:
    """Plans one grasp per instance and ranks them.

    Args:
        gripper: Gripper geometry (default :class:`GripperSpec`, metric).
        camera: Pinhole intrinsics; needed for any 3D output.
        table: Support plane in the camera frame; used when there is no depth
            image (ray/plane intersection) and to sink the grasp point.
        hand_eye: ``(4, 4)`` camera -> robot base transform; adds robot poses.
        pixels_per_metre: Fixed image scale for a metric gripper when there is
            no 3D information (e.g. a calibrated overhead camera).
        min_score: Instances below this detection score get no grasp.
    """

    def __init__(
        self,
        gripper: GripperSpec | None = None,
        *,
        camera: CameraIntrinsics | None = None,
        table: TablePlane | None = None,
        hand_eye: np.ndarray | None = None,
        pixels_per_metre: float | None = None,
        min_score: float = 0.0,
    ) -> None:
        self.gripper = gripper if gripper is not None else GripperSpec()
        if not isinstance(self.gripper, GripperSpec):
            raise TypeError(f"gripper must be a GripperSpec, got {type(gripper).__name__}")
        if pixels_per_metre is not None and not pixels_per_metre > 0:
            raise ValueError(f"pixels_per_metre must be > 0, got {pixels_per_metre}")
        if (table is not None or hand_eye is not None) and camera is None:
            raise ValueError("table and hand_eye need camera intrinsics (camera=CameraIntrinsics(...))")
        self.camera = camera
        self.table = table
        self.hand_eye = g3.check_hand_eye(hand_eye) if hand_eye is not None else None
        self.pixels_per_metre = pixels_per_metre
        self.min_score = min_score
        self._warned_no_scale = False

    def plan(self, result: Result, depth: np.ndarray | None = None) -> list[Grasp]:
        """Plans grasps for every instance with a mask, best first.

        Args:
            result: The frame's instances (masks required; instances without
                a usable mask get no grasp).
            depth: Optional ``(H, W)`` depth image aligned to the colour image,
                uint16 millimetres or float metres, 0 = missing.

        Returns:
            Grasps best first: feasible ones (clear and fitting) before the
            rest, then by quality, then by detection score.
        """
        if not isinstance(result, Result):
            raise TypeError(f"result must be an edgeseg Result, got {type(result).__name__}")
        if depth is not None:
            if self.camera is None:
                raise ValueError("a depth image needs camera intrinsics (camera=CameraIntrinsics(...))")
            g3.check_depth(depth, result.image_size)
        grasps = []
        for i, mask in enumerate(result.masks):
            if result.scores[i] < self.min_score:
                continue
            g = self._plan_one(result, i, mask, depth)
            if g is not None:
                grasps.append(g)
        grasps.sort(key=lambda g: (g.clear is False or g.fits is False, -g.quality, -g.score, g.instance))
        return grasps

    def _plan_one(self, result: Result, i: int, mask: CroppedMask, depth) -> Grasp | None:
        shape = _shape(mask)
        if shape is None:
            return None
        z = g3.robust_depth(depth, mask) if depth is not None else None
        if z is None and self.table is not None:
            on_plane = g3.points_on_plane(self.camera, shape.centroid[None], self.table)
            z = float(on_plane[0, 2]) if on_plane is not None else None
        ppm = self._pixels_per_metre(z)
        scale = 1.0 if self.gripper.unit == "px" else ppm  # pixels per gripper unit
        rel = shape.points - shape.centroid
        s, t = rel @ shape.closing, rel @ shape.major
        length = float(t.max() - t.min() + 1)
        if scale is not None:
            band = np.abs(t) <= max(self.gripper.finger_width * scale / 2, 0.5)
            if band.any():
                s = s[band]
        s_lo, s_hi = float(s.min()), float(s.max())
        extent = s_hi - s_lo + 1
        center = shape.centroid + shape.closing * (s_lo + s_hi) / 2
        if scale is None:
            self._warn_no_scale()
            width, fits, clear, clearance = extent, None, None, 1.0
        else:
            width = extent + 2 * self.gripper.margin * scale
            fits = width <= self.gripper.max_opening * scale
            clearance = _clearance(result, i, center, shape, extent, width, self.gripper, scale)
            clear = clearance >= 1.0
        quality = shape.solidity * (0.0 if fits is False else 1.0) * clearance
        grasp = Grasp(
            instance=i,
            class_id=int(result.class_ids[i]),
            score=float(result.scores[i]),
            quality=float(quality),
            center=(float(center[0]), float(center[1])),
            angle=shape.angle,
            width_px=float(width),
            extent_px=float(extent),
            length_px=length,
            solidity=shape.solidity,
            clearance=float(clearance),
            clear=clear,
            fits=fits,
            width_m=float(width / ppm) if ppm else None,
        )
        return self._add_poses(grasp, z) if z is not None else grasp

    def _pixels_per_metre(self, z: float | None) -> float | None:
        if z is not None and self.camera is not None:
            return math.sqrt(self.camera.fx * self.camera.fy) / z
        return self.pixels_per_metre

    def _warn_no_scale(self) -> None:
        if not self._warned_no_scale:
            log.warning(
                "metric gripper but no scale (no depth, table plane or pixels_per_metre): "
                "grasps are planned without gripper fit and clearance checks"
            )
            self._warned_no_scale = True

    def _add_poses(self, g: Grasp, z: float) -> Grasp:
        cam = self.camera
        jaws = np.array([g.center, *g.jaw_points])
        pts = g3.points_at_depth(cam, jaws, z)
        approach = -np.asarray(self.table.normal) if self.table is not None else np.array([0.0, 0, 1])
        position = pts[0]
        if self.table is not None and self.gripper.unit == "m":
            height = float(np.asarray(self.table.normal) @ position + self.table.offset)
            position = position + approach * max(0.0, min(self.gripper.finger_depth, height)) / 2
        pose = g3.make_pose(position, pts[2] - pts[1], approach, approach)
        robot = g3.transform_pose(pose, self.hand_eye) if self.hand_eye is not None else None
        width_m = float(np.linalg.norm(pts[2] - pts[1]))
        return replace(g, width_m=width_m, camera_pose=pose, robot_pose=robot)


def _clearance(result: Result, i: int, center, shape: _Shape, extent: float, width: float,
               gripper: GripperSpec, scale: float) -> float:
    """Free fraction of the two fingers' sweep regions (1.0 = nothing else inside)."""
    half_pad = max(gripper.finger_width * scale / 2, 0.5)
    outer = width / 2 + gripper.finger_thickness * scale
    inner = extent / 2
    polys = []
    for sign in (-1.0, 1.0):
        corners = [(sign * inner, -half_pad), (sign * outer, -half_pad), (sign * outer, half_pad), (sign * inner, half_pad)]
        polys.append(np.array([center + a * shape.closing + b * shape.major for a, b in corners]))
    h, w = result.image_size
    allp = np.vstack(polys)
    x0, y0 = (max(0, int(math.floor(v)) - 1) for v in allp.min(axis=0))
    x1, y1 = min(w, int(math.ceil(allp[:, 0].max())) + 1), min(h, int(math.ceil(allp[:, 1].max())) + 1)
    if x1 <= x0 or y1 <= y0:
        return 1.0
    sweep = np.zeros((y1 - y0, x1 - x0), np.uint8)
    for p in polys:  # continuous coords -> OpenCV pixel-centre coords, 4 fractional bits
        pts = np.round((p - (x0 + 0.5, y0 + 0.5)) * 16).astype(np.int32)
        cv2.fillConvexPoly(sweep, pts, 1, lineType=cv2.LINE_8, shift=4)
    area = int(sweep.sum())
    # Fingers reaching past the image border count as free (nothing seen there).
    if area == 0:
        return 1.0
    others = np.zeros_like(sweep, dtype=bool)
    for j, m in enumerate(result.masks):
        if j == i:
            continue
        mh, mw = m.bitmap.shape
        ax0, ay0, ax1, ay1 = max(x0, m.x0), max(y0, m.y0), min(x1, m.x0 + mw), min(y1, m.y0 + mh)
        if ax1 > ax0 and ay1 > ay0:
            others[ay0 - y0 : ay1 - y0, ax0 - x0 : ax1 - x0] |= m.bitmap[ay0 - m.y0 : ay1 - m.y0, ax0 - m.x0 : ax1 - m.x0]
    hit = int(np.count_nonzero(others & sweep.astype(bool)))
    return 1.0 - hit / area


def plan_grasps_v0(
    result: Result,
    gripper: GripperSpec | None = None,
    *,
    depth: np.ndarray | None = None,
    camera: CameraIntrinsics | None = None,
    table: TablePlane | None = None,
    hand_eye: np.ndarray | None = None,
    pixels_per_metre: float | None = None,
) -> list[Grasp]:
    """One-call form of :class:`GraspPlanner` (see it for the arguments)."""
    planner = GraspPlannerV0(gripper, camera=camera, table=table, hand_eye=hand_eye,
                           pixels_per_metre=pixels_per_metre)
    return planner.plan(result, depth)
