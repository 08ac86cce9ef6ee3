/* es_masks.c - per-instance mask logits, bilinear resampling and the three outputs.
 *
 * Step 5 of edgeseg/decode/reference.py (proto) and edgeseg/decode/reference_roi.py
 * (roi), in the same floating-point order. Speed comes from doing less, never from
 * changing the arithmetic: logits only over the map window under each box; whole
 * runs of output pixels filled at once where the 4 surrounding logits guarantee the
 * outcome; full frames written with streaming stores from an L1-resident row.
 */
#include "es_decode.h"

#include <math.h>
#include <string.h>
#ifndef ES_NO_THREADS
#include <pthread.h>
#endif
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* A logit in [FG_MIN, FG_MAX] is "surely positive": with bilinear weights w, 1-w in [0, 1]
 * (one of them >= 0.5) every product stays normal and the sums cannot overflow, so v > 0.
 * A logit that is not > 0 (including NaN) can never make v > 0. */
#define FG_MIN 1e-30f
#define FG_MAX 1e30f
enum { CELL_MIXED = 0, CELL_FG = 1, CELL_BG = 2 };

/* Per-thread work memory, carved from the caller's buffer. */
typedef struct {
    float *logits, *fx, *omfx, *fy;
    uint8_t *cls, *rowbuf, *bitmap;
    int32_t *xi0, *xi1, *yi0, *yi1, *run_end;
    int32_t *ev_col, *ev_row, *col_start, *toggles; /* RLE: value changes, bucketed by column */
    int64_t ev_cap;
} work_t;

/* RLE toggle capacity: plenty for masks with a few runs per column; more falls back to a plain scan. */
static size_t toggle_cap(size_t w, size_t h) { return 8 * w + 2 * h + 64; }

/* One instance ready to render: window [wx0, wx0+ww) x [wy0, wy0+wh) of the logit map. */
typedef struct {
    es_span sp;
    int64_t wx0, wy0, ww, wh;
    int32_t nruns;
} inst_t;

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

size_t es_workspace_size(int64_t hp, int64_t wp, int orig_h, int orig_w) {
    if (hp <= 0 || wp <= 0 || orig_h <= 0 || orig_w <= 0) return 0;
    size_t map = (size_t)hp * (size_t)wp, w = (size_t)orig_w, h = (size_t)orig_h;
    return align64(map * sizeof(float)) + align64(map) + 3 * align64(w * sizeof(float)) +
           align64(h * sizeof(float)) + 3 * align64(w * sizeof(int32_t)) + 2 * align64(h * sizeof(int32_t)) +
           align64(w) + align64(w * h) + 3 * align64(toggle_cap(w, h) * sizeof(int32_t)) +
           align64((w + 1) * sizeof(int32_t)) + 64;
}

static work_t carve(uint8_t *base, int64_t hp, int64_t wp, int oh, int ow) {
    work_t t;
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
static void window_logits(const es_mask_job *job, int64_t i, const inst_t *in, float *L) {
    const es_tensor *m = job->maps;
    int64_t ww = in->ww, wh = in->wh;
    if (!job->coeffs) {
        for (int64_t y = 0; y < wh; y++)
            for (int64_t x = 0; x < ww; x++) L[y * ww + x] = tget3(m, i, in->wy0 + y, in->wx0 + x);
        return;
    }
    const float *c = job->coeffs + i * m->shape[0];
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

/* Coordinate maps, window, logits, cell classes and column runs of instance i. */
static void prepare(const es_mask_job *job, int64_t i, work_t *w, inst_t *in) {
    const es_tensor *m = job->maps;
    int32_t mh = (int32_t)m->shape[1], mw = (int32_t)m->shape[2];
    const float *b = job->boxes + 4 * i;
    in->sp = job->spans[i];
    int32_t n = in->sp.w, h = in->sp.h;
    if (n == 0 || h == 0) { in->nruns = 0; return; }
    if (job->coeffs) {
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

/* Row y (0-based inside the span) of instance `in` into dst[0 .. sp.w). */
static void render_row(const es_mask_job *job, const work_t *w, const inst_t *in, int32_t y, uint8_t *dst) {
    int64_t r0 = (w->yi0[y] - in->wy0) * in->ww, r1 = (w->yi1[y] - in->wy0) * in->ww;
    const float *l0 = w->logits + r0, *l1 = w->logits + r1;
    const uint8_t *c0 = w->cls + r0, *c1 = w->cls + r1;
    float fy = w->fy[y], omfy = 1.0f - fy;
    int blockfill = !(job->flags & ES_NO_BLOCKFILL);
    int32_t s = 0;
    for (int32_t r = 0; r < in->nruns; r++) {
        int32_t e = w->run_end[r];
        int64_t a = w->xi0[s] - in->wx0, b = w->xi1[s] - in->wx0;
        int cell = blockfill ? (c0[a] & c0[b] & c1[a] & c1[b]) : CELL_MIXED;
        if (cell == CELL_FG) memset(dst + s, 1, (size_t)(e - s));
        else if (cell == CELL_BG) memset(dst + s, 0, (size_t)(e - s));
        else {
            float l00 = l0[a], l01 = l0[b], l10 = l1[a], l11 = l1[b];
            for (int32_t x = s; x < e; x++) {
                float top = l00 * w->omfx[x] + l01 * w->fx[x];
                float bottom = l10 * w->omfx[x] + l11 * w->fx[x];
                float v = top * omfy + bottom * fy;
                dst[x] = v > 0.0f;
            }
        }
        s = e;
    }
}

static void put_bytes(uint8_t *dst, const uint8_t *src, size_t n) {
    if (src) memcpy(dst, src, n);
    else memset(dst, 0, n);
}

/* dst[0..n) = src[0..n) (zeros when src is NULL), with non-temporal stores when `stream`:
 * a full frame is written once and not read again soon, so it should bypass the caches. */
static void stream_copy(uint8_t *dst, const uint8_t *src, size_t n, int stream) {
#if defined(__SSE2__)
    if (stream) {
        size_t head = (16 - ((uintptr_t)dst & 15)) & 15;
        if (head > n) head = n;
        put_bytes(dst, src, head);
        dst += head; n -= head;
        if (src) src += head;
        for (; n >= 16; n -= 16, dst += 16) {
            _mm_stream_si128((__m128i *)dst, src ? _mm_loadu_si128((const __m128i *)src) : _mm_setzero_si128());
            if (src) src += 16;
        }
    }
#else
    (void)stream;
#endif
    put_bytes(dst, src, n);
}

static void fence(void) {
#if defined(__SSE2__)
    _mm_sfence();
#endif
}

/* ---- jobs: each runs a range of instances with its own work memory ---- */

typedef struct {
    const es_mask_job *job;
    int kind, tid, nthreads;
    const int64_t *offsets;
    uint8_t *out, *work;
    size_t work_size;
} task_t;

static void *run_task(void *arg) {
    task_t *t = arg;
    const es_mask_job *job = t->job;
    const es_tensor *m = job->maps;
    int oh = job->lb->orig_h, ow = job->lb->orig_w;
    work_t w = carve(t->work, m->shape[1], m->shape[2], oh, ow);
    size_t frame = (size_t)oh * (size_t)ow;
    int stream = !(job->flags & ES_NO_STREAM);
    if (t->kind == ES_FULL) memset(w.rowbuf, 0, (size_t)ow);
    for (int64_t i = t->tid; i < job->n; i += t->nthreads) {
        inst_t in;
        prepare(job, i, &w, &in);
        if (t->kind == ES_CROPPED) {
            uint8_t *dst = t->out + t->offsets[i];
            for (int32_t y = 0; y < in.sp.h && in.nruns; y++) render_row(job, &w, &in, y, dst + (size_t)y * (size_t)in.sp.w);
            continue;
        }
        uint8_t *f = t->out + (size_t)i * frame;
        if (in.nruns == 0) { stream_copy(f, NULL, frame, stream); continue; }
        stream_copy(f, NULL, (size_t)in.sp.y0 * (size_t)ow, stream);
        for (int32_t y = 0; y < in.sp.h; y++) {
            render_row(job, &w, &in, y, w.rowbuf + in.sp.x0);
            stream_copy(f + (size_t)(in.sp.y0 + y) * (size_t)ow, w.rowbuf, (size_t)ow, stream);
        }
        memset(w.rowbuf + in.sp.x0, 0, (size_t)in.sp.w);
        size_t below = (size_t)(in.sp.y0 + in.sp.h) * (size_t)ow;
        stream_copy(f + below, NULL, frame - below, stream);
    }
    if (t->kind == ES_FULL) fence();
    return NULL;
}

static int check_job(const es_mask_job *job) {
    if (!job || !job->maps || !job->lb || job->n < 0) return ES_ERR_ARG;
    const es_tensor *m = job->maps;
    int oh = job->lb->orig_h, ow = job->lb->orig_w;
    if (m->ndim != 3 || !m->data || m->shape[1] < 1 || m->shape[2] < 1 || oh < 1 || ow < 1) return ES_ERR_ARG;
    if (m->dtype != ES_F32 && m->dtype != ES_I8 && m->dtype != ES_U8) return ES_ERR_ARG;
    if (job->coeffs ? (job->lb->input_w < 1 || job->lb->input_h < 1 || m->shape[0] < 1) : m->shape[0] != job->n)
        return ES_ERR_ARG;
    if (job->n > 0 && (!job->boxes || !job->spans)) return ES_ERR_ARG;
    for (int64_t i = 0; i < job->n; i++) {
        es_span s = job->spans[i];
        if (s.x0 < 0 || s.y0 < 0 || s.w < 0 || s.h < 0 || s.x0 > ow - s.w || s.y0 > oh - s.h) return ES_ERR_ARG;
    }
    return ES_OK;
}

static int run_tasks(const es_mask_job *job, int kind, const int64_t *offsets, uint8_t *out, uint8_t *work,
                     size_t work_size, int threads) {
    const es_tensor *m = job->maps;
    size_t per = es_workspace_size(m->shape[1], m->shape[2], job->lb->orig_h, job->lb->orig_w);
    if (threads < 1) threads = 1;
    if (threads > job->n) threads = job->n > 0 ? (int)job->n : 1;
#ifdef ES_NO_THREADS
    threads = 1;
#endif
    if (!work || per == 0 || work_size / per < (size_t)threads) return ES_ERR_CAPACITY;
    task_t tasks[64];
    if (threads > 64) threads = 64;
    for (int t = 0; t < threads; t++)
        tasks[t] = (task_t){job, kind, t, threads, offsets, out, work + (size_t)t * per, per};
#ifndef ES_NO_THREADS
    pthread_t ids[64];
    int started = 0;
    for (int t = 1; t < threads; t++) {
        if (pthread_create(&ids[t], NULL, run_task, &tasks[t]) != 0) break;
        started = t;
    }
    run_task(&tasks[0]);
    for (int t = 1; t <= started; t++) pthread_join(ids[t], NULL);
    for (int t = started + 1; t < threads; t++) run_task(&tasks[t]); /* threads that failed to start */
#else
    run_task(&tasks[0]);
#endif
    return ES_OK;
}

int es_masks_cropped(const es_mask_job *job, const int64_t *offsets, uint8_t *out, int64_t cap, uint8_t *work,
                     size_t work_size, int threads) {
    int st = check_job(job);
    if (st != ES_OK) return st;
    if (job->n > 0 && (!offsets || !out)) return ES_ERR_ARG;
    for (int64_t i = 0; i < job->n; i++) {
        int64_t size = (int64_t)job->spans[i].w * job->spans[i].h;
        if (offsets[i] < 0 || offsets[i] > cap - size) return ES_ERR_CAPACITY;
    }
    return job->n ? run_tasks(job, ES_CROPPED, offsets, out, work, work_size, threads) : ES_OK;
}

int es_masks_full(const es_mask_job *job, uint8_t *out, int64_t cap, uint8_t *work, size_t work_size, int threads) {
    int st = check_job(job);
    if (st != ES_OK) return st;
    int64_t frame = (int64_t)job->lb->orig_h * job->lb->orig_w;
    if (job->n > 0 && !out) return ES_ERR_ARG;
    if (job->n > cap / frame) return ES_ERR_CAPACITY;
    return job->n ? run_tasks(job, ES_FULL, NULL, out, work, work_size, threads) : ES_OK;
}

/* ---- COCO RLE: runs in column-major order, then pycocotools' string compression ---- */

typedef struct {
    char *out;
    int64_t cap, len, prev[2], count;
    int full;
} rle_writer;

static void rle_emit(rle_writer *r, int64_t c) {
    int64_t x = c;
    if (r->count > 2) x -= r->prev[0]; /* delta against the count two places back */
    r->prev[0] = r->prev[1]; r->prev[1] = c; r->count++;
    int more = 1;
    while (more) {
        int64_t ch = x & 0x1f;
        x >>= 5; /* arithmetic shift, as Python's >> */
        more = (ch & 0x10) ? x != -1 : x != 0;
        if (more) ch |= 0x20;
        if (r->len >= r->cap) { r->full = 1; return; }
        r->out[r->len++] = (char)(ch + 48);
    }
}

/* Reference encoder: walks the image column by column (any mask; used when toggles overflow). */
static void rle_encode_scan(const uint8_t *bm, es_span sp, int64_t ih, int64_t iw, rle_writer *r) {
    int64_t run = (int64_t)sp.x0 * ih, below = ih - sp.y0 - sp.h;
    int v = 0;
    for (int32_t j = 0; j < sp.w && sp.h > 0; j++) {
        if (v && sp.y0 > 0) { rle_emit(r, run); run = 0; v = 0; }
        run += sp.y0;
        for (int32_t y = 0; y < sp.h; y++) {
            int b = bm[(size_t)y * (size_t)sp.w + (size_t)j] != 0;
            if (b != v) { rle_emit(r, run); run = 0; v = b; }
            run++;
        }
        if (v && below > 0) { rle_emit(r, run); run = 0; v = 0; }
        run += below;
    }
    if (sp.h == 0) run += (int64_t)sp.w * ih;
    int64_t after = (iw - sp.x0 - sp.w) * ih;
    if (v && after > 0) { rle_emit(r, run); run = 0; v = 0; }
    rle_emit(r, run + after);
}

/* Value changes of the column-major pixel stream, found row by row (rows are mostly equal to the
 * row above, compared 8 bytes at a time) and bucketed by column. Returns 0 on overflow. */
static int collect_toggles(const uint8_t *bm, es_span sp, int64_t ih, work_t *w) {
    int32_t cw = sp.w, ch = sp.h;
    int64_t n = 0, cap = w->ev_cap, below = ih - sp.y0 - ch;
    int wrap = sp.y0 == 0 && below == 0; /* full-height strip: a column continues the previous one */
#define ADD(col, row) do { if (n >= cap) return 0; w->ev_col[n] = (col); w->ev_row[n] = (row); n++; } while (0)
    for (int32_t j = 0; j < cw; j++) {
        uint8_t prev = (wrap && j > 0) ? bm[(size_t)(ch - 1) * cw + j - 1] : 0;
        if (bm[j] != prev) ADD(j, 0);
    }
    for (int32_t y = 1; y < ch; y++) {
        const uint8_t *row = bm + (size_t)y * cw, *up = row - cw;
        int32_t j = 0;
        for (; j + 8 <= cw; j += 8) {
            uint64_t a, b;
            memcpy(&a, row + j, 8); memcpy(&b, up + j, 8);
            if (a == b) continue;
            for (int32_t k = j; k < j + 8; k++) if (row[k] != up[k]) ADD(k, y);
        }
        for (; j < cw; j++) if (row[j] != up[j]) ADD(j, y);
    }
    if (!wrap) /* the pixel after a column's last strip pixel is background (below, or the next column's top) */
        for (int32_t j = 0; j < cw; j++) if (bm[(size_t)(ch - 1) * cw + j]) ADD(j, ch);
#undef ADD
    /* counting sort by column; rows stay ascending within a column */
    memset(w->col_start, 0, sizeof(int32_t) * (size_t)(cw + 1));
    for (int64_t e = 0; e < n; e++) w->col_start[w->ev_col[e] + 1]++;
    for (int32_t j = 0; j < cw; j++) w->col_start[j + 1] += w->col_start[j];
    for (int64_t e = 0; e < n; e++) w->toggles[w->col_start[w->ev_col[e]]++] = w->ev_row[e];
    for (int32_t j = cw; j > 0; j--) w->col_start[j] = w->col_start[j - 1];
    w->col_start[0] = 0;
    return 1;
}

/* COCO RLE of a cropped bitmap: counts are the gaps between value changes of the image's
 * column-major stream (starting with a run of zeros), as pycocotools' rleEncode gives. */
static void rle_encode(const uint8_t *bm, es_span sp, int64_t ih, int64_t iw, work_t *w, rle_writer *r) {
    if (sp.w == 0 || sp.h == 0 || !collect_toggles(bm, sp, ih, w)) {
        rle_encode_scan(bm, sp, ih, iw, r);
        return;
    }
    int64_t last = 0, total = ih * iw, strip_end = ((int64_t)sp.x0 + sp.w) * ih;
    for (int32_t j = 0; j < sp.w; j++) {
        int64_t base = ((int64_t)sp.x0 + j) * ih + sp.y0;
        for (int32_t e = w->col_start[j]; e < w->col_start[j + 1]; e++) {
            int64_t pos = base + w->toggles[e];
            if (pos >= total) break; /* foreground up to the image's last pixel: no change after it */
            rle_emit(r, pos - last);
            last = pos;
        }
    }
    int wrap = sp.y0 == 0 && sp.h == ih;
    if (wrap && bm[(size_t)sp.h * sp.w - 1] && strip_end < total) { /* foreground runs on into the next column */
        rle_emit(r, strip_end - last);
        last = strip_end;
    }
    rle_emit(r, total - last);
}

int es_masks_rle(const es_mask_job *job, int64_t first, char *out, int64_t cap, int64_t *ends, int64_t *done,
                 uint8_t *work, size_t work_size) {
    int st = check_job(job);
    if (st != ES_OK) return st;
    if (!done || first < 0 || first > job->n || (job->n > 0 && (!ends || !out))) return ES_ERR_ARG;
    const es_tensor *m = job->maps;
    int oh = job->lb->orig_h, ow = job->lb->orig_w;
    size_t per = es_workspace_size(m->shape[1], m->shape[2], oh, ow);
    if (!work || per == 0 || work_size < per) return ES_ERR_CAPACITY;
    work_t w = carve(work, m->shape[1], m->shape[2], oh, ow);
    int64_t len = first > 0 ? ends[first - 1] : 0;
    *done = first;
    for (int64_t i = first; i < job->n; i++) {
        inst_t in;
        prepare(job, i, &w, &in);
        for (int32_t y = 0; y < in.sp.h && in.nruns; y++)
            render_row(job, &w, &in, y, w.bitmap + (size_t)y * (size_t)in.sp.w);
        if (!in.nruns) memset(w.bitmap, 0, (size_t)in.sp.w * (size_t)in.sp.h);
        rle_writer r = {out + len, cap - len, 0, {0, 0}, 0, 0};
        rle_encode(w.bitmap, in.sp, oh, ow, &w, &r);
        if (r.full) return ES_ERR_CAPACITY;
        len += r.len;
        ends[i] = len;
        *done = i + 1;
    }
    return ES_OK;
}
