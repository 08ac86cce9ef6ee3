/* es_grasp.c - grasp geometry of masks: moments, convex hull, extents (see es_runs.h, es_post.h).
 *
 * Shapes and extents read runs of foreground per row (es_runs.c makes them from the decoder's
 * bitmaps once), so a mask costs about its number of runs instead of its area: moments come in
 * closed form per run, the hull from the row extremes, and the extents from the run ends (s and
 * t are linear in x along a row, and the rows' pixels inside the finger band are one interval,
 * solved for and then checked against t, which is monotone in x in floating point as well). The
 * fingers' sweeps are counted against the neighbours' runs, interval by swept interval, all grasps of a
 * frame in one call.
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

/* g(x) = sign * t at column x of a row (t = rel . major), nondecreasing in x (also in floating point:
 * every step is a monotone rounding of a monotone function). */
#define G(x) (sign * ((((double)((x) + x0) + 0.5) - cx) * m0 + ty))

/* First x in [lo, hi) with g(x) >= v (above: g(x) > v), hi when none. g is linear, so the solution
 * of the real equation is a guess that a step or two corrects; the corrections test g itself, so the
 * answer is the first such x whatever the guess (a bad one only costs steps). */
static int32_t first_g(int32_t lo, int32_t hi, double v, int above, double sign, int64_t x0, double cx, double m0,
                       double ty) {
    double slope = sign * m0, guess = slope > 0 ? (v - sign * ty) / slope - (double)x0 - 0.5 + cx : (double)lo;
    int32_t x = lo;
    if (guess > (double)hi) x = hi;
    else if (guess > (double)lo) x = (int32_t)ceil(guess); /* NaN stays at lo */
#define PAST(xx) (above ? G(xx) > v : G(xx) >= v)
    while (x > lo && PAST(x - 1)) x--;
    while (x < hi && !PAST(x)) x++;
#undef PAST
    return x;
}

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
                 * common case away from the centroid: two evaluations instead of two searches) */
                if (band && G(end - 1) >= -half && G(a) <= half) {
                    int32_t first = first_g(a, end, -half, 0, sign, x0, cx, m0, ty);
                    int32_t stop = first_g(first, end, half, 1, sign, x0, cx, m0, ty);
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

/* floor / ceil of a finite double as int64 (|v| < 1e7 checked by the caller). */
static int64_t floor64(double v) { return (int64_t)floor(v); }
static int64_t ceil64(double v) { return (int64_t)ceil(v); }

int es_sweep_quads(const double *params, int64_t m, double finger_width, double finger_thickness, int32_t ih,
                   int32_t iw, int32_t *windows, int32_t *pts) {
    if (m < 0 || ih < 1 || iw < 1 || (m > 0 && (!params || !windows || !pts))) return ES_ERR_ARG;
    for (int64_t k = 0; k < m; k++) {
        const double *p = params + 7 * k;
        double cx = p[0], cy = p[1], c0 = p[2], c1 = p[3], scale = p[6];
        double hp = finger_width * scale / 2, outer = p[5] / 2 + finger_thickness * scale, inner = p[4] / 2;
        if (!(hp >= 0.5)) hp = isnan(hp) ? hp : 0.5; /* np.maximum(., 0.5) */
        const double a[8] = {-inner, -outer, -outer, -inner, inner, outer, outer, inner};
        const double b[8] = {-hp, -hp, hp, hp, -hp, -hp, hp, hp};
        double q[8][2], lo[2] = {INFINITY, INFINITY}, hi[2] = {-INFINITY, -INFINITY};
        for (int v = 0; v < 8; v++) {
            q[v][0] = (cx + a[v] * c0) + b[v] * -c1; /* centre + a * closing + b * major, major = (-sin, cos) */
            q[v][1] = (cy + a[v] * c1) + b[v] * c0;
            for (int d = 0; d < 2; d++) {
                if (!(fabs(q[v][d]) < 1e7)) return ES_ERR_ARG; /* NaN, or fixed-point coordinates near int32's end */
                if (q[v][d] < lo[d]) lo[d] = q[v][d];
                if (q[v][d] > hi[d]) hi[d] = q[v][d];
            }
        }
        int64_t size[2] = {iw, ih};
        int64_t org[2]; /* the reference's window over both quads: its origin sets the rounding */
        int empty = 0;
        for (int d = 0; d < 2; d++) {
            int64_t o = floor64(lo[d]) - 1, e = ceil64(hi[d]) + 1;
            org[d] = o > 0 ? o : 0;
            if ((e < size[d] ? e : size[d]) <= org[d]) empty = 1;
        }
        for (int f = 0; f < 2; f++) {
            int32_t *win = windows + 8 * k + 4 * f, *pt = pts + 16 * k + 8 * f;
            double flo[2] = {INFINITY, INFINITY}, fhi[2] = {-INFINITY, -INFINITY};
            for (int v = 4 * f; v < 4 * f + 4; v++)
                for (int d = 0; d < 2; d++) {
                    if (q[v][d] < flo[d]) flo[d] = q[v][d];
                    if (q[v][d] > fhi[d]) fhi[d] = q[v][d];
                }
            for (int d = 0; d < 2; d++) {
                int64_t o = floor64(flo[d]) - 1, e = ceil64(fhi[d]) + 1;
                o = o > 0 ? o : 0;
                e = e < size[d] ? e : size[d];
                win[d] = (int32_t)(o < size[d] ? o : size[d]);
                win[2 + d] = (int32_t)(e > o && !empty ? e - o : 0);
                for (int v = 0; v < 4; v++) /* the reference's rounding, then moved by whole pixels */
                    pt[2 * v + d] = (int32_t)rint((q[4 * f + v][d] - ((double)org[d] + 0.5)) * 16) - (int32_t)(16 * (o - org[d]));
            }
        }
    }
    return ES_OK;
}

/* Runs of nonzero bytes of row[0, w) shifted by dx into out (pairs start, end exclusive); returns how many. */
static int64_t row_runs(const uint8_t *row, int32_t w, int64_t dx, int32_t *out) {
    int64_t n = 0;
    int32_t x = 0;
    while (x < w) {
        uint64_t v;
        for (; x + 8 <= w; x += 8) { memcpy(&v, row + x, 8); if (v) break; }
        while (x < w && !row[x]) x++;
        if (x >= w) break;
        int32_t e = x + 1;
        while (e < w && row[e]) e++;
        out[2 * n] = (int32_t)(x + dx); out[2 * n + 1] = (int32_t)(e + dx); n++;
        x = e;
    }
    return n;
}

/* The union of two sorted lists of disjoint intervals (a: na pairs, b: nb pairs) into out, sorted and
 * disjoint (touching intervals may stay apart); returns its pairs. */
static int64_t union_runs(const int32_t *a, int64_t na, const int32_t *b, int64_t nb, int32_t *out) {
    int64_t i = 0, j = 0, n = 0;
    while (i < na || j < nb) {
        const int32_t *p = (j >= nb || (i < na && a[2 * i] <= b[2 * j])) ? a + 2 * i++ : b + 2 * j++;
        if (n > 0 && p[0] <= out[2 * n - 1]) {
            if (p[1] > out[2 * n - 1]) out[2 * n - 1] = p[1];
        } else {
            out[2 * n] = p[0]; out[2 * n + 1] = p[1]; n++;
        }
    }
    return n;
}

/* Work of sweep k: its neighbours that meet a finger window (int64 each), marks over the two windows'
 * joint columns (rounded up to 8 bytes), then int32 room for a row's run ends of each window (w + 2
 * each) and of their union (both together). */
static int64_t sweep_work(const es_sweeps *s, int64_t k) {
    const int32_t *win = s->windows + 8 * k;
    int64_t nb = s->bounds[k + 1] - s->bounds[k];
    int64_t lo = win[0] < win[4] ? win[0] : win[4];
    int64_t hi = (int64_t)win[0] + win[2] > (int64_t)win[4] + win[6] ? (int64_t)win[0] + win[2] : (int64_t)win[4] + win[6];
    int64_t runs = 2 * ((int64_t)win[2] + 2 + (int64_t)win[6] + 2);
    return 8 * (nb > 0 ? nb : 0) + ((hi - lo + 7) & ~(int64_t)7) + 4 * runs;
}

int64_t es_sweeps_work_size(const es_sweeps *s) {
    int64_t need = 0;
    for (int64_t k = 0; s && s->windows && s->bounds && k < s->m; k++)
        if (sweep_work(s, k) > need) need = sweep_work(s, k);
    return need;
}

/* Whether mask span sp meets window win (x0, y0, w, h). */
static int meets(es_span sp, const int32_t *win) {
    return win[2] > 0 && win[3] > 0 && sp.w > 0 && sp.h > 0 && (int64_t)sp.x0 < (int64_t)win[0] + win[2] &&
           (int64_t)win[0] < (int64_t)sp.x0 + sp.w && (int64_t)sp.y0 < (int64_t)win[1] + win[3] &&
           (int64_t)win[1] < (int64_t)sp.y0 + sp.h;
}

int es_runs_sweeps(const es_runs *r, const es_sweeps *s, uint8_t *work, int64_t work_size, int64_t *out) {
    int st = es_check_runs(r);
    if (st != ES_OK) return st;
    if (!s || s->m < 0 || s->nbytes < 0 || s->nwhich < 0 || (s->m > 0 && (!s->windows || !s->offsets || !s->bounds || !out)) ||
        (s->nwhich > 0 && !s->which) || (s->nbytes > 0 && !s->bytes) || !work)
        return ES_ERR_ARG;
    for (int64_t k = 0; k < s->nwhich; k++)
        if (s->which[k] < 0 || s->which[k] >= r->n) return ES_ERR_ARG;
    for (int64_t k = 0; k < s->m; k++) {
        for (int part = 0; part < 2; part++) {
            const int32_t *win = s->windows + 8 * k + 4 * part;
            int64_t o = s->offsets[2 * k + part], size = (int64_t)win[2] * win[3];
            if (win[0] < 0 || win[1] < 0 || win[2] < 0 || win[3] < 0 || o < 0 || o > s->nbytes || size > s->nbytes - o)
                return ES_ERR_ARG;
        }
        if (s->bounds[k] < 0 || s->bounds[k + 1] < s->bounds[k] || s->bounds[k + 1] > s->nwhich) return ES_ERR_ARG;
        if (sweep_work(s, k) > work_size) return ES_ERR_CAPACITY;
    }
    for (int64_t k = 0; k < s->m; k++) {
        const int32_t *wa = s->windows + 8 * k, *wb = wa + 4;
        int64_t ux0 = wa[0] < wb[0] ? wa[0] : wb[0], a = 0, h = 0;
        int64_t y0 = wa[1] < wb[1] ? wa[1] : wb[1];
        int64_t y1 = (int64_t)wa[1] + wa[3] > (int64_t)wb[1] + wb[3] ? (int64_t)wa[1] + wa[3] : (int64_t)wb[1] + wb[3];
        int64_t uw = ((wa[0] + (int64_t)wa[2] > wb[0] + (int64_t)wb[2] ? wa[0] + (int64_t)wa[2] : wb[0] + (int64_t)wb[2]) - ux0);
        int64_t *live = (int64_t *)(void *)work, nlive = 0; /* the neighbours that meet a finger window */
        for (int64_t e = s->bounds[k]; e < s->bounds[k + 1]; e++)
            if (meets(r->spans[s->which[e]], wa) || meets(r->spans[s->which[e]], wb)) live[nlive++] = s->which[e];
        uint8_t *marks = work + 8 * (s->bounds[k + 1] - s->bounds[k]);
        int32_t *ra = (int32_t *)(void *)(marks + ((uw + 7) & ~(int64_t)7)), *rb = ra + wa[2] + 2,
                *un = rb + wb[2] + 2; /* a row of w bytes has at most w + 1 run ends */
        for (int64_t iy = y0; iy < y1; iy++) {
            int64_t na = 0, nb = 0;
            if (iy >= wa[1] && iy < (int64_t)wa[1] + wa[3])
                na = row_runs(s->bytes + s->offsets[2 * k] + (size_t)(iy - wa[1]) * (size_t)wa[2], wa[2], wa[0] - ux0, ra);
            if (iy >= wb[1] && iy < (int64_t)wb[1] + wb[3])
                nb = row_runs(s->bytes + s->offsets[2 * k + 1] + (size_t)(iy - wb[1]) * (size_t)wb[2], wb[2], wb[0] - ux0, rb);
            int64_t ns = union_runs(ra, na, rb, nb, un);
            for (int64_t q = 0; q < ns; q++) { /* one swept interval [lo, hi) of the row (columns from ux0) */
                int32_t lo = un[2 * q], hi = un[2 * q + 1];
                a += hi - lo;
                memset(marks + lo, 0, (size_t)(hi - lo));
                for (int64_t e = 0; e < nlive; e++) { /* union of the neighbours' runs */
                    int64_t j = live[e];
                    es_span sp = r->spans[j];
                    if (iy < sp.y0 || iy >= (int64_t)sp.y0 + sp.h) continue;
                    int64_t row = r->first_row[j] + (iy - sp.y0), shift = (int64_t)sp.x0 - ux0;
                    for (int64_t t = r->row_start[row]; t < r->row_start[row + 1]; t++) {
                        int64_t xa = r->runs[2 * t] + shift, xb = r->runs[2 * t + 1] + shift;
                        if (xb <= lo) continue;
                        if (xa >= hi) break; /* runs ascend */
                        if (xa < lo) xa = lo;
                        if (xb > hi) xb = hi;
                        memset(marks + xa, 1, (size_t)(xb - xa));
                    }
                }
                for (int32_t x = lo; x < hi; x++) h += marks[x];
            }
        }
        out[2 * k] = a;
        out[2 * k + 1] = h;
    }
    return ES_OK;
}
