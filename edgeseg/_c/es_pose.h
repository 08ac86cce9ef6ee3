/* es_pose.h - gripper poses of many grasps at once (plain C99, no Python).
 *
 * Semantics: edgeseg/grasp/geometry3d.py (make_poses, transform_poses,
 * quaternions_from_matrices), the same expressions in the same order per row;
 * compile with -ffp-contract=off like the decoder.
 */
#ifndef ES_POSE_H
#define ES_POSE_H

#include <stdint.h>

/* Doubles per pose in es_grasp_poses' output: position (3), quaternion qx qy qz qw (4), yaw (1),
 * rotation (9, row-major; columns closing, binormal, approach). */
#define ES_POSE_SIZE 17

/* Poses of m grasps. position, closing: (m, 3) row-major; approach, up: (3,); hand_eye: (4, 4) row-major
 * camera -> robot transform or NULL. out: (m, 2, ES_POSE_SIZE): [k][0] the camera-frame pose (z = approach,
 * x = closing orthogonalised, y = z x x; yaw about up), [k][1] the robot-frame pose (yaw about base +z),
 * zeros without hand_eye. Returns 0, or -1 for a NULL argument or m < 0. */
int es_grasp_poses(const double *position, const double *closing, const double *approach, const double *up,
                   const double *hand_eye, int64_t m, double *out);

#endif
