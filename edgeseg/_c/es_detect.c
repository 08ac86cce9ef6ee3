/* es_detect.c - candidates, box decode, greedy NMS and letterbox undo.
 *
 * Steps 1-4 of edgeseg/decode/reference.py, in the same floating-point
 * order: float32 for box arithmetic, float64 for IoU; NaN behaves as in
 * numpy (argmax takes the first NaN, maximum/minimum/clip propagate it).
 */
#include "es_decode.h"

#include <math.h>
#include <stdlib.h>

static inline float tget2(const es_tensor *t, int64_t i, int64_t j) {
    int64_t off = i * t->strides[0] + j * t->strides[1];
    switch (t->dtype) {
    case ES_I8: return ((float)((const int8_t *)t->data)[off] - t->zero_point) * t->scale;
    case ES_U8: return ((float)((const uint8_t *)t->data)[off] - t->zero_point) * t->scale;
    default: return ((const float *)t->data)[off];
    }
}

/* numpy.maximum / numpy.minimum: NaN in either argument gives NaN. */
static inline double np_max(double a, double b) { return (isnan(a) || isnan(b)) ? NAN : (a > b ? a : b); }
static inline double np_min(double a, double b) { return (isnan(a) || isnan(b)) ? NAN : (a < b ? a : b); }
static inline float np_clipf(float v, float lo, float hi) {
    if (isnan(v)) return v;
    return v < lo ? lo : (v > hi ? hi : v);
}

static int check_2d(const es_tensor *t, int64_t rows, int64_t cols) {
    if (!t || !t->data || t->ndim != 2 || t->shape[0] != rows || (cols >= 0 && t->shape[1] != cols)) return 0;
    return t->dtype == ES_F32 || t->dtype == ES_I8 || t->dtype == ES_U8;
}

/* Rows that can pass: numpy.argmax returns a row's first NaN, which never passes `>= threshold`,
 * so a row passes iff it has no NaN and some value >= threshold (cls 0); a NaN row is marked -2. The flags are branch-free
 * (vectorizable); the exact first-maximum argmax runs only on the few rows that pass. */
#define ES_ROW_SCAN(T, DEQ)                                                              \
    for (int64_t a = 0; a < a_n; a++) {                                                  \
        const T *row = (const T *)s->data + a * s->strides[0];                           \
        int hit = 0, nan = 0;                                                            \
        for (int64_t k = 0; k < c_n; k++) {                                              \
            float v = DEQ(row[k]);                                                       \
            hit |= v >= thr;                                                             \
            nan |= v != v;                                                               \
        }                                                                                \
        c[a].cls = nan ? -2 : (hit ? 0 : -1);                                            \
    }
#define ES_F32_VALUE(q) (q)
#define ES_INT_VALUE(q) (((float)(q) - zp) * sc)

/* Score of anchor a, class k: the raw value, times the objectness when the model has one. */
static inline float score_at(const es_tensor *s, const es_tensor *obj, int64_t a, int64_t k) {
    float v = tget2(s, a, k);
    return obj ? v * tget2(obj, a, 0) : v;
}

static void best_classes(const es_tensor *s, const es_tensor *obj, float thr, es_candidate *c) {
    int64_t a_n = s->shape[0], c_n = s->shape[1];
    float zp = s->zero_point, sc = s->scale;
    int contiguous = s->strides[1] == 1 && !obj; /* objectness (YOLOv5-seg): the product decides, below */
    if (contiguous && s->dtype == ES_F32) {
        ES_ROW_SCAN(float, ES_F32_VALUE)
    } else if (contiguous && s->dtype == ES_I8) {
        ES_ROW_SCAN(int8_t, ES_INT_VALUE)
    } else if (contiguous && s->dtype == ES_U8) {
        ES_ROW_SCAN(uint8_t, ES_INT_VALUE)
    } else {
        /* strided (e.g. channels-first heads): flags per anchor, walking each class row contiguously */
        for (int64_t a = 0; a < a_n; a++) c[a].cls = 0; /* bit 0: some value >= thr, bit 1: some NaN */
        for (int64_t k = 0; k < c_n; k++)
            for (int64_t a = 0; a < a_n; a++) {
                float v = score_at(s, obj, a, k);
                int bits = (v >= thr) | ((v != v) << 1);
                c[a].cls |= bits;
            }
        for (int64_t a = 0; a < a_n; a++) c[a].cls = (c[a].cls & 2) ? -2 : (c[a].cls == 1 ? 0 : -1);
    }
    for (int64_t a = 0; a < a_n; a++) {
        if (c[a].cls < 0) continue;
        float best = score_at(s, obj, a, 0); /* no NaN in this row: plain first maximum */
        int32_t cls = 0;
        for (int64_t k = 1; k < c_n; k++) {
            float v = score_at(s, obj, a, k);
            if (v > best) { best = v; cls = (int32_t)k; }
        }
        c[a].raw = best; c[a].cls = cls;
    }
}

static int by_score_then_anchor(const void *pa, const void *pb) {
    const es_candidate *a = pa, *b = pb;
    if (a->raw > b->raw) return -1;
    if (a->raw < b->raw) return 1;
    return (a->anchor > b->anchor) - (a->anchor < b->anchor);
}

static void decode_box(const es_tensor *bt, const es_candidate *c, const es_detect_params *p, const float *centres,
                       const float *strides, float *out) {
    int enc = p->box_encoding;
    float r0 = tget2(bt, c->anchor, 0), r1 = tget2(bt, c->anchor, 1);
    float r2 = tget2(bt, c->anchor, 2), r3 = tget2(bt, c->anchor, 3);
    if (enc != ES_LTRB) { /* normalized boxes (e.g. Ultralytics TFLite) become input pixels first */
        r0 *= p->box_scale_x; r1 *= p->box_scale_y; r2 *= p->box_scale_x; r3 *= p->box_scale_y;
    }
    if (enc == ES_LTRB) {
        float cx = centres[2 * c->anchor], cy = centres[2 * c->anchor + 1], s = strides[c->anchor];
        out[0] = cx - r0 * s; out[1] = cy - r1 * s; out[2] = cx + r2 * s; out[3] = cy + r3 * s;
    } else if (enc == ES_CXCYWH) {
        float hw = r2 * 0.5f, hh = r3 * 0.5f;
        out[0] = r0 - hw; out[1] = r1 - hh; out[2] = r0 + hw; out[3] = r1 + hh;
    } else {
        out[0] = r0; out[1] = r1; out[2] = r2; out[3] = r3;
    }
}

static double box_area(const float *b) {
    return np_max((double)b[2] - (double)b[0], 0.0) * np_max((double)b[3] - (double)b[1], 0.0);
}

/* Greedy NMS over cand[0..n) in priority order: writes survivors' candidate indices to kept[]
 * (at most cap) and returns their count. Suppression is marked by cls = -1. */
static int64_t greedy_nms(es_candidate *cand, int64_t n, const es_detect_params *p, int64_t *kept, int64_t cap) {
    int64_t n_kept = 0;
    for (int64_t i = 0; i < n && n_kept < cap; i++) {
        if (cand[i].cls < 0) continue;
        kept[n_kept++] = i;
        if (n_kept >= p->max_detections) break;
        if (!p->nms) continue;
        const float *bi = cand[i].box;
        double ai = box_area(bi);
        for (int64_t j = i + 1; j < n; j++) {
            if (cand[j].cls < 0 || (!p->class_agnostic && cand[j].cls != cand[i].cls)) continue;
            const float *bj = cand[j].box;
            double iw = np_max(np_min(bi[2], bj[2]) - np_max(bi[0], bj[0]), 0.0);
            double ih = np_max(np_min(bi[3], bj[3]) - np_max(bi[1], bj[1]), 0.0);
            double inter = iw * ih, uni = ai + box_area(bj) - inter;
            double iou = uni > 0.0 ? inter / uni : 0.0;
            if (iou > p->iou_threshold) cand[j].cls = -1;
        }
    }
    return n_kept;
}

int es_check_letterbox(const es_letterbox *lb, int need_input) {
    if (!lb || lb->orig_h < 1 || lb->orig_w < 1 || lb->orig_h > ES_MAX_SIDE || lb->orig_w > ES_MAX_SIDE)
        return ES_ERR_ARG;
    if (need_input && (lb->input_h < 1 || lb->input_w < 1 || lb->input_h > ES_MAX_SIDE || lb->input_w > ES_MAX_SIDE))
        return ES_ERR_ARG;
    if (!(lb->scale_x >= ES_MIN_SCALE && lb->scale_x <= ES_MAX_SCALE && lb->scale_y >= ES_MIN_SCALE &&
          lb->scale_y <= ES_MAX_SCALE)) /* NaN fails too */
        return ES_ERR_ARG;
    if (lb->pad_left < -ES_MAX_SIDE || lb->pad_left > ES_MAX_SIDE || lb->pad_top < -ES_MAX_SIDE ||
        lb->pad_top > ES_MAX_SIDE)
        return ES_ERR_ARG;
    return ES_OK;
}

static int finite_candidate(const es_candidate *c) {
    return isfinite(c->raw) && isfinite(c->box[0]) && isfinite(c->box[1]) && isfinite(c->box[2]) &&
           isfinite(c->box[3]);
}

int es_detect(const es_tensor *boxes, const es_tensor *scores, const es_tensor *objectness,
              const es_tensor *labels, const float *centres, const float *strides,
              const es_detect_params *p, const es_letterbox *lb, es_candidate *scratch, int64_t cap_scratch,
              int64_t *anchor_out, int32_t *class_out, float *raw_out, float *boxes_out, int64_t cap_out,
              int64_t *n_out, int64_t *n_nonfinite) {
    if (!p || !lb || !n_out || !scores || !check_2d(scores, scores->shape[0], -1) || scores->shape[1] < 1)
        return ES_ERR_ARG;
    int64_t a_n = scores->shape[0];
    if (!check_2d(boxes, a_n, 4) || p->pre_nms_topk < 1 || p->max_detections < 1 || es_check_letterbox(lb, 0) ||
        (p->box_encoding == ES_LTRB && (!centres || !strides)))
        return ES_ERR_ARG;
    if (p->raw_threshold != p->raw_threshold || !(p->iou_threshold >= 0.0 && p->iou_threshold <= 1.0) ||
        !(isfinite(p->box_scale_x) && p->box_scale_x > 0.0f && isfinite(p->box_scale_y) && p->box_scale_y > 0.0f) ||
        p->box_encoding < ES_LTRB || p->box_encoding > ES_CXCYWH || p->num_classes < 0 || cap_out < 0)
        return ES_ERR_ARG;
    if ((objectness && !check_2d(objectness, a_n, 1)) ||
        (labels && (!check_2d(labels, a_n, 1) || scores->shape[1] != 1 || p->num_classes < 1)))
        return ES_ERR_ARG;
    if (cap_scratch < a_n) return ES_ERR_CAPACITY;
    *n_out = 0;
    if (n_nonfinite) *n_nonfinite = 0;
    if (a_n == 0) return ES_OK;
    /* raw > t equals raw >= the next float32 above t (NaN for t = +inf: nothing passes) */
    float thr = p->raw_threshold;
    if (p->score_strict) thr = thr == INFINITY ? NAN : nextafterf(thr, INFINITY);
    best_classes(scores, objectness, thr, scratch);
    int64_t n = 0, dropped = 0;
    for (int64_t a = 0; a < a_n; a++) {
        dropped += scratch[a].cls == -2;
        if (scratch[a].cls >= 0 && scratch[a].raw >= thr) {
            int32_t cls = scratch[a].cls;
            if (labels) {
                float lv = tget2(labels, a, 0);
                if (!(lv >= 0.0f && lv < (float)p->num_classes)) continue; /* NaN fails too */
                cls = (int32_t)lv;
            }
            scratch[n].raw = scratch[a].raw; scratch[n].cls = cls; scratch[n].anchor = a;
            n++;
        }
    }
    qsort(scratch, (size_t)n, sizeof *scratch, by_score_then_anchor);
    if (n > p->pre_nms_topk) n = p->pre_nms_topk;
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++) { /* a NaN/Inf score or box never enters NMS */
        decode_box(boxes, &scratch[i], p, centres, strides, scratch[i].box);
        if (finite_candidate(&scratch[i])) scratch[m++] = scratch[i];
    }
    dropped += n - m;
    n = m;
    if (n_nonfinite) *n_nonfinite = dropped;
    int64_t cap = cap_out < p->max_detections ? cap_out : p->max_detections;
    int64_t n_kept = greedy_nms(scratch, n, p, anchor_out, cap); /* anchor_out holds candidate indices for now */
    if (n_kept == cap && cap < p->max_detections) {
        /* the caller's capacity, not max_detections, stopped NMS: say so instead of truncating */
        for (int64_t i = n_kept ? anchor_out[n_kept - 1] + 1 : 0; i < n; i++)
            if (scratch[i].cls >= 0) return ES_ERR_CAPACITY;
    }
    float fw = (float)lb->orig_w, fh = (float)lb->orig_h, sx = (float)lb->scale_x, sy = (float)lb->scale_y;
    float px = (float)lb->pad_left, py = (float)lb->pad_top;
    for (int64_t k = 0; k < n_kept; k++) {
        const es_candidate *c = &scratch[anchor_out[k]];
        anchor_out[k] = c->anchor; class_out[k] = c->cls; raw_out[k] = c->raw;
        boxes_out[4 * k + 0] = np_clipf((c->box[0] - px) / sx, 0.0f, fw);
        boxes_out[4 * k + 1] = np_clipf((c->box[1] - py) / sy, 0.0f, fh);
        boxes_out[4 * k + 2] = np_clipf((c->box[2] - px) / sx, 0.0f, fw);
        boxes_out[4 * k + 3] = np_clipf((c->box[3] - py) / sy, 0.0f, fh);
    }
    *n_out = n_kept;
    return ES_OK;
}

int es_spans(const float *boxes, int64_t n, int orig_h, int orig_w, es_span *out, int64_t cap) {
    if ((n > 0 && (!boxes || !out)) || n < 0 || orig_h <= 0 || orig_w <= 0) return ES_ERR_ARG;
    if (cap < n) return ES_ERR_CAPACITY;
    for (int64_t i = 0; i < n; i++) {
        const float *b = boxes + 4 * i;
        int32_t lo[2] = {0, 0}, hi[2] = {0, 0};
        int size[2] = {orig_w, orig_h};
        for (int ax = 0; ax < 2; ax++) {
            double l = (double)b[ax], h = (double)b[ax + 2];
            if (!isfinite(l) || !isfinite(h)) continue; /* NaN/Inf box: empty span at 0 */
            l = l < 0.0 ? 0.0 : (l > size[ax] ? size[ax] : l);
            h = h < 0.0 ? 0.0 : (h > size[ax] ? size[ax] : h);
            double start = ceil(l), stop = ceil(h); /* pixels lo <= x < hi */
            if (stop < start) stop = start;
            lo[ax] = (int32_t)start; hi[ax] = (int32_t)stop;
        }
        out[i].x0 = lo[0]; out[i].y0 = lo[1]; out[i].w = hi[0] - lo[0]; out[i].h = hi[1] - lo[1];
    }
    return ES_OK;
}
