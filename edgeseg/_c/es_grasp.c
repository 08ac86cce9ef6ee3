/* es_grasp.c - grasp geometry of masks: moments, convex hull, extents (see es_runs.h, es_post.h).
 *
 * Shapes and extents read runs of foreground per row (es_runs.c makes them from the decoder's
 * bitmaps once), so a mask costs about its number of runs instead of its area: moments come in
 * closed form per run, the hull from the row extremes, and the extents from the run ends (s and
 * t are linear in x along a row, and the rows' pixels inside the finger band are one interval
 * found by bisection on t, which is monotone in x in floating point as well). The fingers'
 * sweep is counted against the neighbours' bitmaps, inside the sweep's small window only.
 */
#include "es_runs.h"

#include <math.h>
#include <string.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846 /* == Python's math.pi */
#endif

int es_check_bitmaps(const es_bitmaps *b) {
    if (!b || b->n < 0 || b->nbits < 0 || (b->n > 0 && (!b->offsets || !b->spans || !b->bits))) return ES_ERR_ARG;
    for (int64_t i = 0; i < b->n; i++) {
        es_span s = b->spans[i];
        if (s.w < 0 || s.h < 0 || s.x0 < 0 || s.y0 < 0) return ES_ERR_ARG;
        int64_t o = b->offsets[i], size = (int64_t)s.w * s.h;
        if (o < 0 || o > b->nbits || size > b->nbits - o) return ES_ERR_CAPACITY;
    }
    return ES_OK;
}

int64_t es_shapes_work_size(int64_t max_h) { return max_h < 0 ? 0 : 8 * max_h + 8; }

static int64_t cross(const int32_t *o, const int32_t *a, const int32_t *b) {
    return (int64_t)(a[0] - o[0]) * (b[1] - o[1]) - (int64_t)(a[1] - o[1]) * (b[0] - o[0]);
}

/* Convex hull (Andrew's monotone chain) of pts (np points (x, y), sorted by y then x) into hull;
 * returns its vertex count. hull holds np + 1 points. */
static int64_t monotone_chain(const int32_t *pts, int64_t np, int32_t *hull) {
    if (np <= 2) {
        memcpy(hull, pts, sizeof(int32_t) * 2 * (size_t)np);
        return np;
    }
    int64_t k = 0;
    for (int64_t i = 0; i < np; i++) {
        while (k >= 2 && cross(hull + 2 * (k - 2), hull + 2 * (k - 1), pts + 2 * i) <= 0) k--;
        hull[2 * k] = pts[2 * i]; hull[2 * k + 1] = pts[2 * i + 1]; k++;
    }
    for (int64_t i = np - 2, lower = k + 1; i >= 0; i--) {
        while (k >= lower && cross(hull + 2 * (k - 2), hull + 2 * (k - 1), pts + 2 * i) <= 0) k--;
        hull[2 * k] = pts[2 * i]; hull[2 * k + 1] = pts[2 * i + 1]; k++;
    }
    return k - 1; /* the first point came again at the end */
}

int es_runs_shapes(const es_runs *r, int32_t *work, int64_t work_cap, double *out, int64_t cap) {
    int st = es_check_runs(r);
    if (st != ES_OK) return st;
    if (r->n > 0 && (!out || !work)) return ES_ERR_ARG;
    if (cap < r->n) return ES_ERR_CAPACITY;
    for (int64_t i = 0; i < r->n; i++)
        if (es_shapes_work_size(r->spans[i].h) > work_cap) return ES_ERR_CAPACITY;
    for (int64_t i = 0; i < r->n; i++) {
        es_span sp = r->spans[i];
        int32_t *pts = work, *hull = work + 4 * (int64_t)sp.h;
        int64_t m00 = 0, m10 = 0, m01 = 0, m20 = 0, m11 = 0, m02 = 0, np = 0;
        for (int32_t y = 0; y < sp.h; y++) {
            int64_t row = r->first_row[i] + y, k0 = r->row_start[row], k1 = r->row_start[row + 1];
            if (k0 == k1) continue;
            int64_t c = 0, sx = 0, sxx = 0;
            for (int64_t k = k0; k < k1; k++) {
                int64_t lo = r->runs[2 * k], hi = r->runs[2 * k + 1] - 1; /* pixels lo..hi */
                c += hi - lo + 1;
                sx += (lo + hi) * (hi - lo + 1) / 2;
                sxx += (hi * (hi + 1) * (2 * hi + 1) - (lo - 1) * lo * (2 * lo - 1)) / 6;
            }
            int32_t left = r->runs[2 * k0], right = r->runs[2 * k1 - 1] - 1;
            m00 += c; m10 += sx; m20 += sxx;
            m01 += c * y; m11 += sx * y; m02 += c * (int64_t)y * y;
            pts[2 * np] = left; pts[2 * np + 1] = y; np++;
            if (right != left) { pts[2 * np] = right; pts[2 * np + 1] = y; np++; }
        }
        double *o = out + 6 * i;
        memset(o, 0, 6 * sizeof(double));
        if (!m00) continue;
        double d00 = (double)m00, d10 = (double)m10, d01 = (double)m01;
        double inv = 1. / d00, cx = d10 * inv, cy = d01 * inv; /* OpenCV's central moments */
        double mu20 = (double)m20 - d10 * cx, mu11 = (double)m11 - d10 * cy, mu02 = (double)m02 - d01 * cy;
        double theta = 0.5 * atan2(2 * mu11, mu20 - mu02), a = remainder(theta + M_PI / 2, M_PI);
        int64_t k = monotone_chain(pts, np, hull);
        double area2 = 0, perim = 0;
        for (int64_t j = 0; j < k; j++) {
            const int32_t *p = hull + 2 * j, *q = hull + 2 * ((j + 1) % k);
            area2 += (double)p[0] * q[1] - (double)p[1] * q[0];
            /* OpenCV's arcLength: float sides, float sqrt (sums of these floats in double are exact
             * here, so the order of the vertices does not matter) */
            float dx = (float)(q[0] - p[0]), dy = (float)(q[1] - p[1]), d2 = dx * dx + dy * dy;
            perim += (double)sqrtf(d2);
        }
        double hull_area = fabs(area2) * 0.5 + perim / 2 + 1;
        double solidity = d00 / hull_area;
        o[0] = d00;
        o[1] = ((double)sp.x0 + d10 / d00) + 0.5;
        o[2] = ((double)sp.y0 + d01 / d00) + 0.5;
        o[3] = a <= -M_PI / 2 ? M_PI / 2 : a;
        o[4] = solidity < 1.0 ? solidity : 1.0;
        o[5] = hull_area;
    }
    return ES_OK;
}

/* First x in [lo, hi) with g(x) >= v, g nondecreasing (hi when none). */
#define G(x) (sign * ((((double)((x) + x0) + 0.5) - cx) * m0 + ty))
#define FIRST_AT_LEAST(lo, hi, v, res) do { int32_t l_ = (lo), h_ = (hi); \
    while (l_ < h_) { int32_t mid = l_ + (h_ - l_) / 2; if (G(mid) >= (v)) h_ = mid; else l_ = mid + 1; } \
    (res) = l_; } while (0)
#define FIRST_ABOVE(lo, hi, v, res) do { int32_t l_ = (lo), h_ = (hi); \
    while (l_ < h_) { int32_t mid = l_ + (h_ - l_) / 2; if (G(mid) > (v)) h_ = mid; else l_ = mid + 1; } \
    (res) = l_; } while (0)

int es_runs_extents(const es_runs *r, const double *params, double *out, int64_t cap) {
    int st = es_check_runs(r);
    if (st != ES_OK) return st;
    if (r->n > 0 && (!out || !params)) return ES_ERR_ARG;
    if (cap < r->n) return ES_ERR_CAPACITY;
    for (int64_t i = 0; i < r->n; i++) {
        es_span sp = r->spans[i];
        const double *p = params + 5 * i;
        double cx = p[0], cy = p[1], c0 = p[2], c1 = p[3], half = p[4];
        double m0 = -c1, m1 = c0, sign = m0 < 0 ? -1.0 : 1.0; /* g = sign * t is nondecreasing in x */
        int band = half > 0; /* false for NaN */
        double t_lo = INFINITY, t_hi = -INFINITY, s_lo = INFINITY, s_hi = -INFINITY;
        double b_lo = INFINITY, b_hi = -INFINITY;
        int64_t x0 = sp.x0;
        for (int32_t y = 0; y < sp.h; y++) {
            int64_t row = r->first_row[i] + y;
            double ry = ((double)((int64_t)y + sp.y0) + 0.5) - cy, ty = ry * m1, sy = ry * c1;
            for (int64_t k = r->row_start[row]; k < r->row_start[row + 1]; k++) {
                int32_t a = r->runs[2 * k], end = r->runs[2 * k + 1];
                int32_t ends[2] = {a, end - 1};
                for (int e = 0; e < 2; e++) {
                    double rx = ((double)(ends[e] + x0) + 0.5) - cx, t = rx * m0 + ty, s = rx * c0 + sy;
                    if (t < t_lo) t_lo = t;
                    if (t > t_hi) t_hi = t;
                    if (s < s_lo) s_lo = s;
                    if (s > s_hi) s_hi = s;
                }
                /* pixels with -half <= g <= half: [first g >= -half, first g > half); g is monotone, so
                 * a run whose last pixel is below the band or whose first is above it has none (the
                 * common case away from the centroid: two evaluations instead of two bisections) */
                if (band && G(end - 1) >= -half && G(a) <= half) {
                    int32_t first, stop;
                    FIRST_AT_LEAST(a, end, -half, first);
                    FIRST_ABOVE(first, end, half, stop);
                    if (first < stop) {
                        int32_t in[2] = {first, stop - 1};
                        for (int e = 0; e < 2; e++) {
                            double rx = ((double)(in[e] + x0) + 0.5) - cx, s = rx * c0 + sy;
                            if (s < b_lo) b_lo = s;
                            if (s > b_hi) b_hi = s;
                        }
                    }
                }
            }
        }
        double *o = out + 4 * i;
        int any = b_lo <= b_hi;
        o[0] = t_lo; o[1] = t_hi; o[2] = any ? b_lo : s_lo; o[3] = any ? b_hi : s_hi;
    }
    return ES_OK;
}

int es_sweep_hits(const uint8_t *sweep, int32_t sw, int32_t sh, int32_t sx0, int32_t sy0, const es_bitmaps *b,
                  const int64_t *which, int64_t nwhich, uint8_t *scratch, int64_t scratch_cap, int64_t *area,
                  int64_t *hit) {
    int st = es_check_bitmaps(b);
    if (st != ES_OK) return st;
    if (!sweep || !area || !hit || sw < 0 || sh < 0 || nwhich < 0 || (nwhich > 0 && !which)) return ES_ERR_ARG;
    if (!scratch || scratch_cap < sw) return ES_ERR_CAPACITY;
    for (int64_t k = 0; k < nwhich; k++)
        if (which[k] < 0 || which[k] >= b->n) return ES_ERR_ARG;
    int64_t a = 0, h = 0;
    for (int32_t y = 0; y < sh; y++) { /* only between the row's first and last swept pixel */
        const uint8_t *srow = sweep + (size_t)y * (size_t)sw;
        int32_t lo = 0, hi = sw;
        uint64_t v;
        for (; lo + 8 <= hi; lo += 8) { memcpy(&v, srow + lo, 8); if (v) break; }
        while (lo < hi && !srow[lo]) lo++;
        if (lo == hi) continue;
        for (; hi - 8 >= lo; hi -= 8) { memcpy(&v, srow + hi - 8, 8); if (v) break; }
        while (!srow[hi - 1]) hi--;
        memset(scratch + lo, 0, (size_t)(hi - lo));
        int64_t iy = (int64_t)sy0 + y;
        for (int64_t k = 0; k < nwhich; k++) { /* union of the other masks on this row */
            es_span sp = b->spans[which[k]];
            if (iy < sp.y0 || iy >= (int64_t)sp.y0 + sp.h) continue;
            int64_t ax0 = (int64_t)sx0 + lo, ax1 = (int64_t)sx0 + hi;
            if (ax0 < sp.x0) ax0 = sp.x0;
            if (ax1 > (int64_t)sp.x0 + sp.w) ax1 = (int64_t)sp.x0 + sp.w;
            const uint8_t *src = b->bits + b->offsets[which[k]] + (size_t)(iy - sp.y0) * (size_t)sp.w + (size_t)(ax0 - sp.x0);
            uint8_t *dst = scratch + (ax0 - sx0);
            for (int64_t x = 0; x < ax1 - ax0; x++) dst[x] |= src[x] != 0;
        }
        for (int32_t x = lo; x < hi; x++) {
            int s = srow[x] != 0;
            a += s;
            h += s & scratch[x];
        }
    }
    *area = a;
    *hit = h;
    return ES_OK;
}
