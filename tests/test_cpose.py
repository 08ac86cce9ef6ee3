"""The C gripper poses (es_pose.c) against the numpy ones they replace (edgeseg/grasp/geometry3d.py).

Hypothesis draws grasp positions, closing and approach directions (every
quaternion branch: trace > 0 and each diagonal maximum) and hand-eye
rotations; camera and robot poses must agree within 1e-12 (same expressions
per row; numpy may sum 3-vectors in another order). Bad shapes are refused.
Also run under AddressSanitizer + UBSan by tests/test_cdecode_asan.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeseg.grasp import geometry3d as g3
from edgeseg.grasp import shape as gs

pytestmark = pytest.mark.skipif(gs._cdecode is None, reason="C extension not built")
TOL = 1e-12


def _rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _same(a: g3.Pose3D, b: g3.Pose3D) -> None:
    np.testing.assert_allclose(a.position, b.position, rtol=0, atol=TOL)
    np.testing.assert_allclose(a.quaternion, b.quaternion, rtol=0, atol=TOL)
    np.testing.assert_allclose(a.rotation, b.rotation, rtol=0, atol=TOL)
    assert abs(a.yaw - b.yaw) <= TOL or abs(abs(a.yaw - b.yaw) - np.pi) <= TOL  # +-pi/2 is one direction


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), m=st.integers(0, 12), with_hand_eye=st.booleans(),
       approach=st.sampled_from(["down", "table", "random"]))
def test_poses_equal_numpy(seed, m, with_hand_eye, approach):
    rng = np.random.default_rng(seed)
    position = rng.normal(size=(m, 3))
    closing = rng.normal(size=(m, 3))
    app = {"down": np.array([0.0, 0, 1]), "table": np.array([0.0, 0.6, 0.8]), "random": rng.normal(size=3)}[approach]
    hand_eye = None
    if with_hand_eye:
        hand_eye = np.eye(4)
        hand_eye[:3, :3], hand_eye[:3, 3] = _rotation(rng), rng.normal(size=3)
    cam_c, rob_c = g3.grasp_poses(position, closing, app, hand_eye, c=True)
    cam_n, rob_n = g3.grasp_poses(position, closing, app, hand_eye, c=False)
    assert len(cam_c) == len(cam_n) == len(rob_c) == len(rob_n) == m
    for a, b in zip(cam_c, cam_n, strict=True):
        _same(a, b)
    for a, b in zip(rob_c, rob_n, strict=True):
        if hand_eye is None:
            assert a is None and b is None
        else:
            _same(a, b)


def test_every_quaternion_branch():
    """Rotations whose trace is > 0 and whose largest diagonal entry is each of the three."""
    turns = [np.eye(3), np.diag([1.0, -1, -1]), np.diag([-1.0, 1, -1]), np.diag([-1.0, -1, 1])]
    for r in turns:
        hand_eye = np.eye(4)
        hand_eye[:3, :3] = r
        pos, clo = np.array([[0.1, 0.2, 0.5]]), np.array([[1.0, 0.3, 0.0]])
        for c_pose, n_pose in zip(*(g3.grasp_poses(pos, clo, np.array([0.0, 0, 1]), hand_eye, c=c)[1]
                                    for c in (True, False)), strict=True):
            _same(c_pose, n_pose)


def test_bad_shapes_are_refused():
    cd = gs._cdecode
    z = np.array([0.0, 0, 1])
    with pytest.raises(ValueError, match="position"):
        cd.poses(np.zeros((2, 4)), np.zeros((2, 3)), z, z, None)
    with pytest.raises(ValueError, match="closing"):
        cd.poses(np.zeros((2, 3)), np.zeros((3, 3)), z, z, None)
    with pytest.raises(ValueError, match="approach"):
        cd.poses(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros(4), z, None)
    with pytest.raises(ValueError, match="hand_eye"):
        cd.poses(np.zeros((2, 3)), np.ones((2, 3)), z, z, np.eye(3))
