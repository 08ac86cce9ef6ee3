/* es_post.h - post-processing of box-cropped masks (plain C99, no Python).
 *
 * Works on the masks a decode produced (or any caller's): n bitmaps stored
 * back to back in one byte buffer, instance i at bits + offsets[i], sp[i].h
 * rows of sp[i].w bytes (0 = background, anything else = foreground), placed
 * at (sp[i].x0, sp[i].y0) in the image. Same conventions as es_decode.h:
 * ES_OK or a negative ES_ERR_* status, caller-allocated outputs with checked
 * capacities, every offset and span checked against the buffer first.
 *
 * Semantics: edgeseg/grasp/reference.py (grasp geometry) and edgeseg/rle.py
 * (COCO RLE); compile with -ffp-contract=off like the decoder.
 */
#ifndef ES_POST_H
#define ES_POST_H

#include "es_decode.h"

/* A set of cropped bitmaps in one buffer (see above). */
typedef struct {
    const uint8_t *bits;
    int64_t nbits;            /* bytes in bits */
    const int64_t *offsets;   /* (n,) */
    const es_span *spans;     /* (n,) */
    int64_t n;
} es_bitmaps;

/* ES_OK when every bitmap lies inside bits and has a non-negative size. */
int es_check_bitmaps(const es_bitmaps *b);

/* int32 work entries es_runs_shapes needs for bitmaps at most max_h rows tall. */
int64_t es_shapes_work_size(int64_t max_h);

/* Shapes and extents of masks: es_runs.h (they read runs, made from bitmaps by es_bitmap_runs). */

/* Fingers' sweeps against other masks: es_runs_sweeps in es_runs.h (from their runs). */

/* COCO RLE of masks: es_rle_runs in es_runs.h (from their runs). */

#endif
