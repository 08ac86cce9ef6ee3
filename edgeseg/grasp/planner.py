"""Grasp planning from instance masks (parallel-jaw gripper, top-down).

Per instance: the centroid and principal axis come from the mask's image
moments; the jaws close across the minor axis; the opening is the mask's
extent along the closing direction within the band the finger pads cover,
plus a margin on each side. Quality is ``solidity * fit * clearance``:

* solidity: mask area / convex hull area (concave or fragmented masks grip worse);
* fit: 1 when the opening is within ``max_opening``, else 0;
* clearance: free fraction of the two fingers' sweep (from the object's edge
  out to the open jaw plus the finger thickness, pad width wide) that no
  other instance's mask covers.

Grasps of a frame are ranked: feasible ones first (no collision in the sweep
and the opening fits; unknown counts as feasible), then by quality, then by
detection score.

The per-mask geometry (moments, principal axis, hull, extents) runs for all
masks of a frame in one C call (:mod:`edgeseg.grasp.shape`, reference:
:mod:`edgeseg.grasp.reference`); the clearance sweep is rasterized only for
instances whose sweep window another mask's box reaches (a box test on all
pairs at once), since no other mask can be inside it otherwise; depths on
the table plane and 3D poses are computed for all grasps together.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from edgeseg.grasp import geometry3d as g3
from edgeseg.grasp import shape as _shape
from edgeseg.grasp.types import CameraIntrinsics, Grasp, GripperSpec, TablePlane
from edgeseg.result import Result

log = logging.getLogger(__name__)

MIN_AREA_PX = 9  # masks smaller than this get no grasp


class GraspPlanner:
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

    @classmethod
    def from_device_config(cls, config, *, pixels_per_metre: float | None = None) -> GraspPlanner:
        """The planner for a board's gripper and calibration (a :class:`~edgeseg.DeviceConfig`).

        Args:
            config: The board's device config (its ``gripper`` and ``calibration`` sections).
            pixels_per_metre: Overrides ``calibration.pixels_per_metre``.
        """
        cal = config.calibration
        return cls(
            config.gripper,
            camera=cal.intrinsics,
            table=cal.table,
            hand_eye=np.asarray(cal.hand_eye, np.float64) if cal.hand_eye is not None else None,
            pixels_per_metre=pixels_per_metre if pixels_per_metre is not None else cal.pixels_per_metre,
        )

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
        if len(result) and not result.masks:
            if result.mask_rles or result.mask_frames is not None:
                raise ValueError("grasp planning needs cropped masks: segment with masks='cropped' (the default)")
            return []
        if not result.masks:
            return []
        c = _shape.use_c()
        geo = _shape.shapes(result, c=c)
        rows = np.flatnonzero((result.scores >= self.min_score) & (geo.area >= MIN_AREA_PX))
        if not len(rows):
            return []
        angles = geo.angle[rows]
        centroid = geo.centroid[rows]
        closing = np.array([(math.cos(a), math.sin(a)) for a in angles.tolist()], np.float64).reshape(-1, 2)
        depths = self._depths(result, rows, centroid, depth)
        scales = [self._scale(z) for z in depths]
        half = np.array([max(self.gripper.finger_width * s / 2, 0.5) if s is not None else np.nan for s in scales])
        ext = _shape.extents(result, rows, centroid, angles, closing, half, c=c)
        s_lo, s_hi = ext[:, 2], ext[:, 3]
        extent = s_hi - s_lo + 1
        centers = centroid + closing * (s_lo + s_hi)[:, None] / 2
        scale = np.array([np.nan if v is None else v for v in scales], np.float64)
        width = np.where(np.isnan(scale), extent, extent + 2 * self.gripper.margin * scale)
        fits = width <= self.gripper.max_opening * scale
        clearance = np.ones(len(rows), np.float64)
        near = self._near(result, rows, centers, width, scale)
        check = [k for k, nb in enumerate(near) if len(nb) and not np.isnan(scale[k])]
        if check:
            clearance[check] = _shape.clearances(result, centers[check], angles[check], closing[check],
                                                 extent[check], width[check], scale[check], self.gripper,
                                                 [near[k] for k in check], c=c)
        half_w = closing * width[:, None] / 2
        poses = self._poses(centers, half_w, depths, c)
        solidity, class_ids, scores = geo.solidity.tolist(), result.class_ids.tolist(), result.scores.tolist()
        lengths = (ext[:, 1] - ext[:, 0] + 1).tolist()
        columns = zip(rows.tolist(), centers.tolist(), angles.tolist(), width.tolist(), extent.tolist(), lengths,
                      fits.tolist(), clearance.tolist(), strict=True)  # Python floats once, not per field
        grasps = []
        for k, (i, center, angle, width_k, extent_k, length_k, fits_k, clear_k) in enumerate(columns):
            known = scales[k] is not None
            if not known:
                self._warn_no_scale()
            fit = fits_k if known else None
            quality = solidity[i] * (0.0 if fit is False else 1.0) * clear_k
            ppm = self._pixels_per_metre(depths[k])
            camera_pose, robot_pose, width_m = poses.get(k, (None, None, width_k / ppm if ppm else None))
            grasps.append(Grasp(
                instance=i,
                class_id=class_ids[i],
                score=scores[i],
                quality=quality,
                center=(center[0], center[1]),
                angle=angle,
                width_px=width_k,
                extent_px=extent_k,
                length_px=length_k,
                solidity=solidity[i],
                clearance=clear_k,
                clear=clear_k >= 1.0 if known else None,
                fits=fit,
                width_m=width_m,
                camera_pose=camera_pose,
                robot_pose=robot_pose,
            ))
        grasps.sort(key=lambda g: (g.clear is False or g.fits is False, -g.quality, -g.score, g.instance))
        return grasps

    def _depths(self, result: Result, rows: np.ndarray, centroid: np.ndarray, depth) -> list[float | None]:
        """Depth in metres of each planned instance: from the depth image, else on the table plane."""
        z: list[float | None] = [None] * len(rows)
        if depth is not None:
            z = [g3.robust_depth(depth, result.masks[i]) for i in rows.tolist()]
        if self.table is not None and any(v is None for v in z):
            on_plane = g3.plane_depths(self.camera, centroid, self.table)
            z = [p if v is None else v for v, p in zip(z, on_plane, strict=True)]
        return z

    def _scale(self, z: float | None) -> float | None:
        """Pixels per gripper unit at depth ``z`` (None: no scale for a metric gripper)."""
        return 1.0 if self.gripper.unit == "px" else self._pixels_per_metre(z)

    def _near(self, result: Result, rows: np.ndarray, centers: np.ndarray, width: np.ndarray,
              scale: np.ndarray) -> list[np.ndarray]:
        """Per planned instance, the other masks whose boxes reach its fingers' sweep window.

        A conservative box test on all pairs at once (the sweep lies within
        ``outer + half pad`` of the grasp centre, the reference's window adds
        2 px): a mask it leaves out cannot be inside the sweep, so the
        clearance is exactly what the reference gives without it.
        """
        g = self.gripper
        reach = width / 2 + g.finger_thickness * scale + np.maximum(g.finger_width * scale / 2, 0.5) + 3
        spans = result.packed_masks.spans.astype(np.float64)
        x0, y0 = spans[:, 0], spans[:, 1]
        x1, y1 = x0 + spans[:, 2], y0 + spans[:, 3]
        cx, cy, r = centers[:, :1], centers[:, 1:], reach[:, None]
        hit = (x0 < cx + r) & (x1 > cx - r) & (y0 < cy + r) & (y1 > cy - r) & (spans[:, 2] > 0) & (spans[:, 3] > 0)
        hit[np.arange(len(rows)), rows] = False
        k, j = np.nonzero(hit)
        bounds = np.searchsorted(k, np.arange(len(rows) + 1)).tolist()
        return [j[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]  # slices: np.split costs ~10x more

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

    def _poses(self, centers: np.ndarray, half_w: np.ndarray, depths: list[float | None], c: bool) -> dict[int, tuple]:
        """``{row: (camera pose, robot pose or None, width in metres)}`` for the rows whose depth is known.

        Args:
            centers: ``(M, 2)`` grasp centres; half_w: ``(M, 2)`` half the jaw
                opening along the closing direction (pixels).
            depths: Depth in metres per row, or None.
            c: Whether the C path runs (:func:`edgeseg.grasp.shape.use_c`).
        """
        known = [k for k, z in enumerate(depths) if z is not None]
        if not known:
            return {}
        jaws = np.stack([centers[known], centers[known] - half_w[known], centers[known] + half_w[known]], 1)
        rays = g3.pixel_rays(self.camera, jaws.reshape(-1, 2)).reshape(-1, 3, 3)
        approach = -np.asarray(self.table.normal) if self.table is not None else np.array([0.0, 0, 1])
        pts = rays * np.array([depths[k] for k in known], np.float64)[:, None, None]  # (K, 3 points, xyz)
        position = pts[:, 0]
        if self.table is not None and self.gripper.unit == "m":
            height = position @ np.asarray(self.table.normal) + self.table.offset
            position = position + approach * (np.maximum(0.0, np.minimum(self.gripper.finger_depth, height)) / 2)[:, None]
        jaw = pts[:, 2] - pts[:, 1]
        poses, robots = g3.grasp_poses(position, jaw, approach, self.hand_eye, c=c)
        widths = np.sqrt((jaw * jaw).sum(axis=1)).tolist()
        return dict(zip(known, zip(poses, robots, widths, strict=True), strict=True))


def plan_grasps(
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
    planner = GraspPlanner(gripper, camera=camera, table=table, hand_eye=hand_eye,
                           pixels_per_metre=pixels_per_metre)
    return planner.plan(result, depth)
