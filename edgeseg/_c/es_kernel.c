/* es_kernel.c - kernel family masks: dynamic kernel x mask features, area filter, maskness, survivors' logits.
 *
 * Steps 2-3 of edgeseg/decode/reference_kernel.py in the same floating-point order: each logit is a float32 sum
 * over channels e ascending from 0.0f of float32 products (the compiler may vectorize across cells, never
 * reorder a cell's sum: -ffp-contract=off, no -ffast-math); maskness sums float64 sigmoids from es_exp64 cell by
 * cell in row-major order. Work is tiled: a block of candidates x a run of one row's cells at a time, so each
 * feature value is read once per block and the accumulators stay in L1.
 */
#include "es_kernel.h"

#include <math.h>
#include <string.h>

#define ES_KBLOCK 8   /* candidates per block */
#define ES_KTILE 256  /* cells per tile (a run of one row) */

/* fdlibm's split of ln 2 and 1/ln 2; Taylor coefficients 1/k!, k = 13 .. 0 (reference_kernel.EXP_POLY). */
static const double LN2_HI = 6.93147180369123816490e-01, LN2_LO = 1.90821492927058770002e-10,
                    INV_LN2 = 1.44269504088896338700e+00;
static const double EXP_POLY[14] = {
    1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0, 1.0 / 362880.0, 1.0 / 40320.0,
    1.0 / 5040.0, 1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 1.0 / 2.0, 1.0 / 1.0, 1.0 / 1.0,
};

double es_exp64(double x) {
    if (x < -100.0) x = -100.0;
    if (x > 100.0) x = 100.0;
    double n = floor(x * INV_LN2 + 0.5);
    double r = (x - n * LN2_HI) - n * LN2_LO;
    double p = EXP_POLY[0];
    for (int k = 1; k < 14; k++) p = p * r + EXP_POLY[k];
    return ldexp(p, (int)n);
}

static inline double sigmoid64(float v) { return 1.0 / (1.0 + es_exp64(-(double)v)); }

int64_t es_mask_words(int64_t p) { return (p + 63) / 64; }

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

static inline float tget(const es_tensor *t, int64_t off) {
    switch (t->dtype) {
    case ES_I8: return ((float)((const int8_t *)t->data)[off] - t->zero_point) * t->scale;
    case ES_U8: return ((float)((const uint8_t *)t->data)[off] - t->zero_point) * t->scale;
    default: return ((const float *)t->data)[off];
    }
}

static int valid_tensor(const es_tensor *t, int ndim) {
    if (!t || !t->data || t->ndim != ndim) return 0;
    for (int d = 0; d < ndim; d++)
        if (t->shape[d] < 0) return 0;
    return t->dtype == ES_F32 || t->dtype == ES_I8 || t->dtype == ES_U8;
}

/* Scratch of the logits kernel: dequantized kernels of a block, accumulators, one feature row run. */
typedef struct { float *kb, *acc, *row; } es_tiles;

static size_t tiles_size(int64_t e) {
    return align64(ES_KBLOCK * (size_t)(e > 0 ? e : 1) * sizeof(float)) + align64(ES_KBLOCK * ES_KTILE * sizeof(float)) +
           align64(ES_KTILE * sizeof(float));
}

static es_tiles carve_tiles(uint8_t *p, int64_t e) {
    es_tiles t;
    t.kb = (float *)p; p += align64(ES_KBLOCK * (size_t)(e > 0 ? e : 1) * sizeof(float));
    t.acc = (float *)p; p += align64(ES_KBLOCK * ES_KTILE * sizeof(float));
    t.row = (float *)p;
    return t;
}

/* Called per finished tile: candidate c of the block, cells q0.. of the tile, their logits. */
typedef void (*tile_sink)(void *ctx, int64_t c, int64_t q0, const float *logits, int64_t len);

/* Wider SIMD where the CPU has it (x86-64, GCC and glibc's ifunc: one clone per ISA, picked at load time). The
 * same per-lane IEEE multiply and add in every clone (contraction stays off), so every clone gives the same bits. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__) && !defined(ES_NO_CLONES)
#define ES_SIMD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define ES_SIMD_CLONES
#endif

/* Logits of candidates cells[0..nc) tile by tile (rows in order, runs in order), handed to sink. */
ES_SIMD_CLONES static void block_logits(const es_tensor *k, const es_tensor *f, const int64_t *cells, int64_t nc, es_tiles *t,
                         tile_sink sink, void *ctx) {
    int64_t e_n = f->shape[0], hm = f->shape[1], wm = f->shape[2];
    for (int64_t c = 0; c < nc; c++)
        for (int64_t e = 0; e < e_n; e++) t->kb[c * e_n + e] = tget(k, cells[c] * k->strides[0] + e * k->strides[1]);
    int direct = f->dtype == ES_F32 && f->strides[2] == 1;
    for (int64_t y = 0; y < hm; y++) {
        for (int64_t x0 = 0; x0 < wm; x0 += ES_KTILE) {
            int64_t len = wm - x0 < ES_KTILE ? wm - x0 : ES_KTILE;
            memset(t->acc, 0, sizeof(float) * ES_KBLOCK * ES_KTILE);
            for (int64_t e = 0; e < e_n; e++) {
                int64_t base = e * f->strides[0] + y * f->strides[1] + x0 * f->strides[2];
                const float *row = t->row;
                if (direct) {
                    row = (const float *)f->data + base;
                } else {
                    for (int64_t x = 0; x < len; x++) t->row[x] = tget(f, base + x * f->strides[2]);
                }
                for (int64_t c = 0; c < nc; c++) {
                    float kv = t->kb[c * e_n + e], *acc = t->acc + c * ES_KTILE;
                    for (int64_t x = 0; x < len; x++) acc[x] += kv * row[x];
                }
            }
            for (int64_t c = 0; c < nc; c++) sink(ctx, c, y * wm + x0, t->acc + c * ES_KTILE, len);
        }
    }
}

/* Step 2's sink: mask bits, area and the sigmoid sum of a block's candidates (and their logits, when kept). */
typedef struct { uint64_t *bits; int64_t words; int64_t *area; double *sum; float t; float *store; int64_t cells; } mask_ctx;

static void mask_sink(void *vctx, int64_t c, int64_t q0, const float *logits, int64_t len) {
    mask_ctx *m = vctx;
    if (m->store) memcpy(m->store + c * m->cells + q0, logits, sizeof(float) * (size_t)len);
    uint64_t *row = m->bits + c * m->words;
    int64_t area = 0;
    double s = m->sum[c];
    for (int64_t x = 0; x < len; x++) {
        float v = logits[x];
        if (v > m->t) {
            int64_t q = q0 + x;
            row[q >> 6] |= (uint64_t)1 << (q & 63);
            area++;
            s += sigmoid64(v);
        }
    }
    m->area[c] += area;
    m->sum[c] = s;
}

/* Survivors' sink: copy the logits into their map. */
typedef struct { float *out; int64_t cells; } copy_ctx;

static void copy_sink(void *vctx, int64_t c, int64_t q0, const float *logits, int64_t len) {
    copy_ctx *m = vctx;
    memcpy(m->out + c * m->cells + q0, logits, sizeof(float) * (size_t)len);
}

size_t es_kernel_work_size(int64_t n, int64_t e, int64_t hm, int64_t wm, int keep_logits) {
    if (n < 0 || e < 0 || hm < 0 || wm < 0) return 0;
    size_t m = (size_t)(n > 0 ? n : 1), words = (size_t)es_mask_words(hm * wm);
    return (keep_logits ? align64(m * (size_t)(hm * wm) * sizeof(float)) : 0) + align64(m * words * sizeof(uint64_t)) + align64(m * sizeof(int64_t)) * 3 + align64(m * sizeof(double)) +
           align64(m * sizeof(float)) + align64(m * sizeof(int32_t)) + align64(m * sizeof(int64_t)) +
           es_matrix_nms_scratch(n) + tiles_size(e) + 64 * 8;
}

int es_kernel_decode(const es_tensor *kernels, const es_tensor *features, const int64_t *cells, const int32_t *labels,
                     const float *scores, const int64_t *min_area, int64_t n, const es_kernel_params *p,
                     uint8_t *work, size_t work_size, int64_t *index_out, float *score_out, float *logits_out,
                     int64_t cap, int64_t *n_out) {
    if (!n_out || !p || n < 0 || cap < 0 || !valid_tensor(kernels, 2) || !valid_tensor(features, 3)) return ES_ERR_ARG;
    *n_out = 0;
    int64_t e_n = features->shape[0], hm = features->shape[1], wm = features->shape[2], cells_n = hm * wm;
    if (kernels->shape[1] != e_n || hm > ES_MAX_SIDE || wm > ES_MAX_SIDE || p->max_detections < 0) return ES_ERR_ARG;
    if (n == 0) return ES_OK;
    if (!cells || !labels || !scores || !min_area || !work ||
        work_size < es_kernel_work_size(n, e_n, hm, wm, p->keep_logits))
        return ES_ERR_ARG;
    for (int64_t c = 0; c < n; c++)
        if (cells[c] < 0 || cells[c] >= kernels->shape[0] || !isfinite(scores[c])) return ES_ERR_ARG;
    int64_t words = es_mask_words(cells_n);
    size_t m = (size_t)n;
    uint8_t *q = (uint8_t *)(((uintptr_t)work + 63) & ~(uintptr_t)63);
    uint64_t *bits = (uint64_t *)q; q += align64(m * (size_t)words * sizeof(uint64_t));
    int64_t *area = (int64_t *)q; q += align64(m * sizeof(int64_t));
    int64_t *kept = (int64_t *)q; q += align64(m * sizeof(int64_t));
    int64_t *sel = (int64_t *)q; q += align64(m * sizeof(int64_t));
    double *sum = (double *)q; q += align64(m * sizeof(double));
    float *kscore = (float *)q; q += align64(m * sizeof(float));
    int32_t *klabel = (int32_t *)q; q += align64(m * sizeof(int32_t));
    int64_t *cell_of = (int64_t *)q; q += align64(m * sizeof(int64_t));
    uint8_t *nms_scratch = q; q += es_matrix_nms_scratch(n);
    es_tiles tiles = carve_tiles(q, e_n); q += tiles_size(e_n);
    float *store = p->keep_logits ? (float *)q : NULL;

    /* step 2: masks, areas, sigmoid sums of every candidate */
    memset(bits, 0, m * (size_t)words * sizeof(uint64_t));
    memset(area, 0, m * sizeof(int64_t));
    memset(sum, 0, m * sizeof(double));
    for (int64_t c0 = 0; c0 < n; c0 += ES_KBLOCK) {
        int64_t nc = n - c0 < ES_KBLOCK ? n - c0 : ES_KBLOCK;
        mask_ctx ctx = {bits + c0 * words, words, area + c0, sum + c0, p->logit_threshold,
                        store ? store + c0 * cells_n : NULL, cells_n};
        block_logits(kernels, features, cells + c0, nc, &tiles, mask_sink, &ctx);
    }
    /* area filter (in place, order kept), score x maskness */
    int64_t k = 0;
    for (int64_t c = 0; c < n; c++) {
        if (!(area[c] > min_area[c])) continue;
        double maskness = area[c] > 0 ? sum[c] / (double)area[c] : 0.0; /* 0 only when min_area < 0 */
        if (k != c) memcpy(bits + k * words, bits + c * words, (size_t)words * sizeof(uint64_t));
        area[k] = area[c];
        kscore[k] = (float)((double)scores[c] * maskness);
        klabel[k] = p->class_agnostic ? 0 : labels[c];
        kept[k] = c;
        k++;
    }
    /* step 3: Matrix NMS */
    int64_t cap_keep = p->max_detections < cap ? p->max_detections : cap, survivors = 0;
    int st = es_matrix_nms(bits, words, area, klabel, kscore, k, p->nms_kernel, p->sigma, p->update_threshold,
                           cap_keep, nms_scratch, es_matrix_nms_scratch(n), sel, score_out, cap_keep, &survivors);
    if (st != ES_OK) return st;
    /* the survivors' logits: kept, or computed again (the same arithmetic) */
    for (int64_t s = 0; s < survivors; s++) {
        index_out[s] = kept[sel[s]];
        cell_of[s] = cells[index_out[s]];
        if (store) memcpy(logits_out + s * cells_n, store + index_out[s] * cells_n, sizeof(float) * (size_t)cells_n);
    }
    for (int64_t s0 = 0; !store && s0 < survivors; s0 += ES_KBLOCK) {
        int64_t nc = survivors - s0 < ES_KBLOCK ? survivors - s0 : ES_KBLOCK;
        copy_ctx ctx = {logits_out + s0 * cells_n, cells_n};
        block_logits(kernels, features, cell_of + s0, nc, &tiles, copy_sink, &ctx);
    }
    *n_out = survivors;
    return ES_OK;
}
