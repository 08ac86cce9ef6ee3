"""Grasp geometry on synthetic masks with known answers (2D, depth, plane, hand-eye)."""

import math

import numpy as np
import pytest
from synthetic_masks import rectangle_mask, result_from_masks

from edgeseg.grasp import CameraIntrinsics, GraspPlanner, GripperSpec, TablePlane, draw_grasps, plan_grasps

SIZE = (240, 320)
PX_GRIPPER = GripperSpec(max_opening=80, finger_width=10, finger_thickness=5, finger_depth=10, margin=3, unit="px")
CAM = CameraIntrinsics(fx=500.0, fy=500.0, cx=159.5, cy=119.5)  # continuous (160, 120) is on the axis


def angle_diff(a, b):
    """Difference of two half-turn-symmetric angles, in [0, pi/2]."""
    return abs(math.remainder(a - b, math.pi))


@pytest.mark.parametrize("major", [0.0, 0.3, math.pi / 4, 1.2, -0.7, math.pi / 2])
def test_rectangle_axis_width_center(major):
    r = result_from_masks([rectangle_mask(SIZE, (160.0, 120.0), 100, 30, major)])
    (g,) = plan_grasps(r, PX_GRIPPER)
    assert angle_diff(g.angle, major + math.pi / 2) < 0.01
    assert -math.pi / 2 < g.angle <= math.pi / 2
    assert g.extent_px == pytest.approx(30, abs=1.5)
    assert g.length_px == pytest.approx(100, abs=1.5)
    assert g.width_px == pytest.approx(g.extent_px + 2 * PX_GRIPPER.margin)
    assert g.center == pytest.approx((160.0, 120.0), abs=0.5)
    assert g.fits and g.clear and g.clearance == 1.0
    assert 0.9 < g.solidity <= 1.0 and g.quality == pytest.approx(g.solidity)
    # The jaws lie on the closing line, width_px apart.
    (ax, ay), (bx, by) = g.jaw_points
    assert math.hypot(bx - ax, by - ay) == pytest.approx(g.width_px)


def test_too_wide_for_gripper_gets_zero_quality():
    r = result_from_masks([rectangle_mask(SIZE, (160.0, 120.0), 150, 90, 0.2)])
    (g,) = plan_grasps(r, PX_GRIPPER)
    assert g.fits is False and g.quality == 0.0


def test_neighbour_in_sweep_lowers_clearance_and_rank():
    crowded = rectangle_mask(SIZE, (100.0, 60.0), 60, 20, 0.0)  # closes along y
    neighbour = rectangle_mask(SIZE, (100.0, 80.0), 60, 6, 0.0)  # 4 px below its edge
    lonely = rectangle_mask(SIZE, (230.0, 170.0), 60, 20, 0.0)
    r = result_from_masks([crowded, neighbour, lonely], scores=[0.99, 0.5, 0.6])
    grasps = plan_grasps(r, PX_GRIPPER)
    by_inst = {g.instance: g for g in grasps}
    assert by_inst[0].clear is False and by_inst[0].clearance < 1.0
    assert by_inst[2].clear is True
    assert grasps[0].instance == 2  # feasible first, before the higher detection score
    assert [g.clear for g in grasps] == sorted((g.clear for g in grasps), reverse=True)
    # A neighbour off the ends of the major axis is outside the sweep.
    end_neighbour = rectangle_mask(SIZE, (150.0, 60.0), 20, 20, 0.0)
    (g,) = [g for g in plan_grasps(result_from_masks([crowded, end_neighbour]), PX_GRIPPER) if g.instance == 0]
    assert g.clear is True


def test_metric_gripper_without_scale_skips_gripper_terms():
    r = result_from_masks([rectangle_mask(SIZE, (160.0, 120.0), 100, 30, 0.0)])
    (g,) = plan_grasps(r)
    assert g.fits is None and g.clear is None and g.width_m is None and g.camera_pose is None
    (g,) = plan_grasps(r, pixels_per_metre=1000.0)
    assert g.width_m == pytest.approx((30 + 2 * 10) / 1000, abs=0.002)


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_depth_plane_gives_known_point(dtype):
    center, z = (260.0, 170.0), 0.8
    r = result_from_masks([rectangle_mask(SIZE, center, 60, 20, 0.0)])
    depth = np.full(SIZE, z * (1000 if dtype == np.uint16 else 1), dtype)
    depth[::7, ::5] = 0  # holes are ignored
    depth[r.masks[0].bitmap.shape[0] // 2 + r.masks[0].y0, :] = 0
    gripper = GripperSpec(max_opening=0.085, finger_width=0.01, finger_thickness=0.01, margin=0.005)
    (g,) = plan_grasps(r, gripper, depth=depth, camera=CAM)
    x = (center[0] - 0.5 - CAM.cx) / CAM.fx * z
    y = (center[1] - 0.5 - CAM.cy) / CAM.fy * z
    assert g.camera_pose.position == pytest.approx((x, y, z), abs=1e-3)
    assert (x, y) == pytest.approx((0.16, 0.08))
    assert g.width_m == pytest.approx((20 + 2 * 0.005 * CAM.fx / z) * z / CAM.fx, abs=0.002)
    assert g.fits and g.camera_pose.yaw == pytest.approx(math.pi / 2)


def test_robust_depth_ignores_border_bleed():
    r = result_from_masks([rectangle_mask(SIZE, (160.0, 120.0), 60, 30, 0.0)])
    depth = np.full(SIZE, 900, np.uint16)
    depth[r.masks[0].full()] = 600
    m = r.masks[0]
    depth[m.y0, m.x0 : m.x0 + m.bitmap.shape[1]] = 900  # mask border sees the table
    depth[m.y0 + 1, m.x0 : m.x0 + m.bitmap.shape[1]] = 900
    (g,) = plan_grasps(r, depth=depth, camera=CAM)
    assert g.camera_pose.position[2] == pytest.approx(0.6)


def test_table_plane_without_depth_matches_depth():
    r = result_from_masks([rectangle_mask(SIZE, (260.0, 170.0), 60, 20, 0.0)])
    table = TablePlane(normal=(0.0, 0.0, -1.0), offset=0.8)
    (g,) = plan_grasps(r, camera=CAM, table=table)
    assert g.camera_pose.position == pytest.approx((0.16, 0.08, 0.8), abs=1e-6)
    # A tilted table: the point lies on it.
    n = np.array([0.0, 0.2, -1.0]) / math.hypot(0.2, 1.0)
    (g,) = plan_grasps(r, camera=CAM, table=TablePlane(tuple(n), 0.8))
    assert n @ np.array(g.camera_pose.position) + 0.8 == pytest.approx(0, abs=1e-9)


def test_hand_eye_transform():
    # Camera looking straight down; camera x -> robot -y, camera y -> robot -x, z -> -z.
    hand_eye = np.array([[0, -1, 0, 0.4], [-1, 0, 0, 0.1], [0, 0, -1, 0.9], [0, 0, 0, 1]], float)
    major = 0.3
    r = result_from_masks([rectangle_mask(SIZE, (260.0, 170.0), 60, 20, major)])
    depth = np.full(SIZE, 800, np.uint16)
    (g,) = plan_grasps(r, depth=depth, camera=CAM, hand_eye=hand_eye)
    cam = np.array(g.camera_pose.position)
    assert g.robot_pose.position == pytest.approx(tuple(hand_eye[:3, :3] @ cam + hand_eye[:3, 3]), abs=1e-9)
    assert g.robot_pose.position == pytest.approx((0.32, -0.06, 0.1), abs=2e-3)
    assert angle_diff(g.robot_pose.yaw, -major) < 0.01
    # Quaternion and rotation agree, and the approach points down (robot -z).
    qx, qy, qz, qw = g.robot_pose.quaternion
    rot = np.array([
        [1 - 2 * (qy * qy + qz * qz), 2 * (qx * qy - qz * qw), 2 * (qx * qz + qy * qw)],
        [2 * (qx * qy + qz * qw), 1 - 2 * (qx * qx + qz * qz), 2 * (qy * qz - qx * qw)],
        [2 * (qx * qz - qy * qw), 2 * (qy * qz + qx * qw), 1 - 2 * (qx * qx + qy * qy)],
    ])
    assert rot == pytest.approx(g.robot_pose.rotation, abs=1e-9)
    assert rot[:, 2] == pytest.approx((0, 0, -1), abs=1e-9)


def test_distortion_is_undone():
    import cv2

    cam = CameraIntrinsics(500.0, 500.0, 159.5, 119.5, dist=(-0.4, 0.1, 0.001, -0.001, 0.0))
    point = np.array([[0.25, 0.18, 1.0]])
    px, _ = cv2.projectPoints(point, np.zeros(3), np.zeros(3), cam.matrix, np.array(cam.dist))
    u, v = px.reshape(2) + 0.5
    r = result_from_masks([rectangle_mask(SIZE, (u, v), 9, 9, 0.0)])
    (g,) = plan_grasps(r, depth=np.full(SIZE, 1000, np.uint16), camera=cam)
    assert g.camera_pose.position == pytest.approx((0.25, 0.18, 1.0), abs=2e-3)
    (g0,) = plan_grasps(r, depth=np.full(SIZE, 1000, np.uint16), camera=CAM)
    assert abs(g0.camera_pose.position[0] - 0.25) > 0.005  # ignoring distortion would be wrong


def test_bad_inputs_raise_clear_errors():
    r = result_from_masks([rectangle_mask(SIZE, (160.0, 120.0), 60, 20, 0.0)])
    with pytest.raises(ValueError, match="expected shape"):
        plan_grasps(r, depth=np.zeros((10, 10), np.uint16), camera=CAM)
    with pytest.raises(TypeError, match="uint16"):
        plan_grasps(r, depth=np.zeros(SIZE, np.int32), camera=CAM)
    with pytest.raises(ValueError, match="orthonormal"):
        GraspPlanner(camera=CAM, hand_eye=np.diag([2.0, 1, 1, 1]))
    with pytest.raises(ValueError, match="camera"):
        plan_grasps(r, depth=np.zeros(SIZE, np.uint16))
    with pytest.raises(ValueError, match="margin"):
        GripperSpec(margin=-1)
    with pytest.raises(ValueError, match="unit"):
        GripperSpec(unit="mm")
    with pytest.raises(TypeError, match="Result"):
        plan_grasps({"masks": []})


def test_draw_grasps_marks_the_closing_line():
    r = result_from_masks([rectangle_mask(SIZE, (160.0, 120.0), 100, 30, 0.0)])
    grasps = plan_grasps(r, PX_GRIPPER)
    img = np.zeros((*SIZE, 3), np.uint8)
    out = draw_grasps(img, grasps)
    assert not img.any() and out.shape == img.shape
    (ax, ay), (bx, by) = grasps[0].jaw_points
    assert out[int((ay + by) / 2 - 8), 159].any()  # on the vertical closing line
    assert not out[5, 5].any()
    with pytest.raises(ValueError, match="uint8"):
        draw_grasps(np.zeros(SIZE, np.float32), grasps)


def test_grasp_point_sinks_by_half_the_finger_depth_above_a_table():
    r = result_from_masks([rectangle_mask(SIZE, (160.0, 120.0), 60, 20, 0.0)])
    depth = np.full(SIZE, 800, np.uint16)
    depth[r.masks[0].full()] = 700  # a 10 cm tall object on a table 0.8 m away
    table = TablePlane(normal=(0.0, 0.0, -1.0), offset=0.8)
    (g,) = plan_grasps(r, GripperSpec(finger_depth=0.04), depth=depth, camera=CAM, table=table)
    assert g.camera_pose.position == pytest.approx((0.0, 0.0, 0.72), abs=1e-6)
    (g,) = plan_grasps(r, GripperSpec(finger_depth=0.5), depth=depth, camera=CAM, table=table)
    assert g.camera_pose.position[2] == pytest.approx(0.75)  # at most half the object's height
