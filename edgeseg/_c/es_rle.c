/* es_rle.c - masks straight to COCO RLE strings (pycocotools' compressed counts). */
#include "es_post.h"
#include "es_render.h"

#include <string.h>

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
static int collect_toggles(const uint8_t *bm, es_span sp, int64_t ih, es_work *w) {
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
static void rle_encode(const uint8_t *bm, es_span sp, int64_t ih, int64_t iw, es_work *w, rle_writer *r) {
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
    int st = es_check_job(job);
    if (st != ES_OK) return st;
    if (!done || first < 0 || first > job->n || (job->n > 0 && (!ends || !out))) return ES_ERR_ARG;
    const es_tensor *m = job->maps;
    int oh = job->lb->orig_h, ow = job->lb->orig_w;
    size_t per = es_workspace_size(m->shape[1], m->shape[2], oh, ow);
    if (!work || per == 0 || work_size < per) return ES_ERR_CAPACITY;
    es_work w = es_carve(work, m->shape[1], m->shape[2], oh, ow);
    int64_t len = first > 0 ? ends[first - 1] : 0;
    *done = first;
    for (int64_t i = first; i < job->n; i++) {
        es_instance in;
        es_prepare(job, i, &w, &in);
        for (int32_t y = 0; y < in.sp.h && in.nruns; y++)
            es_render_row(job, &w, &in, y, w.bitmap + (size_t)y * (size_t)in.sp.w);
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

/* Toggle capacity per bitmap, as the decoder's (a few runs per column; more falls back to a scan). */
static int64_t bitmap_toggle_cap(int64_t w, int64_t h) { return 8 * w + 2 * h + 64; }

size_t es_rle_workspace_size(int64_t max_w, int64_t max_h) {
    if (max_w < 0 || max_h < 0) return 0;
    return sizeof(int32_t) * (size_t)(3 * bitmap_toggle_cap(max_w, max_h) + max_w + 1);
}

int es_rle_bitmaps(const es_bitmaps *b, int ih, int iw, int64_t first, char *out, int64_t cap, int64_t *ends,
                   int64_t *done, uint8_t *work, size_t work_size) {
    int st = es_check_bitmaps(b);
    if (st != ES_OK) return st;
    if (!done || ih <= 0 || iw <= 0 || first < 0 || first > b->n || (b->n > 0 && (!ends || !out || !work)))
        return ES_ERR_ARG;
    for (int64_t i = 0; i < b->n; i++) {
        es_span sp = b->spans[i];
        if ((int64_t)sp.x0 + sp.w > iw || (int64_t)sp.y0 + sp.h > ih) return ES_ERR_ARG;
        if (es_rle_workspace_size(sp.w, sp.h) > work_size) return ES_ERR_CAPACITY;
    }
    int64_t len = first > 0 ? ends[first - 1] : 0;
    *done = first;
    for (int64_t i = first; i < b->n; i++) {
        es_span sp = b->spans[i];
        es_work w;
        memset(&w, 0, sizeof w);
        w.ev_cap = bitmap_toggle_cap(sp.w, sp.h);
        w.ev_col = (int32_t *)(void *)work;
        w.ev_row = w.ev_col + w.ev_cap;
        w.toggles = w.ev_row + w.ev_cap;
        w.col_start = w.toggles + w.ev_cap;
        rle_writer r = {out + len, cap - len, 0, {0, 0}, 0, 0};
        rle_encode(b->bits + b->offsets[i], sp, ih, iw, &w, &r);
        if (r.full) return ES_ERR_CAPACITY;
        len += r.len;
        ends[i] = len;
        *done = i + 1;
    }
    return ES_OK;
}
