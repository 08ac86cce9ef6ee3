"""The grasp planner against the planner before issue 21 (benchmarks/frame_baseline.py).

Same grasps, same order: instance, class, feasibility flags exactly; every
float (centre, angle, widths, extents, solidity, clearance, quality, 3D
positions, quaternions, yaw) within 1e-9 absolute. The C path sums moments in
integers like OpenCV and evaluates the same expressions without fused
multiply-adds, but the hull perimeter and a few 3-vector norms are summed in
another order, so last-bit differences remain possible. Both the C path and
the numpy reference path (``EDGESEG_DECODER=numpy``) are checked.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from synthetic_masks import rectangle_mask, result_from_masks

import edgeseg
from edgeseg.device_config import DeviceConfig, load_device_config
from edgeseg.grasp import CameraIntrinsics, GraspPlanner, GripperSpec, TablePlane
from edgeseg.grasp import shape as grasp_shape

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
baseline = pytest.importorskip("frame_baseline")

TOL = 1e-9
SIZE = (240, 320)
PX = GripperSpec(max_opening=80, finger_width=10, finger_thickness=5, finger_depth=10, margin=3, unit="px")
CAM = CameraIntrinsics(fx=500.0, fy=500.0, cx=159.5, cy=119.5)
PATHS = ["c", "numpy"] if grasp_shape._cdecode is not None else ["numpy"]


@pytest.fixture(params=PATHS)
def path(request, monkeypatch):
    monkeypatch.setenv("EDGESEG_DECODER", request.param)
    return request.param


def _close(a, b, what):
    if a is None or b is None or isinstance(a, bool):
        assert a == b, what
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b), what
        for k, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{what}[{k}]")
    elif isinstance(a, np.ndarray):
        np.testing.assert_allclose(a, b, rtol=0, atol=TOL, err_msg=what)
    else:
        assert abs(a - b) <= TOL, f"{what}: {a!r} != {b!r}"


def assert_same_grasps(new, old):
    assert [g.instance for g in new] == [g.instance for g in old]
    for g, h in zip(new, old, strict=True):
        for name in ("class_id", "clear", "fits"):
            assert getattr(g, name) == getattr(h, name), name
        for name in ("score", "quality", "center", "angle", "width_px", "extent_px", "length_px", "solidity",
                     "clearance", "width_m"):
            _close(getattr(g, name), getattr(h, name), f"instance {g.instance} {name}")
        for pose in ("camera_pose", "robot_pose"):
            p, q = getattr(g, pose), getattr(h, pose)
            assert (p is None) == (q is None), pose
            if p is not None:
                for name in ("position", "quaternion", "yaw", "rotation"):
                    _close(getattr(p, name), getattr(q, name), f"instance {g.instance} {pose}.{name}")


def both(result, gripper=None, depth=None, **kw):
    new = GraspPlanner(gripper, **kw).plan(result, depth)
    old = baseline.GraspPlannerV0(gripper, **kw).plan(result, depth)
    assert_same_grasps(new, old)
    return new


@pytest.mark.parametrize("major", [0.0, 0.3, math.pi / 4, 1.2, -0.7, math.pi / 2, 2.0, -1.5707])
def test_rectangles(path, major):
    r = result_from_masks([rectangle_mask(SIZE, (160.3, 120.7), 100, 30, major)])
    assert both(r, PX)
    both(r)  # metric gripper without a scale
    both(r, pixels_per_metre=1000.0)


def test_neighbours_and_ranking(path):
    masks = [rectangle_mask(SIZE, (100.0, 60.0), 60, 20, 0.0), rectangle_mask(SIZE, (100.0, 80.0), 60, 6, 0.0),
             rectangle_mask(SIZE, (230.0, 170.0), 60, 20, 0.0), rectangle_mask(SIZE, (150.0, 60.0), 20, 20, 0.0),
             rectangle_mask(SIZE, (4.0, 200.0), 40, 8, 1.0)]
    r = result_from_masks(masks, scores=[0.99, 0.5, 0.6, 0.7, 0.8], class_ids=[0, 1, 0, 1, 0],
                          class_names=("a", "b"))
    grasps = both(r, PX)
    assert any(g.clear is False for g in grasps) and any(g.clear for g in grasps)
    both(r, PX, min_score=0.65)


def test_depth_plane_hand_eye_distortion(path):
    masks = [rectangle_mask(SIZE, (260.0, 170.0), 60, 20, 0.3), rectangle_mask(SIZE, (100.0, 100.0), 50, 25, -0.4)]
    r = result_from_masks(masks)
    depth = np.full(SIZE, 800, np.uint16)
    depth[::7, ::5] = 0
    hand_eye = np.array([[0, -1, 0, 0.4], [-1, 0, 0, 0.1], [0, 0, -1, 0.9], [0, 0, 0, 1]], float)
    table = TablePlane(normal=(0.0, 0.2 / math.hypot(0.2, 1), -1 / math.hypot(0.2, 1)), offset=0.8)
    dist = CameraIntrinsics(500.0, 500.0, 159.5, 119.5, dist=(-0.4, 0.1, 0.001, -0.001, 0.0))
    both(r, depth=depth, camera=CAM, hand_eye=hand_eye)
    both(r, camera=CAM, table=table, hand_eye=hand_eye)
    both(r, depth=depth.astype(np.float32) / 1000, camera=dist, table=table)
    both(r, PX, camera=CAM, table=table)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 6), density=st.floats(0.3, 1.0))
def test_random_blobs(seed, n, density):
    """Ragged, holed and fragmented masks (the C path; the fixture cannot wrap hypothesis)."""
    rng = np.random.default_rng(seed)
    masks = []
    for _ in range(n):
        m = rectangle_mask(SIZE, tuple(rng.uniform((20, 20), (300, 220))), rng.uniform(3, 120), rng.uniform(2, 60),
                           rng.uniform(-3, 3))
        m &= rng.random(SIZE) < density
        if m.any():
            masks.append(m)
    if masks:
        r = result_from_masks(masks, scores=list(rng.uniform(0.1, 1, len(masks))))
        both(r, PX)
        both(r, pixels_per_metre=1500.0)


@pytest.mark.parametrize("config", ["device_configs/x86-cpu.yaml", None])
def test_sample_scenes(path, config):
    cfg = load_device_config(REPO / config) if config else DeviceConfig()
    seg = edgeseg.load()
    kw = {}
    planner = GraspPlanner.from_device_config(cfg, pixels_per_metre=None if config else 1000.0)
    kw = dict(camera=planner.camera, table=planner.table, hand_eye=planner.hand_eye,
              pixels_per_metre=planner.pixels_per_metre)
    total = 0
    for p in sorted((REPO / "edgeseg/assets/samples").glob("*.jpg")):
        image = cv2.imread(str(p))
        for size in ((480, 640), (1080, 1920)):
            r = seg(cv2.resize(image, size[::-1]), score_threshold=0.1)
            total += len(both(r, cfg.gripper, **kw))
    assert total > 50


def test_batched_quaternions_match_one_at_a_time():
    from edgeseg.grasp import geometry3d as g3

    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.normal(size=(200, 3, 3)))
    rots = q * np.sign(np.linalg.det(q))[:, None, None]  # proper rotations, every branch
    rots = np.concatenate([rots, np.diag([1.0, -1, -1])[None], np.diag([-1.0, 1, -1])[None], np.diag([-1.0, -1, 1])[None]])
    batched = g3.quaternions_from_matrices(rots)
    for r, qb in zip(rots, batched, strict=True):
        np.testing.assert_allclose(qb, g3.quaternion_from_matrix(r), rtol=0, atol=1e-12)
        np.testing.assert_allclose(qb, baseline._quaternion_from_matrix(r), rtol=0, atol=1e-12)
