/* es_render.c - per-instance mask logits and bilinear resampling, row by row.
 *
 * Step 5 of edgeseg/decode/reference.py (proto), edgeseg/decode/reference_roi.py
 * (roi) and step 2 of edgeseg/decode/reference_maskfirst.py (map), in the same
 * floating-point order. Speed comes from doing less, never from
 * changing the arithmetic: logits only over the map window under each box, and whole
 * runs of output pixels filled at once where the 4 surrounding logits guarantee the
 * outcome.
 */
#include "es_render.h"

#include <math.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* A logit in [FG_MIN, FG_MAX] is "surely positive": with bilinear weights w, 1-w in [0, 1]
 * (one of them >= 0.5) every product stays normal and the sums cannot overflow, so v > 0.
 * A logit that is not > 0 (including NaN) can never make v > 0. */
#define FG_MIN 1e-30f
#define FG_MAX 1e30f
enum { CELL_MIXED = 0, CELL_FG = 1, CELL_BG = 2 };

/* RLE toggle capacity: plenty for masks with a few runs per column; more falls back to a plain scan. */
static size_t toggle_cap(size_t w, size_t h) { return 8 * w + 2 * h + 64; }

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

size_t es_workspace_size(int64_t hp, int64_t wp, int orig_h, int orig_w) {
    if (hp <= 0 || wp <= 0 || orig_h <= 0 || orig_w <= 0) return 0;
    size_t map = (size_t)hp * (size_t)wp, w = (size_t)orig_w, h = (size_t)orig_h;
    return align64(map * sizeof(float)) + align64(map) + 3 * align64(w * sizeof(float)) +
           align64(h * sizeof(float)) + 3 * align64(w * sizeof(int32_t)) + 2 * align64(h * sizeof(int32_t)) +
           align64(w) + align64(w * h) + 3 * align64(toggle_cap(w, h) * sizeof(int32_t)) +
           align64((w + 1) * sizeof(int32_t)) + 64;
}

es_work es_carve(uint8_t *base, int64_t hp, int64_t wp, int oh, int ow) {
    es_work t;
    size_t map = (size_t)hp * (size_t)wp, w = (size_t)ow, h = (size_t)oh;
    uint8_t *p = (uint8_t *)(((uintptr_t)base + 63) & ~(uintptr_t)63);
#define TAKE(field, type, count) t.field = (type *)p; p += align64((count) * sizeof(type))
    TAKE(logits, float, map); TAKE(cls, uint8_t, map);
    TAKE(fx, float, w); TAKE(omfx, float, w); TAKE(fy, float, h);
    TAKE(xi0, int32_t, w); TAKE(xi1, int32_t, w); TAKE(run_end, int32_t, w);
    TAKE(yi0, int32_t, h); TAKE(yi1, int32_t, h);
    TAKE(rowbuf, uint8_t, w); TAKE(bitmap, uint8_t, w * h);
    t.ev_cap = (int64_t)toggle_cap(w, h);
    TAKE(ev_col, int32_t, (size_t)t.ev_cap); TAKE(ev_row, int32_t, (size_t)t.ev_cap);
    TAKE(toggles, int32_t, (size_t)t.ev_cap); TAKE(col_start, int32_t, w + 1);
    (void)p;
#undef TAKE
    return t;
}

static inline float tget3(const es_tensor *t, int64_t i, int64_t j, int64_t k) {
    int64_t off = i * t->strides[0] + j * t->strides[1] + k * t->strides[2];
    switch (t->dtype) {
    case ES_I8: return ((float)((const int8_t *)t->data)[off] - t->zero_point) * t->scale;
    case ES_U8: return ((float)((const uint8_t *)t->data)[off] - t->zero_point) * t->scale;
    default: return ((const float *)t->data)[off];
    }
}

/* Sample position p (float64, finite) -> neighbours i0, i1 and weight f, p clamped to [0, size-1]. */
static void axis_from_positions(double p, int32_t size, int32_t *i0, int32_t *i1, float *f) {
    double hi = (double)(size - 1);
    p = p < 0.0 ? 0.0 : (p > hi ? hi : p); /* p is finite here */
    double fl = floor(p);
    *i0 = (int32_t)fl;
    *i1 = *i0 + 1 < size ? *i0 + 1 : size - 1;
    *f = (float)(p - fl);
}

/* proto: p = ((x + 0.5) * scale + pad) * (size / input) - 0.5 */
static void proto_axis(int32_t start, int32_t n, double scale, int pad, int32_t size, int input, int32_t *i0,
                       int32_t *i1, float *f) {
    double ratio = (double)size / (double)input;
    for (int32_t j = 0; j < n; j++)
        axis_from_positions((((double)(start + j) + 0.5) * scale + (double)pad) * ratio - 0.5, size, &i0[j], &i1[j],
                            &f[j]);
}

/* roi: p = ((x + 0.5) - lo) * (size / (hi - lo)) - 0.5, ratio 0 for an empty box */
static void roi_axis(int32_t start, int32_t n, float lo, float hi, int32_t size, int32_t *i0, int32_t *i1, float *f) {
    double dlo = (double)lo, dhi = (double)hi;
    double ratio = dhi > dlo ? (double)size / (dhi - dlo) : 0.0;
    for (int32_t j = 0; j < n; j++)
        axis_from_positions((((double)(start + j) + 0.5) - dlo) * ratio - 0.5, size, &i0[j], &i1[j], &f[j]);
}

/* Logits of the window: proto = sum_k c[k] * P[k] in float32, k ascending; roi = the map itself. */
static void window_logits(const es_mask_job *job, int64_t i, const es_instance *in, float *L) {
    const es_tensor *m = job->maps;
    int64_t ww = in->ww, wh = in->wh;
    if (job->mode != ES_MODE_PROTO) { /* roi and map: instance i's own map */
        for (int64_t y = 0; y < wh; y++)
            for (int64_t x = 0; x < ww; x++) L[y * ww + x] = tget3(m, i, in->wy0 + y, in->wx0 + x);
        return;
    }
    const float *c = job->coeffs + i * m->shape[0];
    if (m->dtype == ES_F32 && m->strides[2] == 1) {
        /* float32 rows: the whole sum over k per output element while it sits in a register (the
         * same additions in the same order, k ascending from 0.0f, so the same bits as below) */
        int64_t nk = m->shape[0];
        for (int64_t y = 0; y < wh; y++) {
            float *lr = L + y * ww;
            const float *row0 = (const float *)m->data + (in->wy0 + y) * m->strides[1] + in->wx0;
            int64_t x = 0;
#if defined(__SSE2__)
            for (; x + 4 <= ww; x += 4) {
                __m128 acc = _mm_setzero_ps();
                for (int64_t k = 0; k < nk; k++)
                    acc = _mm_add_ps(acc, _mm_mul_ps(_mm_set1_ps(c[k]), _mm_loadu_ps(row0 + k * m->strides[0] + x)));
                _mm_storeu_ps(lr + x, acc);
            }
#endif
            for (; x < ww; x++) {
                float acc = 0.0f;
                for (int64_t k = 0; k < nk; k++) acc = acc + c[k] * row0[k * m->strides[0] + x];
                lr[x] = acc;
            }
        }
        return;
    }
    for (int64_t q = 0; q < ww * wh; q++) L[q] = 0.0f;
    for (int64_t k = 0; k < m->shape[0]; k++) {
        float ck = c[k], zp = m->zero_point, sc = m->scale;
        for (int64_t y = 0; y < wh; y++) {
            float *lr = L + y * ww;
            int64_t base = k * m->strides[0] + (in->wy0 + y) * m->strides[1] + in->wx0 * m->strides[2], s = m->strides[2];
            if (m->dtype == ES_F32) {
                const float *pr = (const float *)m->data + base;
                if (s == 1) for (int64_t x = 0; x < ww; x++) lr[x] = lr[x] + ck * pr[x];
                else for (int64_t x = 0; x < ww; x++) lr[x] = lr[x] + ck * pr[x * s];
            } else if (m->dtype == ES_I8) {
                const int8_t *pr = (const int8_t *)m->data + base;
                for (int64_t x = 0; x < ww; x++) lr[x] = lr[x] + ck * (((float)pr[x * s] - zp) * sc);
            } else {
                const uint8_t *pr = (const uint8_t *)m->data + base;
                for (int64_t x = 0; x < ww; x++) lr[x] = lr[x] + ck * (((float)pr[x * s] - zp) * sc);
            }
        }
    }
}

void es_prepare(const es_mask_job *job, int64_t i, es_work *w, es_instance *in) {
    const es_tensor *m = job->maps;
    int32_t mh = (int32_t)m->shape[1], mw = (int32_t)m->shape[2];
    const float *b = job->boxes + 4 * i;
    in->sp = job->spans[i];
    int32_t n = in->sp.w, h = in->sp.h;
    if (n == 0 || h == 0) { in->nruns = 0; return; }
    if (job->mode != ES_MODE_ROI) { /* proto and map: through the letterbox */
        const es_letterbox *lb = job->lb;
        proto_axis(in->sp.x0, n, lb->scale_x, lb->pad_left, mw, lb->input_w, w->xi0, w->xi1, w->fx);
        proto_axis(in->sp.y0, h, lb->scale_y, lb->pad_top, mh, lb->input_h, w->yi0, w->yi1, w->fy);
    } else {
        roi_axis(in->sp.x0, n, b[0], b[2], mw, w->xi0, w->xi1, w->fx);
        roi_axis(in->sp.y0, h, b[1], b[3], mh, w->yi0, w->yi1, w->fy);
    }
    if (job->flags & ES_FULL_LOGITS) {
        in->wx0 = 0; in->wy0 = 0; in->ww = mw; in->wh = mh;
    } else {
        in->wx0 = w->xi0[0]; in->ww = w->xi1[n - 1] + 1 - in->wx0;
        in->wy0 = w->yi0[0]; in->wh = w->yi1[h - 1] + 1 - in->wy0;
    }
    window_logits(job, i, in, w->logits);
    for (int64_t q = 0; q < in->ww * in->wh; q++) {
        float v = w->logits[q];
        w->cls[q] = (v >= FG_MIN && v <= FG_MAX) ? CELL_FG : (!(v > 0.0f) ? CELL_BG : CELL_MIXED);
    }
    int32_t r = 0;
    for (int32_t j = 0; j < n; j++) {
        w->omfx[j] = 1.0f - w->fx[j];
        if (j + 1 == n || w->xi0[j + 1] != w->xi0[j]) w->run_end[r++] = j + 1;
    }
    in->nruns = r;
}

/* dst[s..e) of one mixed cell: v = (l00 (1-fx) + l01 fx) (1-fy) + (l10 (1-fx) + l11 fx) fy > 0 per pixel,
 * four pixels at a time with SSE2 (the same IEEE single operations in the same order per lane, so the
 * bytes equal the scalar loop's), the rest one by one. */
static void mixed_cell(const es_work *w, int32_t s, int32_t e, float l00, float l01, float l10, float l11, float fy,
                       float omfy, uint8_t *dst) {
    int32_t x = s;
#if defined(__SSE2__)
    static const uint32_t bytes4[16] = {
        0x00000000u, 0x00000001u, 0x00000100u, 0x00000101u, 0x00010000u, 0x00010001u, 0x00010100u, 0x00010101u,
        0x01000000u, 0x01000001u, 0x01000100u, 0x01000101u, 0x01010000u, 0x01010001u, 0x01010100u, 0x01010101u};
    __m128 a0 = _mm_set1_ps(l00), a1 = _mm_set1_ps(l01), b0 = _mm_set1_ps(l10), b1 = _mm_set1_ps(l11);
    __m128 vy = _mm_set1_ps(fy), vomy = _mm_set1_ps(omfy), zero = _mm_setzero_ps();
    for (; x + 4 <= e; x += 4) {
        __m128 om = _mm_loadu_ps(w->omfx + x), f = _mm_loadu_ps(w->fx + x);
        __m128 top = _mm_add_ps(_mm_mul_ps(a0, om), _mm_mul_ps(a1, f));
        __m128 bottom = _mm_add_ps(_mm_mul_ps(b0, om), _mm_mul_ps(b1, f));
        __m128 v = _mm_add_ps(_mm_mul_ps(top, vomy), _mm_mul_ps(bottom, vy));
        uint32_t four = bytes4[_mm_movemask_ps(_mm_cmpgt_ps(v, zero))]; /* lane k -> byte k (little-endian) */
        memcpy(dst + x, &four, 4);
    }
#endif
    for (; x < e; x++) {
        float top = l00 * w->omfx[x] + l01 * w->fx[x];
        float bottom = l10 * w->omfx[x] + l11 * w->fx[x];
        float v = top * omfy + bottom * fy;
        dst[x] = v > 0.0f;
    }
}

void es_render_row(const es_mask_job *job, const es_work *w, const es_instance *in, int32_t y, uint8_t *dst) {
    int64_t r0 = (w->yi0[y] - in->wy0) * in->ww, r1 = (w->yi1[y] - in->wy0) * in->ww;
    const float *l0 = w->logits + r0, *l1 = w->logits + r1;
    const uint8_t *c0 = w->cls + r0, *c1 = w->cls + r1;
    float fy = w->fy[y], omfy = 1.0f - fy;
    int blockfill = !(job->flags & ES_NO_BLOCKFILL);
    int32_t s = 0, fill_from = 0; /* dst[fill_from, s) is owed a fill of fill_value (merged across cells) */
    int fill_value = -1;
    for (int32_t r = 0; r < in->nruns; r++) {
        int32_t e = w->run_end[r];
        int64_t a = w->xi0[s] - in->wx0, b = w->xi1[s] - in->wx0;
        int cell = blockfill ? (c0[a] & c0[b] & c1[a] & c1[b]) : CELL_MIXED;
        int value = cell == CELL_FG ? 1 : (cell == CELL_BG ? 0 : -1);
        if (value != fill_value) {
            if (fill_value >= 0) memset(dst + fill_from, fill_value, (size_t)(s - fill_from));
            fill_value = value;
            fill_from = s;
        }
        if (value < 0) mixed_cell(w, s, e, l0[a], l0[b], l1[a], l1[b], fy, omfy, dst);
        s = e;
    }
    if (fill_value >= 0) memset(dst + fill_from, fill_value, (size_t)(s - fill_from));
}

int es_check_job(const es_mask_job *job) {
    if (!job || !job->maps || !job->lb || job->n < 0) return ES_ERR_ARG;
    if (es_check_letterbox(job->lb, job->mode != ES_MODE_ROI)) return ES_ERR_ARG;
    const es_tensor *m = job->maps;
    int oh = job->lb->orig_h, ow = job->lb->orig_w;
    if (m->ndim != 3 || !m->data || m->shape[1] < 1 || m->shape[2] < 1 || oh < 1 || ow < 1) return ES_ERR_ARG;
    if (m->dtype != ES_F32 && m->dtype != ES_I8 && m->dtype != ES_U8) return ES_ERR_ARG;
    if (job->mode == ES_MODE_PROTO) {
        if (!job->coeffs || job->lb->input_w < 1 || job->lb->input_h < 1 || m->shape[0] < 1) return ES_ERR_ARG;
    } else if (job->mode == ES_MODE_ROI || job->mode == ES_MODE_MAP) {
        if (job->coeffs || m->shape[0] != job->n) return ES_ERR_ARG;
    } else {
        return ES_ERR_ARG;
    }
    if (job->n > 0 && (!job->boxes || !job->spans)) return ES_ERR_ARG;
    for (int64_t i = 0; i < job->n; i++) {
        es_span s = job->spans[i];
        if (s.x0 < 0 || s.y0 < 0 || s.w < 0 || s.h < 0 || s.x0 > ow - s.w || s.y0 > oh - s.h) return ES_ERR_ARG;
    }
    return ES_OK;
}
