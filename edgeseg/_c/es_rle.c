/* es_rle.c - masks straight to COCO RLE strings (pycocotools' compressed counts). */
#include "es_post.h"
#include "es_render.h"
#include "es_runs.h"

#include <stdint.h>

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

/* Emits the RLE of one strip from its value changes bucketed by column (col_start, toggles: rows
 * ascending within a column, row sp.h = the pixel after the strip). last_fg: the strip's last pixel
 * (bottom row, last column) is foreground. Counts are the gaps between the changes of the image's
 * column-major stream (starting with a run of zeros), as pycocotools' rleEncode gives. */
static void rle_from_toggles(const int32_t *col_start, const int32_t *toggles, es_span sp, int64_t ih, int64_t iw,
                             int last_fg, rle_writer *r) {
    int64_t last = 0, total = ih * iw, strip_end = ((int64_t)sp.x0 + sp.w) * ih;
    for (int32_t j = 0; j < sp.w; j++) {
        int64_t base = ((int64_t)sp.x0 + j) * ih + sp.y0;
        for (int32_t e = col_start[j]; e < col_start[j + 1]; e++) {
            int64_t pos = base + toggles[e];
            if (pos >= total) break; /* foreground up to the image's last pixel: no change after it */
            rle_emit(r, pos - last);
            last = pos;
        }
    }
    int wrap = sp.y0 == 0 && sp.h == ih;
    if (wrap && last_fg && strip_end < total) { /* foreground runs on into the next column */
        rle_emit(r, strip_end - last);
        last = strip_end;
    }
    rle_emit(r, total - last);
}

/* COCO RLE of a cropped bitmap. */
static void rle_encode(const uint8_t *bm, es_span sp, int64_t ih, int64_t iw, es_work *w, rle_writer *r) {
    if (sp.w == 0 || sp.h == 0 || !collect_toggles(bm, sp, ih, w)) {
        rle_encode_scan(bm, sp, ih, iw, r);
        return;
    }
    rle_from_toggles(w->col_start, w->toggles, sp, ih, iw, bm[(size_t)sp.h * sp.w - 1] != 0, r);
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

/* ---- from runs (es_runs.h) ---- */

/* Boundaries of the intervals where rows a and b differ (their symmetric difference), into out;
 * returns how many (even). a, b: na / nb sorted disjoint runs; b shifted right by `shift` columns
 * and clipped to [0, w). */
static int64_t xor_bounds(const int32_t *a, int64_t na, const int32_t *b, int64_t nb, int32_t shift, int32_t w,
                          int32_t *out) {
    int64_t i = 0, j = 0, n = 0;
    int64_t ia = 2 * na, jb = 2 * nb;
    while (i < ia || j < jb) {
        int32_t va = i < ia ? a[i] : INT32_MAX, vb = INT32_MAX;
        if (j < jb) { vb = b[j] + shift; if (vb > w) vb = w; }
        int32_t v;
        if (va < vb) { v = va; i++; }
        else if (vb < va) { v = vb; j++; }
        else { i++; j++; continue; } /* both change here: no change of the difference */
        if (n > 0 && out[n - 1] == v) n--; /* two changes at one column cancel */
        else out[n++] = v;
    }
    return n;
}

/* Value changes of mask i's column-major stream from its runs, bucketed by column into col_start
 * (sp.w + 1) and toggles (rows ascending per column); pos: sp.w + 1 entries. The intervals where each
 * row differs from the row above are found once, kept in bounds (6 R + 8 entries, R = the mask's runs)
 * with their rows in rows_of (3 R + 4), counted per column, then scattered. Returns the number of
 * changes, or -1 when cap is too small. */
static int64_t runs_toggles(const es_runs *r, int64_t i, int64_t ih, int32_t *col_start, int32_t *pos,
                            int32_t *toggles, int64_t cap, int32_t *bounds, int32_t *rows_of) {
    es_span sp = r->spans[i];
    int32_t w = sp.w, h = sp.h;
    int wrap = sp.y0 == 0 && h == ih; /* full-height strip: a column continues the previous one */
    const int64_t *rs = r->row_start + r->first_row[i];
    int64_t nb = 0, total = 0;
    memset(col_start, 0, sizeof(int32_t) * (size_t)(w + 1));
    for (int32_t y = 0; y <= h; y++) {
        /* row y against the row above; row 0 against nothing (or, wrapped, the last row one column left);
         * row h (the pixel after the strip) only when not wrapped */
        if (y == h && wrap) break;
        const int32_t *cur = NULL, *up = NULL;
        int64_t ncur = 0, nup = 0, k0 = nb;
        int32_t shift = 0;
        if (y < h) { cur = r->runs + 2 * rs[y]; ncur = rs[y + 1] - rs[y]; }
        if (y > 0) { up = r->runs + 2 * rs[y - 1]; nup = rs[y] - rs[y - 1]; }
        else if (wrap) { up = r->runs + 2 * rs[h - 1]; nup = rs[h] - rs[h - 1]; shift = 1; }
        nb += xor_bounds(cur, ncur, up, nup, shift, w, bounds + nb);
        for (int64_t k = k0; k < nb; k += 2) {
            int32_t p = bounds[k], q = bounds[k + 1];
            rows_of[k / 2] = y;
            total += q - p;
            col_start[p + 1]++;
            if (q < w) col_start[q + 1]--;
        }
    }
    if (total > cap) return -1;
    for (int32_t j = 1; j <= w; j++) col_start[j] += col_start[j - 1]; /* counts per column */
    for (int32_t j = 1; j <= w; j++) col_start[j] += col_start[j - 1]; /* starts */
    memcpy(pos, col_start, sizeof(int32_t) * (size_t)w);
    for (int64_t k = 0; k < nb; k += 2) {
        int32_t y = rows_of[k / 2];
        for (int32_t j = bounds[k]; j < bounds[k + 1]; j++) toggles[pos[j]++] = y;
    }
    return total;
}

/* int32 entries mask i needs: col_start and pos (w + 1 each), bounds and rows_of (9 R + 12 for its R
 * runs: each row's changes against the row above are at most 2 (runs of both) boundaries, and every
 * row is "above" once more), toggles (at most w per row and the row after the strip). */
static int64_t rle_runs_work(const es_runs *r, int64_t i) {
    es_span sp = r->spans[i];
    int64_t runs = r->row_start[r->first_row[i] + sp.h] - r->row_start[r->first_row[i]];
    return 2 * ((int64_t)sp.w + 1) + 9 * runs + 12 + (int64_t)sp.w * ((int64_t)sp.h + 1);
}

size_t es_rle_runs_workspace_size(const es_runs *r) {
    int64_t need = 0;
    for (int64_t i = 0; i < r->n; i++) {
        int64_t n = rle_runs_work(r, i);
        if (n > need) need = n;
    }
    return sizeof(int32_t) * (size_t)need;
}

int es_rle_runs(const es_runs *r, int ih, int iw, int64_t first, char *out, int64_t cap, int64_t *ends,
                int64_t *done, uint8_t *work, size_t work_size) {
    int st = es_check_runs(r);
    if (st != ES_OK) return st;
    if (!done || ih <= 0 || iw <= 0 || first < 0 || first > r->n || (r->n > 0 && (!ends || !out || !work)))
        return ES_ERR_ARG;
    for (int64_t i = 0; i < r->n; i++) {
        es_span sp = r->spans[i];
        if ((int64_t)sp.x0 + sp.w > iw || (int64_t)sp.y0 + sp.h > ih) return ES_ERR_ARG;
    }
    if (es_rle_runs_workspace_size(r) > work_size) return ES_ERR_CAPACITY;
    int64_t len = first > 0 ? ends[first - 1] : 0;
    *done = first;
    for (int64_t i = first; i < r->n; i++) {
        es_span sp = r->spans[i];
        rle_writer wr = {out + len, cap - len, 0, {0, 0}, 0, 0};
        if (sp.w == 0 || sp.h == 0) {
            rle_emit(&wr, (int64_t)ih * iw); /* all background */
        } else {
            int64_t nr = r->row_start[r->first_row[i] + sp.h] - r->row_start[r->first_row[i]];
            int32_t *col_start = (int32_t *)(void *)work, *pos = col_start + sp.w + 1, *bounds = pos + sp.w + 1;
            int32_t *rows_of = bounds + 6 * nr + 8, *toggles = rows_of + 3 * nr + 4;
            int64_t tcap = (int64_t)(work_size / sizeof(int32_t)) - (toggles - col_start);
            if (runs_toggles(r, i, ih, col_start, pos, toggles, tcap, bounds, rows_of) < 0) return ES_ERR_CAPACITY;
            int64_t lr = r->first_row[i] + sp.h - 1, k1 = r->row_start[lr + 1];
            int last_fg = k1 > r->row_start[lr] && r->runs[2 * k1 - 1] == sp.w;
            rle_from_toggles(col_start, toggles, sp, ih, iw, last_fg, &wr);
        }
        if (wr.full) return ES_ERR_CAPACITY;
        len += wr.len;
        ends[i] = len;
        *done = i + 1;
    }
    return ES_OK;
}
