/* es_runs.c - box-cropped bitmaps to runs of foreground per row (see es_runs.h). */
#include "es_runs.h"

#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define ONES 0x0101010101010101ULL

/* First x in [from, w) whose byte is nonzero (zero when `zero`), or w: 16 bytes per step with SSE2,
 * then 8, then one. */
static int32_t first_byte(const uint8_t *row, int32_t from, int32_t w, int zero) {
    int32_t x = from;
#if defined(__SSE2__)
    for (; x + 16 <= w; x += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(row + x));
        unsigned zeros = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_setzero_si128()));
        unsigned hits = zero ? zeros : (~zeros & 0xFFFFu);
        if (hits) return x + __builtin_ctz(hits);
    }
#endif
    for (; x + 8 <= w; x += 8) {
        uint64_t q;
        memcpy(&q, row + x, 8);
        if (zero ? q != ONES : q != 0) break; /* bool bitmaps: foreground bytes are 1 */
    }
    while (x < w && (row[x] != 0) == zero) x++;
    return x;
}

/* First run of nonzero bytes in row[from, w): returns its start (w when none), *end its end. */
static int32_t next_run(const uint8_t *row, int32_t from, int32_t w, int32_t *end) {
    int32_t x = first_byte(row, from, w, 0);
    if (x >= w) { *end = w; return w; }
    *end = first_byte(row, x + 1, w, 1);
    return x;
}

int es_check_runs(const es_runs *r) {
    if (!r || r->n < 0 || r->nrows < 0 || r->nruns < 0 || !r->row_start || (r->n > 0 && (!r->spans || !r->first_row)) ||
        (r->nruns > 0 && !r->runs))
        return ES_ERR_ARG;
    if (r->row_start[0] < 0 || r->row_start[r->nrows] > r->nruns) return ES_ERR_ARG;
    for (int64_t k = 0; k < r->nrows; k++)
        if (r->row_start[k + 1] < r->row_start[k]) return ES_ERR_ARG;
    for (int64_t i = 0; i < r->n; i++) {
        es_span s = r->spans[i];
        int64_t f = r->first_row[i];
        if (s.w < 0 || s.h < 0 || s.x0 < 0 || s.y0 < 0 || f < 0 || f > r->nrows - s.h) return ES_ERR_ARG;
        for (int64_t row = f; row < f + s.h; row++) {
            int32_t prev = 0;
            for (int64_t k = r->row_start[row]; k < r->row_start[row + 1]; k++) {
                int32_t a = r->runs[2 * k], b = r->runs[2 * k + 1];
                if (a < prev || b <= a || b > s.w) return ES_ERR_ARG;
                prev = b;
            }
        }
    }
    return ES_OK;
}

int es_bitmap_runs(const es_bitmaps *b, int64_t *first_row, int64_t *row_start, int64_t rows_cap, int32_t *runs,
                   int64_t runs_cap, int64_t *nruns) {
    int st = es_check_bitmaps(b);
    if (st != ES_OK) return st;
    if (!nruns || !row_start || rows_cap < 0 || runs_cap < 0 || (b->n > 0 && !first_row) || (runs_cap > 0 && !runs))
        return ES_ERR_ARG;
    int64_t rows = 0, k = 0;
    for (int64_t i = 0; i < b->n; i++) rows += b->spans[i].h;
    if (rows > rows_cap) return ES_ERR_CAPACITY;
    *nruns = 0;
    rows = 0;
    row_start[0] = 0;
    for (int64_t i = 0; i < b->n; i++) {
        es_span sp = b->spans[i];
        const uint8_t *bm = b->bits + b->offsets[i];
        first_row[i] = rows;
        for (int32_t y = 0; y < sp.h; y++, rows++) {
            const uint8_t *row = bm + (size_t)y * (size_t)sp.w;
            int32_t end, a = next_run(row, 0, sp.w, &end);
            while (a < sp.w) {
                if (k >= runs_cap) { *nruns = k; return ES_ERR_CAPACITY; }
                runs[2 * k] = a; runs[2 * k + 1] = end; k++;
                a = next_run(row, end, sp.w, &end);
            }
            row_start[rows + 1] = k;
        }
    }
    *nruns = k;
    return ES_OK;
}
