/* es_kernel.h - the kernel family's decode core (SOLOv2-style dynamic kernels, Matrix NMS); plain C99, no Python.
 *
 * Semantics: edgeseg/decode/reference_kernel.py (steps 2-3) and edgeseg/decode/matrix_nms.py, bit for bit
 * (compile with -ffp-contract=off, no -ffast-math). Candidates (step 1) come from the caller, best first.
 * Masks are bit rows: mask n is words uint64 at bits + n * words, cell q = y * Wm + x at bit q % 64 of word q / 64.
 */
#ifndef ES_KERNEL_H
#define ES_KERNEL_H

#include "es_decode.h"

enum { ES_NMS_GAUSSIAN = 0, ES_NMS_LINEAR = 1 }; /* Matrix NMS decay kernels */

/* exp(x) from + - * floor ldexp only, x clamped to [-100, 100]: reference_kernel.exp64, same bits. */
double es_exp64(double x);

/* uint64 words of one mask bit row of p cells. */
int64_t es_mask_words(int64_t p);

typedef struct {
    float logit_threshold;  /* a cell is inside a mask when its logit is > this */
    int nms_kernel;         /* ES_NMS_GAUSSIAN or ES_NMS_LINEAR */
    double sigma;           /* gaussian width: decay exp(-sigma iou^2) */
    float update_threshold; /* keep decayed scores >= this */
    int64_t max_detections; /* most survivors */
    int class_agnostic;     /* Matrix NMS across classes */
    int keep_logits;        /* keep every candidate's logits for the survivors (n * Hm * Wm floats more work
                             * memory) instead of computing the survivors' again: the same bits either way */
} es_kernel_params;

/* Work memory (bytes) es_kernel_decode needs for n candidates, E channels and an Hm x Wm map. */
size_t es_kernel_work_size(int64_t n, int64_t e, int64_t hm, int64_t wm, int keep_logits);

/* Steps 2-3 and the survivors' logits. kernels (S, E) and features (E, Hm, Wm) are float32/int8/uint8 tensors;
 * candidate c has row cells[c] in [0, S), class labels[c], score scores[c] (float32) and needs area > min_area[c].
 * Outputs hold cap rows: index_out (candidate numbers, best first), score_out (decayed scores) and logits_out
 * (cap * Hm * Wm float32, the survivors' logit maps); *n_out = survivors. */
int es_kernel_decode(const es_tensor *kernels, const es_tensor *features, const int64_t *cells, const int32_t *labels,
                     const float *scores, const int64_t *min_area, int64_t n, const es_kernel_params *p,
                     uint8_t *work, size_t work_size, int64_t *index_out, float *score_out, float *logits_out,
                     int64_t cap, int64_t *n_out);

/* Matrix NMS of n bit-row masks (areas = their bit counts): survivors' input indices and decayed scores, best
 * first, at most min(max_keep, cap). Scores must be finite. scratch: es_matrix_nms_scratch(n) bytes. */
size_t es_matrix_nms_scratch(int64_t n);
int es_matrix_nms(const uint64_t *bits, int64_t words, const int64_t *area, const int32_t *labels, const float *scores,
                  int64_t n, int kernel, double sigma, float update_threshold, int64_t max_keep, uint8_t *scratch,
                  size_t scratch_size, int64_t *index_out, float *score_out, int64_t cap, int64_t *n_out);

#endif
