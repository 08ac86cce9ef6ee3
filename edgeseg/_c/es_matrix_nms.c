/* es_matrix_nms.c - Matrix NMS (SOLOv2) on bit-row masks: edgeseg/decode/matrix_nms.py in C, bit for bit.
 *
 * One pass over the pairs i < j (score order) of the same class: the IoU from popcounts of the words both masks
 * touch, the compensation c_j = max iou_ij, and the decay's running minimum. Gaussian decay is exp(min(0,
 * min_i (c_i^2 - iou_ij^2) * sigma)): one call of the C library's exp per mask, the function Python's math.exp
 * calls (the reference), so the same bits. No N x N matrix is stored.
 */
#include "es_kernel.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static inline int64_t popcount64(uint64_t v) {
#if defined(__GNUC__) || defined(__clang__)
    return (int64_t)__builtin_popcountll(v);
#else
    v = v - ((v >> 1) & 0x5555555555555555ULL);
    v = (v & 0x3333333333333333ULL) + ((v >> 2) & 0x3333333333333333ULL);
    v = (v + (v >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
    return (int64_t)((v * 0x0101010101010101ULL) >> 56);
#endif
}

/* Sorting by score, descending, ties by position (numpy's stable argsort of -score). */
typedef struct { float score; int64_t pos; } es_ranked;

static int by_score_desc(const void *pa, const void *pb) {
    const es_ranked *a = pa, *b = pb;
    if (a->score > b->score) return -1;
    if (a->score < b->score) return 1;
    return (a->pos > b->pos) - (a->pos < b->pos);
}

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

size_t es_matrix_nms_scratch(int64_t n) {
    size_t m = (size_t)(n > 0 ? n : 1);
    return align64(m * sizeof(es_ranked)) + align64(m * sizeof(double)) + align64(2 * m * sizeof(int64_t)) +
           align64(m * sizeof(float)) + 64;
}

int es_matrix_nms(const uint64_t *bits, int64_t words, const int64_t *area, const int32_t *labels, const float *scores,
                  int64_t n, int kernel, double sigma, float update_threshold, int64_t max_keep, uint8_t *scratch,
                  size_t scratch_size, int64_t *index_out, float *score_out, int64_t cap, int64_t *n_out) {
    if (!n_out || n < 0 || words < 0 || max_keep < 0 || cap < 0 || (n > 0 && (!bits || !area || !labels || !scores)))
        return ES_ERR_ARG;
    if ((kernel != ES_NMS_GAUSSIAN && kernel != ES_NMS_LINEAR) || !(sigma > 0.0) || !isfinite(sigma))
        return ES_ERR_ARG;
    *n_out = 0;
    if (n == 0) return ES_OK;
    if (!scratch || scratch_size < es_matrix_nms_scratch(n) || !index_out || !score_out) return ES_ERR_ARG;
    for (int64_t k = 0; k < n; k++)
        if (!isfinite(scores[k]) || area[k] < 0) return ES_ERR_ARG;
    uint8_t *p = (uint8_t *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    es_ranked *rank = (es_ranked *)p; p += align64((size_t)n * sizeof(es_ranked));
    double *comp = (double *)p; p += align64((size_t)n * sizeof(double));
    int64_t *span = (int64_t *)p; p += align64(2 * (size_t)n * sizeof(int64_t));
    float *decayed = (float *)p;

    for (int64_t k = 0; k < n; k++) {
        rank[k].score = scores[k];
        rank[k].pos = k;
    }
    qsort(rank, (size_t)n, sizeof(es_ranked), by_score_desc);
    for (int64_t k = 0; k < n; k++) { /* the words each mask touches: [first, last], empty when first > last */
        const uint64_t *row = bits + rank[k].pos * words;
        int64_t first = 0, last = words - 1;
        while (first < words && !row[first]) first++;
        while (last >= first && !row[last]) last--;
        span[2 * k] = first;
        span[2 * k + 1] = last;
    }
    for (int64_t j = 0; j < n; j++) {
        int64_t pj = rank[j].pos;
        const uint64_t *bj = bits + pj * words;
        double c = 0.0, m = kernel == ES_NMS_GAUSSIAN ? 0.0 : 1.0;
        for (int64_t i = 0; i < j; i++) {
            int64_t pi = rank[i].pos;
            if (labels[pi] != labels[pj]) continue;
            const uint64_t *bi = bits + pi * words;
            int64_t lo = span[2 * i] > span[2 * j] ? span[2 * i] : span[2 * j];
            int64_t hi = span[2 * i + 1] < span[2 * j + 1] ? span[2 * i + 1] : span[2 * j + 1];
            int64_t inter = 0;
            for (int64_t w = lo; w <= hi; w++) inter += popcount64(bi[w] & bj[w]);
            int64_t uni = area[pi] + area[pj] - inter;
            double iou = uni > 0 ? (double)inter / (double)uni : 0.0;
            if (iou > c) c = iou;
            if (kernel == ES_NMS_GAUSSIAN) {
                double y = (comp[i] * comp[i] - iou * iou) * sigma;
                if (y < m) m = y;
            } else if (comp[i] < 1.0) {
                double r = (1.0 - iou) / (1.0 - comp[i]);
                if (r < m) m = r;
            }
        }
        comp[j] = c;
        double decay = kernel == ES_NMS_GAUSSIAN ? exp(m) : m;
        decayed[j] = (float)((double)rank[j].score * decay);
    }
    /* keep decayed >= threshold, re-sorted by decayed score (ties by score order), the first max_keep */
    int64_t *input_index = span; /* the spans are done with */
    for (int64_t j = 0; j < n; j++) input_index[j] = rank[j].pos;
    int64_t kept = 0;
    for (int64_t j = 0; j < n; j++) {
        if (!(decayed[j] >= update_threshold)) continue;
        rank[kept].score = decayed[j];
        rank[kept].pos = j;
        kept++;
    }
    qsort(rank, (size_t)kept, sizeof(es_ranked), by_score_desc);
    int64_t out = kept < max_keep ? kept : max_keep;
    if (out > cap) return ES_ERR_CAPACITY;
    for (int64_t k = 0; k < out; k++) {
        index_out[k] = input_index[rank[k].pos];
        score_out[k] = rank[k].score;
    }
    *n_out = out;
    return ES_OK;
}
