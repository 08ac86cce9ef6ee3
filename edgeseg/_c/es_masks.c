/* es_masks.c - box-cropped and full-frame mask outputs, optionally on worker threads.
 *
 * Full frames are written with streaming (non-temporal) stores from an L1-resident
 * row: a frame is written once and not read back soon, so it should not evict the
 * caches, and the caller reuses one buffer so no call pays fresh page faults.
 */
#include "es_render.h"

#include <string.h>
#ifndef ES_NO_THREADS
#include <pthread.h>
#endif
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

static void put_bytes(uint8_t *dst, const uint8_t *src, size_t n) {
    if (src) memcpy(dst, src, n);
    else memset(dst, 0, n);
}

/* dst[0..n) = src[0..n) (zeros when src is NULL), with non-temporal stores when `stream`:
 * a full frame is written once and not read again soon, so it should bypass the caches. */
static void stream_copy(uint8_t *dst, const uint8_t *src, size_t n, int stream) {
#if defined(__SSE2__)
    if (stream) {
        size_t head = (16 - ((uintptr_t)dst & 15)) & 15;
        if (head > n) head = n;
        put_bytes(dst, src, head);
        dst += head; n -= head;
        if (src) src += head;
        for (; n >= 16; n -= 16, dst += 16) {
            _mm_stream_si128((__m128i *)dst, src ? _mm_loadu_si128((const __m128i *)src) : _mm_setzero_si128());
            if (src) src += 16;
        }
    }
#else
    (void)stream;
#endif
    put_bytes(dst, src, n);
}

static void fence(void) {
#if defined(__SSE2__)
    _mm_sfence();
#endif
}

/* ---- jobs: each runs a range of instances with its own work memory ---- */

typedef struct {
    const es_mask_job *job;
    int kind, tid, nthreads;
    const int64_t *offsets;
    uint8_t *out, *work;
    size_t work_size;
} task_t;

static void *run_task(void *arg) {
    task_t *t = arg;
    const es_mask_job *job = t->job;
    const es_tensor *m = job->maps;
    int oh = job->lb->orig_h, ow = job->lb->orig_w;
    es_work w = es_carve(t->work, m->shape[1], m->shape[2], oh, ow);
    size_t frame = (size_t)oh * (size_t)ow;
    int stream = !(job->flags & ES_NO_STREAM);
    if (t->kind == ES_FULL) memset(w.rowbuf, 0, (size_t)ow);
    for (int64_t i = t->tid; i < job->n; i += t->nthreads) {
        es_instance in;
        es_prepare(job, i, &w, &in);
        if (t->kind == ES_CROPPED) {
            uint8_t *dst = t->out + t->offsets[i];
            for (int32_t y = 0; y < in.sp.h && in.nruns; y++) es_render_row(job, &w, &in, y, dst + (size_t)y * (size_t)in.sp.w);
            continue;
        }
        uint8_t *f = t->out + (size_t)i * frame;
        if (in.nruns == 0) { stream_copy(f, NULL, frame, stream); continue; }
        stream_copy(f, NULL, (size_t)in.sp.y0 * (size_t)ow, stream);
        for (int32_t y = 0; y < in.sp.h; y++) {
            es_render_row(job, &w, &in, y, w.rowbuf + in.sp.x0);
            stream_copy(f + (size_t)(in.sp.y0 + y) * (size_t)ow, w.rowbuf, (size_t)ow, stream);
        }
        memset(w.rowbuf + in.sp.x0, 0, (size_t)in.sp.w);
        size_t below = (size_t)(in.sp.y0 + in.sp.h) * (size_t)ow;
        stream_copy(f + below, NULL, frame - below, stream);
    }
    if (t->kind == ES_FULL) fence();
    return NULL;
}

static int run_tasks(const es_mask_job *job, int kind, const int64_t *offsets, uint8_t *out, uint8_t *work,
                     size_t work_size, int threads) {
    const es_tensor *m = job->maps;
    size_t per = es_workspace_size(m->shape[1], m->shape[2], job->lb->orig_h, job->lb->orig_w);
    if (threads < 1) threads = 1;
    if (threads > job->n) threads = job->n > 0 ? (int)job->n : 1;
#ifdef ES_NO_THREADS
    threads = 1;
#endif
    if (!work || per == 0 || work_size / per < (size_t)threads) return ES_ERR_CAPACITY;
    task_t tasks[64];
    if (threads > 64) threads = 64;
    for (int t = 0; t < threads; t++)
        tasks[t] = (task_t){job, kind, t, threads, offsets, out, work + (size_t)t * per, per};
#ifndef ES_NO_THREADS
    pthread_t ids[64];
    int started = 0;
    for (int t = 1; t < threads; t++) {
        if (pthread_create(&ids[t], NULL, run_task, &tasks[t]) != 0) break;
        started = t;
    }
    run_task(&tasks[0]);
    for (int t = 1; t <= started; t++) pthread_join(ids[t], NULL);
    for (int t = started + 1; t < threads; t++) run_task(&tasks[t]); /* threads that failed to start */
#else
    run_task(&tasks[0]);
#endif
    return ES_OK;
}

int es_masks_cropped(const es_mask_job *job, const int64_t *offsets, uint8_t *out, int64_t cap, uint8_t *work,
                     size_t work_size, int threads) {
    int st = es_check_job(job);
    if (st != ES_OK) return st;
    if (job->n > 0 && (!offsets || !out)) return ES_ERR_ARG;
    for (int64_t i = 0; i < job->n; i++) {
        int64_t size = (int64_t)job->spans[i].w * job->spans[i].h;
        if (offsets[i] < 0 || offsets[i] > cap - size) return ES_ERR_CAPACITY;
    }
    return job->n ? run_tasks(job, ES_CROPPED, offsets, out, work, work_size, threads) : ES_OK;
}

int es_masks_full(const es_mask_job *job, uint8_t *out, int64_t cap, uint8_t *work, size_t work_size, int threads) {
    int st = es_check_job(job);
    if (st != ES_OK) return st;
    int64_t frame = (int64_t)job->lb->orig_h * job->lb->orig_w;
    if (job->n > 0 && !out) return ES_ERR_ARG;
    if (job->n > cap / frame) return ES_ERR_CAPACITY;
    return job->n ? run_tasks(job, ES_FULL, NULL, out, work, work_size, threads) : ES_OK;
}
