/* es_render.h - internal to edgeseg/_c: one instance's mask, rendered row by row.
 *
 * Shared by the outputs (es_masks.c: cropped, full frames; es_rle.c: COCO RLE).
 * Not part of the public API in es_decode.h.
 */
#ifndef ES_RENDER_H
#define ES_RENDER_H

#include "es_decode.h"

/* Per-thread work memory, carved from the caller's buffer. */
typedef struct {
    float *logits, *fx, *omfx, *fy;
    uint8_t *cls, *rowbuf, *bitmap;
    int32_t *xi0, *xi1, *yi0, *yi1, *run_end;
    int32_t *ev_col, *ev_row, *col_start, *toggles; /* RLE: value changes, bucketed by column */
    int64_t ev_cap;
} es_work;

/* One instance ready to render: window [wx0, wx0+ww) x [wy0, wy0+wh) of the logit map. */
typedef struct {
    es_span sp;
    int64_t wx0, wy0, ww, wh;
    int32_t nruns;
} es_instance;

/* Per-thread work memory laid out in `base` (es_workspace_size bytes) for a (hp, wp) map. */
es_work es_carve(uint8_t *base, int64_t hp, int64_t wp, int oh, int ow);

/* Coordinate maps, window, logits, cell classes and column runs of instance i (nruns 0: empty mask). */
void es_prepare(const es_mask_job *job, int64_t i, es_work *w, es_instance *in);

/* Row y (0-based inside the span) of a prepared instance into dst[0 .. sp.w), bytes 0/1. */
void es_render_row(const es_mask_job *job, const es_work *w, const es_instance *in, int32_t y, uint8_t *dst);

/* ES_OK when the job's tensors, boxes and spans are consistent (every span inside the image). */
int es_check_job(const es_mask_job *job);

#endif
