"""Grasp planning from instance masks: 2D grasps, 3D poses, overlays.

Usage::

    from edgeseg.grasp import GripperSpec, plan_grasps, draw_grasps
    grasps = plan_grasps(result, GripperSpec(max_opening=120, finger_width=12,
                                             finger_thickness=6, finger_depth=20,
                                             margin=4, unit="px"))
    overlay = draw_grasps(image_bgr, grasps)
"""

from edgeseg.grasp.draw import draw_grasps
from edgeseg.grasp.planner import GraspPlanner, plan_grasps
from edgeseg.grasp.types import CameraIntrinsics, Grasp, GripperSpec, Pose3D, TablePlane

__all__ = [
    "CameraIntrinsics",
    "Grasp",
    "GraspPlanner",
    "GripperSpec",
    "Pose3D",
    "TablePlane",
    "draw_grasps",
    "plan_grasps",
]
