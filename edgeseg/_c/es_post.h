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

/* Fingers' sweep against other masks: sweep is sh rows of sw bytes (nonzero = swept) placed at
 * (sx0, sy0); *area = swept pixels, *hit = swept pixels that any mask which[0..nwhich) covers.
 * Only the pixels between each row's first and last swept one are read. scratch: scratch_cap >= sw bytes. */
int es_sweep_hits(const uint8_t *sweep, int32_t sw, int32_t sh, int32_t sx0, int32_t sy0, const es_bitmaps *b,
                  const int64_t *which, int64_t nwhich, uint8_t *scratch, int64_t scratch_cap, int64_t *area,
                  int64_t *hit);

/* COCO RLE of masks: es_rle_runs in es_runs.h (from their runs). */

#endif
