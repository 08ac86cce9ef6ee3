/* es_pose.c - gripper poses of many grasps at once (see es_pose.h).
 *
 * A port of the numpy code in edgeseg/grasp/geometry3d.py: per row, the same operations in the
 * order numpy evaluates them (3-element sums left to right), so the poses agree with it to the
 * last bit or two; what it saves is numpy's per-call overhead, which dominates at ~10 grasps.
 */
#include "es_pose.h"

#include <math.h>
#include <string.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846 /* == Python's math.pi */
#endif

static double dot3(const double *a, const double *b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }

static void unit3(const double *v, double *u) {
    double n = sqrt(dot3(v, v));
    u[0] = v[0] / n; u[1] = v[1] / n; u[2] = v[2] / n;
}

static void cross3(const double *a, const double *b, double *c) {
    c[0] = a[1] * b[2] - a[2] * b[1];
    c[1] = a[2] * b[0] - a[0] * b[2];
    c[2] = a[0] * b[1] - a[1] * b[0];
}

/* Unit axes of the plane normal to up that yaw is measured in (geometry3d._yaw_axes). */
static void yaw_axes(const double *up, double *e1, double *e2) {
    double u[3], ref[3] = {1.0, 0.0, 0.0};
    unit3(up, u);
    if (!(fabs(u[0]) < 0.9)) { ref[0] = 0.0; ref[1] = 1.0; }
    double d = dot3(ref, u), e[3] = {ref[0] - d * u[0], ref[1] - d * u[1], ref[2] - d * u[2]};
    unit3(e, e1);
    cross3(u, e1, e2);
}

/* (qx, qy, qz, qw) of row-major r, qw >= 0 (geometry3d.quaternions_from_matrices). */
static void quaternion(const double *r, double *q) {
    double tr = r[0] + r[4] + r[8];
    if (tr > 0) {
        double s = sqrt(tr + 1.0) * 2;
        q[0] = (r[7] - r[5]) / s; q[1] = (r[2] - r[6]) / s; q[2] = (r[3] - r[1]) / s; q[3] = 0.25 * s;
    } else {
        int i = 0; /* argmax of the diagonal, first on ties */
        if (r[4] > r[0]) i = 1;
        if (r[8] > r[4 * i]) i = 2;
        int j = (i + 1) % 3, k = (i + 2) % 3;
        double s = sqrt(1.0 + r[4 * i] - r[4 * j] - r[4 * k]) * 2;
        q[3] = (r[3 * k + j] - r[3 * j + k]) / s;
        q[i] = 0.25 * s;
        q[j] = (r[3 * j + i] + r[3 * i + j]) / s;
        q[k] = (r[3 * k + i] + r[3 * i + k]) / s;
    }
    double n = sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]);
    for (int c = 0; c < 4; c++) q[c] /= n;
    if (q[3] < 0)
        for (int c = 0; c < 4; c++) q[c] = -q[c];
    for (int c = 0; c < 4; c++) q[c] += 0.0; /* -0.0 -> 0.0 */
}

static double wrap_half_turn(double a) {
    a = remainder(a, M_PI);
    return a <= -M_PI / 2 ? M_PI / 2 : a;
}

/* One pose record from a position and a row-major rotation, yaw in the (e1, e2) plane. */
static void pose_record(const double *pos, const double *rot, const double *e1, const double *e2, double *o) {
    double x[3] = {rot[0], rot[3], rot[6]};
    memcpy(o, pos, 3 * sizeof(double));
    quaternion(rot, o + 3);
    o[7] = wrap_half_turn(atan2(dot3(x, e2), dot3(x, e1)));
    memcpy(o + 8, rot, 9 * sizeof(double));
}

int es_grasp_poses(const double *position, const double *closing, const double *approach, const double *up,
                   const double *hand_eye, int64_t m, double *out) {
    if (m < 0 || (m > 0 && (!position || !closing || !approach || !up || !out))) return -1;
    double z[3], e1[3], e2[3], b1[3], b2[3], base_up[3] = {0.0, 0.0, 1.0};
    unit3(approach, z);
    yaw_axes(up, e1, e2);
    yaw_axes(base_up, b1, b2);
    for (int64_t k = 0; k < m; k++) {
        const double *c = closing + 3 * k;
        double d = c[0] * z[0] + c[1] * z[1] + c[2] * z[2], x[3], v[3] = {c[0] - d * z[0], c[1] - d * z[1], c[2] - d * z[2]};
        double y[3], rot[9];
        unit3(v, x);
        cross3(z, x, y);
        for (int i = 0; i < 3; i++) { rot[3 * i] = x[i]; rot[3 * i + 1] = y[i]; rot[3 * i + 2] = z[i]; }
        double *o = out + 2 * ES_POSE_SIZE * k;
        pose_record(position + 3 * k, rot, e1, e2, o);
        memset(o + ES_POSE_SIZE, 0, ES_POSE_SIZE * sizeof(double));
        if (!hand_eye) continue;
        double rr[9], p[3];
        const double *h = hand_eye, *q = position + 3 * k;
        for (int i = 0; i < 3; i++) {
            for (int j = 0; j < 3; j++) rr[3 * i + j] = h[4 * i] * rot[j] + h[4 * i + 1] * rot[3 + j] + h[4 * i + 2] * rot[6 + j];
            p[i] = (q[0] * h[4 * i] + q[1] * h[4 * i + 1] + q[2] * h[4 * i + 2]) + h[4 * i + 3];
        }
        pose_record(p, rr, b1, b2, o + ES_POSE_SIZE);
    }
    return 0;
}
