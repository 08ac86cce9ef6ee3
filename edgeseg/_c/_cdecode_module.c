/* _cdecode_module.c - thin CPython binding of the es_ decoding core.
 *
 * Checks arrays, lets numpy allocate every output, releases the GIL around
 * the C work and turns ES_ERR_* into Python exceptions. The Python-facing
 * API is edgeseg/decode/cpath.py; nothing else should call this module.
 */
#define ES_BINDING_MAIN /* this file imports numpy's C API for the extension (_cbinding.h) */
#include "_cbinding.h"

int raise_status(int st, const char *what) {
    if (st == ES_OK) return 0;
    if (st == ES_ERR_NOMEM) PyErr_NoMemory();
    else PyErr_Format(st == ES_ERR_CAPACITY ? PyExc_RuntimeError : PyExc_ValueError, "%s failed (es status %d)", what, st);
    return -1;
}

/* A float32/int8/uint8 numpy array of `ndim` dims -> es_tensor (a view: no copy). */
int to_tensor(PyObject *obj, int ndim, double scale, double zp, const char *name, es_tensor *t) {
    if (!PyArray_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be a numpy array, got %s", name, Py_TYPE(obj)->tp_name);
        return -1;
    }
    PyArrayObject *a = (PyArrayObject *)obj;
    int type = PyArray_TYPE(a);
    if (PyArray_NDIM(a) != ndim) {
        PyErr_Format(PyExc_ValueError, "%s must be %d-D, got %d-D", name, ndim, PyArray_NDIM(a));
        return -1;
    }
    if (!(type == NPY_FLOAT32 || type == NPY_INT8 || type == NPY_UINT8) || !PyArray_ISNOTSWAPPED(a) ||
        !PyArray_ISALIGNED(a)) {
        PyErr_Format(PyExc_TypeError, "%s must be aligned native float32, int8 or uint8, got dtype %R", name,
                     (PyObject *)PyArray_DESCR(a));
        return -1;
    }
    npy_intp item = PyArray_ITEMSIZE(a);
    t->data = PyArray_DATA(a);
    t->dtype = type == NPY_FLOAT32 ? ES_F32 : (type == NPY_INT8 ? ES_I8 : ES_U8);
    t->ndim = ndim;
    t->scale = (float)scale;
    t->zero_point = (float)zp;
    for (int d = 0; d < ndim; d++) {
        t->shape[d] = PyArray_DIM(a, d);
        t->strides[d] = PyArray_STRIDE(a, d) / item;
        if (PyArray_STRIDE(a, d) % item) {
            PyErr_Format(PyExc_ValueError, "%s has strides that are not a multiple of its item size", name);
            return -1;
        }
    }
    return 0;
}

static PyArrayObject *float_array(PyObject *obj, npy_intp rows, npy_intp cols, const char *name) {
    PyArrayObject *a = (PyArrayObject *)PyArray_FROMANY(obj, NPY_FLOAT32, 1, 2, NPY_ARRAY_IN_ARRAY);
    if (!a) return NULL;
    if (PyArray_SIZE(a) != rows * cols) {
        PyErr_Format(PyExc_ValueError, "%s must hold %zd x %zd float32 values, got %zd", name, (Py_ssize_t)rows,
                     (Py_ssize_t)cols, (Py_ssize_t)PyArray_SIZE(a));
        Py_DECREF(a);
        return NULL;
    }
    return a;
}

#define LB_FORMAT "(iiiiiidd)"
#define LB_ARGS(lb) &lb.orig_h, &lb.orig_w, &lb.input_h, &lb.input_w, &lb.pad_left, &lb.pad_top, &lb.scale_x, &lb.scale_y

static PyObject *py_detect(PyObject *self, PyObject *args) {
    PyObject *boxes_o, *scores_o, *obj_o, *labels_o, *centres_o, *strides_o;
    double bs, bz, ss, sz, os, oz, ls, lz, iou;
    float thr, box_sx, box_sy;
    Py_ssize_t topk, max_det, num_classes;
    int enc, agnostic, strict, nms;
    es_letterbox lb;
    es_tensor boxes, scores, obj, labels;
    (void)self;
    if (!PyArg_ParseTuple(args, "OddOddOddOddOOfdnnipppnff" LB_FORMAT, &boxes_o, &bs, &bz, &scores_o, &ss, &sz, &obj_o,
                          &os, &oz, &labels_o, &ls, &lz, &centres_o, &strides_o, &thr, &iou, &topk, &max_det, &enc,
                          &agnostic, &strict, &nms, &num_classes, &box_sx, &box_sy, LB_ARGS(lb)))
        return NULL;
    if (to_tensor(boxes_o, 2, bs, bz, "boxes", &boxes) || to_tensor(scores_o, 2, ss, sz, "scores", &scores)) return NULL;
    if (obj_o != Py_None && to_tensor(obj_o, 2, os, oz, "objectness", &obj)) return NULL;
    if (labels_o != Py_None && to_tensor(labels_o, 2, ls, lz, "labels", &labels)) return NULL;
    npy_intp a_n = (npy_intp)scores.shape[0];
    PyArrayObject *centres = NULL, *strides = NULL;
    if (centres_o != Py_None && !(centres = float_array(centres_o, a_n, 2, "centres"))) return NULL;
    if (strides_o != Py_None && !(strides = float_array(strides_o, a_n, 1, "strides"))) {
        Py_XDECREF(centres);
        return NULL;
    }
    es_detect_params p = {thr, iou, topk, max_det, enc, agnostic, strict, nms, num_classes, box_sx, box_sy};
    npy_intp cap = max_det < a_n ? max_det : a_n;
    npy_intp d1[1] = {cap}, d2[2] = {cap, 4};
    PyObject *anchor = PyArray_SimpleNew(1, d1, NPY_INT64), *cls = PyArray_SimpleNew(1, d1, NPY_INT32);
    PyObject *raw = PyArray_SimpleNew(1, d1, NPY_FLOAT32), *out = PyArray_SimpleNew(2, d2, NPY_FLOAT32);
    es_candidate *scratch = PyMem_RawMalloc(sizeof(es_candidate) * (size_t)(a_n > 0 ? a_n : 1));
    int64_t n = 0, nonfinite = 0;
    int st = ES_ERR_NOMEM;
    if (anchor && cls && raw && out && scratch) {
        Py_BEGIN_ALLOW_THREADS
        st = es_detect(&boxes, &scores, obj_o != Py_None ? &obj : NULL, labels_o != Py_None ? &labels : NULL, centres ? PyArray_DATA(centres) : NULL, strides ? PyArray_DATA(strides) : NULL,
                       &p, &lb, scratch, a_n, PyArray_DATA((PyArrayObject *)anchor), PyArray_DATA((PyArrayObject *)cls),
                       PyArray_DATA((PyArrayObject *)raw), PyArray_DATA((PyArrayObject *)out), cap, &n, &nonfinite);
        Py_END_ALLOW_THREADS
    }
    PyMem_RawFree(scratch);
    Py_XDECREF(centres);
    Py_XDECREF(strides);
    if (st != ES_OK) {
        Py_XDECREF(anchor); Py_XDECREF(cls); Py_XDECREF(raw); Py_XDECREF(out);
        if (!PyErr_Occurred()) raise_status(st, "es_detect");
        return NULL;
    }
    return Py_BuildValue("NNNNnn", anchor, cls, raw, out, (Py_ssize_t)n, (Py_ssize_t)nonfinite);
}

/* The decoder's RLE call (rle_call, _cbinding.h): instances first.. into out[0, cap). */
typedef struct { es_mask_job *job; uint8_t *work; size_t work_size; } job_rle;
static int job_rle_call(void *ctx, int64_t first, char *out, int64_t cap, int64_t *ends, int64_t *done) {
    job_rle *c = ctx;
    return es_masks_rle(c->job, first, out, cap, ends, done, c->work, c->work_size);
}

/* Builds n RLE strings, growing the character buffer when an instance does not fit. */
PyObject *rle_strings(rle_call call, void *ctx, int64_t n, int64_t width) {
    int64_t cap = 4096 + 32 * width * (n > 0 ? n : 1), done = 0;
    int64_t *ends = PyMem_RawMalloc(sizeof(int64_t) * (size_t)(n > 0 ? n : 1));
    char *buf = PyMem_RawMalloc((size_t)cap);
    int st = ES_ERR_NOMEM;
    while (buf && ends) {
        int64_t first = done;
        Py_BEGIN_ALLOW_THREADS
        st = call(ctx, first, buf, cap, ends, &done);
        Py_END_ALLOW_THREADS
        if (st != ES_ERR_CAPACITY || cap > ((int64_t)1 << 40)) break;
        /* an instance has at most 2 runs per pixel column and row pair: grow well past it */
        char *bigger = PyMem_RawRealloc(buf, (size_t)(cap * 4));
        if (!bigger) { st = ES_ERR_NOMEM; break; }
        buf = bigger;
        cap *= 4;
    }
    PyObject *list = NULL;
    if (st == ES_OK && (list = PyList_New((Py_ssize_t)n))) {
        for (int64_t i = 0; i < n; i++) {
            int64_t start = i ? ends[i - 1] : 0;
            PyObject *s = PyUnicode_DecodeASCII(buf + start, (Py_ssize_t)(ends[i] - start), NULL);
            if (!s) { Py_CLEAR(list); break; }
            PyList_SET_ITEM(list, (Py_ssize_t)i, s);
        }
    } else if (st != ES_OK) {
        raise_status(st, "RLE encoding");
    }
    PyMem_RawFree(buf);
    PyMem_RawFree(ends);
    return list;
}

static PyObject *py_masks(PyObject *self, PyObject *args) {
    int kind, mode, threads, flags;
    PyObject *coeffs_o, *maps_o, *boxes_o, *out_o, *regions_o = Py_None;
    double ms, mz;
    es_letterbox lb;
    es_tensor maps;
    (void)self;
    if (!PyArg_ParseTuple(args, "iiOOddO" LB_FORMAT "Oii|O", &kind, &mode, &coeffs_o, &maps_o, &ms, &mz, &boxes_o,
                          LB_ARGS(lb), &out_o, &threads, &flags, &regions_o))
        return NULL;
    if (kind < ES_CROPPED || kind > ES_RLE) return PyErr_Format(PyExc_ValueError, "unknown output kind %d", kind);
    if (mode != ES_MODE_PROTO && mode != ES_MODE_ROI && mode != ES_MODE_MAP)
        return PyErr_Format(PyExc_ValueError, "unknown mask mode %d", mode);
    if ((mode == ES_MODE_PROTO) != (coeffs_o != Py_None))
        return PyErr_Format(PyExc_ValueError, "mask mode %s %s coefficients",
                            mode == ES_MODE_PROTO ? "PROTO" : (mode == ES_MODE_ROI ? "ROI" : "MAP"),
                            mode == ES_MODE_PROTO ? "needs" : "takes no");
    if (es_check_letterbox(&lb, mode != ES_MODE_ROI)) {
        char got[200];
        snprintf(got, sizeof got, "orig %dx%d, input %dx%d, pad %d,%d, scale %g,%g", lb.orig_h, lb.orig_w, lb.input_h,
                 lb.input_w, lb.pad_left, lb.pad_top, lb.scale_x, lb.scale_y);
        return PyErr_Format(PyExc_ValueError, "letterbox needs sizes in [1, %d], scales in [%g, %g] and pads "
                            "within +-%d, got %s", ES_MAX_SIDE, ES_MIN_SCALE, ES_MAX_SCALE, ES_MAX_SIDE, got);
    }
    if (to_tensor(maps_o, 3, ms, mz, "maps", &maps)) return NULL;
    PyArrayObject *boxes = (PyArrayObject *)PyArray_FROMANY(boxes_o, NPY_FLOAT32, 2, 2, NPY_ARRAY_IN_ARRAY);
    if (!boxes) return NULL;
    npy_intp n = PyArray_DIM(boxes, 0);
    PyArrayObject *coeffs = NULL;
    if (PyArray_DIM(boxes, 1) != 4) {
        PyErr_Format(PyExc_ValueError, "boxes must be (N, 4), got (%zd, %zd)", (Py_ssize_t)n,
                     (Py_ssize_t)PyArray_DIM(boxes, 1));
        goto fail;
    }
    if (coeffs_o != Py_None && !(coeffs = float_array(coeffs_o, n, (npy_intp)maps.shape[0], "coeffs"))) goto fail;
    npy_intp sdims[2] = {n, 4};
    PyObject *spans = PyArray_SimpleNew(2, sdims, NPY_INT32);
    if (!spans) goto fail;
    es_span *sp = PyArray_DATA((PyArrayObject *)spans);
    /* regions (n, 4): where to render, when smaller than where the maps lie (prompt masks) */
    PyArrayObject *regions = regions_o == Py_None ? NULL : float_array(regions_o, n, 4, "regions");
    if (regions_o != Py_None && !regions) { Py_DECREF(spans); goto fail; }
    int st = es_spans(PyArray_DATA(regions ? regions : boxes), n, lb.orig_h, lb.orig_w, sp, n);
    Py_XDECREF(regions);
    if (raise_status(st, "es_spans")) { Py_DECREF(spans); goto fail; }
    es_mask_job job = {mode, coeffs ? PyArray_DATA(coeffs) : NULL, &maps, PyArray_DATA(boxes), sp, n, &lb, flags};
    int nthreads = kind == ES_RLE || threads < 1 ? 1 : threads;
    size_t per = es_workspace_size(maps.shape[1], maps.shape[2], lb.orig_h, lb.orig_w);
    if (per == 0) { PyErr_SetString(PyExc_ValueError, "empty map or image size"); Py_DECREF(spans); goto fail; }
    uint8_t *work = PyMem_RawMalloc(per * (size_t)nthreads);
    if (!work) { PyErr_NoMemory(); Py_DECREF(spans); goto fail; }
    PyObject *result = NULL;
    if (kind == ES_CROPPED) {
        npy_intp odims[1] = {n};
        PyObject *offsets = PyArray_SimpleNew(1, odims, NPY_INT64);
        npy_intp total = 0;
        if (offsets) {
            int64_t *off = PyArray_DATA((PyArrayObject *)offsets);
            for (npy_intp i = 0; i < n; i++) { off[i] = total; total += (npy_intp)sp[i].w * sp[i].h; }
        }
        npy_intp bdims[1] = {total};
        PyObject *bits = offsets ? PyArray_SimpleNew(1, bdims, NPY_BOOL) : NULL;
        if (bits) {
            Py_BEGIN_ALLOW_THREADS
            st = es_masks_cropped(&job, PyArray_DATA((PyArrayObject *)offsets), PyArray_DATA((PyArrayObject *)bits),
                                  total, work, per * (size_t)nthreads, nthreads);
            Py_END_ALLOW_THREADS
            if (!raise_status(st, "es_masks_cropped")) result = Py_BuildValue("NNN", bits, spans, offsets);
            else { Py_DECREF(bits); Py_DECREF(offsets); Py_DECREF(spans); }
        } else { Py_XDECREF(offsets); Py_DECREF(spans); }
    } else if (kind == ES_FULL) {
        PyArrayObject *out = (PyArrayObject *)out_o;
        if (!PyArray_Check(out_o) || PyArray_NDIM(out) != 3 || !PyArray_IS_C_CONTIGUOUS(out) ||
            !PyArray_ISWRITEABLE(out) || (PyArray_TYPE(out) != NPY_BOOL && PyArray_TYPE(out) != NPY_UINT8) ||
            PyArray_DIM(out, 1) != lb.orig_h || PyArray_DIM(out, 2) != lb.orig_w || PyArray_DIM(out, 0) < n) {
            PyErr_Format(PyExc_ValueError,
                         "out must be a writable C-contiguous bool array of shape (>= %zd, %d, %d)", (Py_ssize_t)n,
                         lb.orig_h, lb.orig_w);
            Py_DECREF(spans);
        } else {
            int64_t cap = (int64_t)PyArray_SIZE(out);
            Py_BEGIN_ALLOW_THREADS
            st = es_masks_full(&job, PyArray_DATA(out), cap, work, per * (size_t)nthreads, nthreads);
            Py_END_ALLOW_THREADS
            if (!raise_status(st, "es_masks_full")) result = spans;
            else Py_DECREF(spans);
        }
    } else {
        job_rle ctx = {&job, work, per};
        PyObject *strings = rle_strings(job_rle_call, &ctx, job.n, lb.orig_w);
        if (strings) result = Py_BuildValue("NN", strings, spans);
        else Py_DECREF(spans);
    }
    PyMem_RawFree(work);
    Py_XDECREF(coeffs);
    Py_DECREF(boxes);
    return result;
fail:
    Py_XDECREF(coeffs);
    Py_DECREF(boxes);
    return NULL;
}

/* bits (1-D uint8/bool), offsets (n,) int64, spans (n, 4) int32 -> es_bitmaps; arrays kept in refs[3]. */
int to_bitmaps(PyObject *bits_o, PyObject *offsets_o, PyObject *spans_o, es_bitmaps *b, PyArrayObject **refs) {
    refs[0] = refs[1] = refs[2] = NULL;
    if (!PyArray_Check(bits_o) || PyArray_NDIM((PyArrayObject *)bits_o) != 1 ||
        (PyArray_TYPE((PyArrayObject *)bits_o) != NPY_BOOL && PyArray_TYPE((PyArrayObject *)bits_o) != NPY_UINT8) ||
        !PyArray_IS_C_CONTIGUOUS((PyArrayObject *)bits_o)) {
        PyErr_SetString(PyExc_TypeError, "bits must be a 1-D C-contiguous bool or uint8 array");
        return -1;
    }
    Py_INCREF(bits_o);
    refs[0] = (PyArrayObject *)bits_o;
    refs[1] = (PyArrayObject *)PyArray_FROMANY(offsets_o, NPY_INT64, 1, 1, NPY_ARRAY_IN_ARRAY);
    refs[2] = (PyArrayObject *)PyArray_FROMANY(spans_o, NPY_INT32, 2, 2, NPY_ARRAY_IN_ARRAY);
    if (!refs[1] || !refs[2]) return -1;
    npy_intp n = PyArray_DIM(refs[1], 0);
    if (PyArray_DIM(refs[2], 0) != n || PyArray_DIM(refs[2], 1) != 4) {
        PyErr_Format(PyExc_ValueError, "spans must be (%zd, 4) for %zd offsets, got (%zd, %zd)", (Py_ssize_t)n,
                     (Py_ssize_t)n, (Py_ssize_t)PyArray_DIM(refs[2], 0), (Py_ssize_t)PyArray_DIM(refs[2], 1));
        return -1;
    }
    b->bits = PyArray_DATA(refs[0]);
    b->nbits = (int64_t)PyArray_SIZE(refs[0]);
    b->offsets = PyArray_DATA(refs[1]);
    b->spans = PyArray_DATA(refs[2]);
    b->n = (int64_t)n;
    return raise_status(es_check_bitmaps(b), "bitmap layout check");
}

void drop_refs(PyArrayObject **refs) { for (int k = 0; k < 3; k++) Py_XDECREF(refs[k]); }

static PyObject *py_sweep_hits(PyObject *self, PyObject *args) {
    PyObject *sweep_o, *bits_o, *offsets_o, *spans_o, *which_o;
    int sx0, sy0;
    PyArrayObject *refs[3];
    es_bitmaps b;
    (void)self;
    if (!PyArg_ParseTuple(args, "OiiOOOO", &sweep_o, &sx0, &sy0, &bits_o, &offsets_o, &spans_o, &which_o)) return NULL;
    if (!PyArray_Check(sweep_o) || PyArray_NDIM((PyArrayObject *)sweep_o) != 2 ||
        PyArray_TYPE((PyArrayObject *)sweep_o) != NPY_UINT8 || !PyArray_IS_C_CONTIGUOUS((PyArrayObject *)sweep_o)) {
        PyErr_SetString(PyExc_TypeError, "sweep must be a 2-D C-contiguous uint8 array");
        return NULL;
    }
    PyArrayObject *sweep = (PyArrayObject *)sweep_o;
    if (to_bitmaps(bits_o, offsets_o, spans_o, &b, refs)) { drop_refs(refs); return NULL; }
    PyArrayObject *which = (PyArrayObject *)PyArray_FROMANY(which_o, NPY_INT64, 1, 1, NPY_ARRAY_IN_ARRAY);
    npy_intp sh = PyArray_DIM(sweep, 0), sw = PyArray_DIM(sweep, 1);
    uint8_t *scratch = which ? PyMem_RawMalloc((size_t)(sw > 0 ? sw : 1)) : NULL;
    int64_t area = 0, hit = 0;
    int st = ES_ERR_NOMEM;
    if (scratch)
        st = es_sweep_hits(PyArray_DATA(sweep), (int32_t)sw, (int32_t)sh, sx0, sy0, &b, PyArray_DATA(which),
                           (int64_t)PyArray_DIM(which, 0), scratch, (int64_t)sw, &area, &hit);
    PyMem_RawFree(scratch);
    Py_XDECREF(which);
    drop_refs(refs);
    if (st != ES_OK) {
        if (!PyErr_Occurred()) raise_status(st, "es_sweep_hits");
        return NULL;
    }
    return Py_BuildValue("LL", (long long)area, (long long)hit);
}

static PyMethodDef methods[] = {
    {"detect", py_detect, METH_VARARGS,
     "detect(boxes, b_scale, b_zp, scores, s_scale, s_zp, centres, strides, raw_threshold, iou, topk, max_det, "
     "encoding, agnostic, letterbox) -> (anchor, class, raw, boxes, n); see edgeseg.decode.cpath."},
    {"masks", py_masks, METH_VARARGS,
     "masks(kind, mode, coeffs, maps, m_scale, m_zp, boxes, letterbox, out, threads, flags[, regions]); "
     "see edgeseg.decode.cpath."},
    {"sweep_hits", py_sweep_hits, METH_VARARGS,
     "sweep_hits(sweep, x0, y0, bits, offsets, spans, which) -> (swept pixels, swept pixels other masks cover)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_cdecode", "C core of edgeseg's mask decoder.", -1, methods};

PyMODINIT_FUNC PyInit__cdecode(void) {
    import_array();
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    if (PyModule_AddFunctions(m, es_post_methods) < 0) { Py_DECREF(m); return NULL; }
    if (PyModule_AddFunctions(m, es_kernel_methods) < 0) { Py_DECREF(m); return NULL; }
    PyModule_AddIntConstant(m, "CROPPED", ES_CROPPED);
    PyModule_AddIntConstant(m, "FULL", ES_FULL);
    PyModule_AddIntConstant(m, "RLE", ES_RLE);
    PyModule_AddIntConstant(m, "PROTO", ES_MODE_PROTO);
    PyModule_AddIntConstant(m, "ROI", ES_MODE_ROI);
    PyModule_AddIntConstant(m, "MAP", ES_MODE_MAP);
    PyModule_AddIntConstant(m, "NO_BLOCKFILL", ES_NO_BLOCKFILL);
    PyModule_AddIntConstant(m, "NO_STREAM", ES_NO_STREAM);
    PyModule_AddIntConstant(m, "FULL_LOGITS", ES_FULL_LOGITS);
    PyModule_AddIntConstant(m, "LTRB", ES_LTRB);
    PyModule_AddIntConstant(m, "XYXY", ES_XYXY);
    PyModule_AddIntConstant(m, "CXCYWH", ES_CXCYWH);
    return m;
}
