/* es_decode.h - instance mask decoding core (plain C99, no Python).
 *
 * Semantics: edgeseg/decode/reference.py (proto family) and
 * edgeseg/decode/reference_roi.py (roi family); compile with
 * -ffp-contract=off and without -ffast-math so results match bit for bit.
 *
 * Conventions: every function returns ES_OK or a negative ES_ERR_*; all
 * outputs are caller-allocated with an explicit capacity that is checked
 * before any write. Boxes are XYXY float32, pixel i covering [i, i+1).
 */
#ifndef ES_DECODE_H
#define ES_DECODE_H

#include <stddef.h>
#include <stdint.h>

enum { ES_OK = 0, ES_ERR_ARG = -1, ES_ERR_CAPACITY = -2, ES_ERR_NOMEM = -3 };
enum { ES_F32 = 0, ES_I8 = 1, ES_U8 = 2 };                 /* tensor element types */
enum { ES_LTRB = 0, ES_XYXY = 1, ES_CXCYWH = 2 };          /* box encodings */
enum { ES_CROPPED = 0, ES_FULL = 1, ES_RLE = 2 };          /* mask output kinds */
enum { ES_MODE_PROTO = 0, ES_MODE_ROI = 1 };               /* what a mask job's maps are */
/* ES_MODE_MAP: maps (n, Hm, Wm) are per-instance logits over the whole model input (mask-first
 * families), sampled through the letterbox like protos; the box is only the region to render. */
enum { ES_MODE_MAP = 2 };
/* Flags that switch off one speed trick each (for benchmarks; results are identical). */
enum { ES_NO_BLOCKFILL = 1, ES_NO_STREAM = 2, ES_FULL_LOGITS = 4 };

/* A strided 1-3 D tensor; int types dequantize as ((float)q - zero_point) * scale. */
typedef struct {
    const void *data;
    int dtype, ndim;
    int64_t shape[3], strides[3]; /* strides in elements */
    float scale, zero_point;
} es_tensor;

/* Original image <-> model input: u = x * scale + pad. */
typedef struct {
    int orig_h, orig_w, input_h, input_w, pad_left, pad_top;
    double scale_x, scale_y;
} es_letterbox;

typedef struct {
    float raw_threshold;   /* score threshold in raw space (may be +-inf) */
    double iou_threshold;  /* drop when IoU > this */
    int64_t pre_nms_topk, max_detections;
    int box_encoding, class_agnostic;
    int score_strict;      /* keep raw > threshold instead of >= */
    int nms;               /* 0: no suppression (end-to-end models), keep the first max_detections */
    int64_t num_classes;   /* labels: valid class ids are [0, num_classes) */
    float box_scale_x, box_scale_y; /* xyxy/cxcywh raw values are multiplied by these first (1: pixels) */
} es_detect_params;

/* Largest image or model-input side the core accepts, pixels (bounds every allocation and index). */
#define ES_MAX_SIDE 65536
/* Letterbox scales (resized / original size) the core accepts. */
#define ES_MIN_SCALE 1e-6
#define ES_MAX_SCALE 1e6

/* ES_OK when lb can be used: orig sizes (and input sizes when need_input) in [1, ES_MAX_SIDE], scales
 * in [ES_MIN_SCALE, ES_MAX_SCALE], pads within +-ES_MAX_SIDE; else ES_ERR_ARG (NaN, Inf, zero or negative fields). */
int es_check_letterbox(const es_letterbox *lb, int need_input);

/* Scratch entry of es_detect (callers only allocate them). */
typedef struct { float raw, box[4]; int32_t cls; int64_t anchor; } es_candidate;

/* Mask placement: top-left (x0, y0) and size w x h in original pixels. */
typedef struct { int32_t x0, y0, w, h; } es_span;

/* Candidates, box decode, greedy NMS, letterbox undo (steps 1-4 of the reference).
 * boxes (A,4) and scores (A,C) raw; objectness (A,1) multiplies every score, or NULL;
 * labels (A,1) gives each row's class (scores then (A,1)), or NULL;
 * centres (A,2)/strides (A,) for ES_LTRB else NULL.
 * Rows with a NaN score and candidates with an infinite score or a NaN/Inf decoded box are dropped
 * before NMS; *n_nonfinite (if not NULL) = how many.
 * scratch: cap_scratch >= A entries. Outputs hold cap_out rows; *n_out = kept count. */
int es_detect(const es_tensor *boxes, const es_tensor *scores, const es_tensor *objectness,
              const es_tensor *labels, const float *centres, const float *strides,
              const es_detect_params *p, const es_letterbox *lb, es_candidate *scratch, int64_t cap_scratch,
              int64_t *anchor_out, int32_t *class_out, float *raw_out, float *boxes_out, int64_t cap_out,
              int64_t *n_out, int64_t *n_nonfinite);

/* Pixel spans of n boxes (original pixels) in an h x w image: pixels whose centres lie in the box. */
int es_spans(const float *boxes, int64_t n, int orig_h, int orig_w, es_span *out, int64_t cap);

/* Work memory one thread needs for masks of a (K, Hp, Wp) map / ROI into an h x w image (bytes). */
size_t es_workspace_size(int64_t hp, int64_t wp, int orig_h, int orig_w);

/* One mask request: proto (coeffs (n,K) float32 + protos (K,Hp,Wp)) or roi (logits (n,M,M)), named by mode. */
typedef struct {
    int mode;                  /* ES_MODE_PROTO or ES_MODE_ROI */
    const float *coeffs;       /* proto: (n, K) float32, C order; NULL for roi */
    const es_tensor *maps;     /* proto: protos (K,Hp,Wp); roi: logits (n,M,M) */
    const float *boxes;        /* (n, 4) original pixels */
    const es_span *spans;      /* (n,) from es_spans */
    int64_t n;
    const es_letterbox *lb;    /* proto and map; roi uses lb->orig_h/orig_w */
    int flags;                 /* ES_NO_* switches */
} es_mask_job;

/* Box-cropped bitmaps: instance i at out + offsets[i], h*w bytes 0/1 row-major. */
int es_masks_cropped(const es_mask_job *job, const int64_t *offsets, uint8_t *out, int64_t cap,
                     uint8_t *work, size_t work_size, int threads);

/* Full frames: out is (n, H, W) bytes 0/1, reused by the caller; every byte is written. */
int es_masks_full(const es_mask_job *job, uint8_t *out, int64_t cap, uint8_t *work, size_t work_size, int threads);

/* COCO RLE strings (pycocotools' compressed counts) of instances first..n-1, written back to
 * back into out; ends[i] = end offset of instance i. On ES_ERR_CAPACITY *done says how many
 * instances are complete, so a caller can grow out and continue from there. */
int es_masks_rle(const es_mask_job *job, int64_t first, char *out, int64_t cap, int64_t *ends, int64_t *done,
                 uint8_t *work, size_t work_size);

#endif
