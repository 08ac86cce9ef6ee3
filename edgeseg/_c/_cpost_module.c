/* _cpost_module.c - CPython binding of the post-processing core: runs, grasp geometry, RLE, poses.
 *
 * Part of the _cdecode extension (its functions join the module's in PyInit__cdecode); thin like
 * _cdecode_module.c: checks arrays, lets numpy allocate every output, releases the GIL around the
 * C work. Python-facing API: edgeseg/result.py (runs, RLE) and edgeseg/grasp/ (shape.py, geometry3d.py).
 */
#include "_cbinding.h"

#include <string.h>

/* A run table (see es_runs.h) from numpy arrays; refs[0..3] hold the references (drop_runs_refs). */
static int to_runs(PyObject *runs_o, PyObject *row_start_o, PyObject *first_row_o, PyObject *spans_o, es_runs *r,
                   PyArrayObject **refs) {
    refs[0] = (PyArrayObject *)PyArray_FROMANY(runs_o, NPY_INT32, 2, 2, NPY_ARRAY_IN_ARRAY);
    refs[1] = refs[0] ? (PyArrayObject *)PyArray_FROMANY(row_start_o, NPY_INT64, 1, 1, NPY_ARRAY_IN_ARRAY) : NULL;
    refs[2] = refs[1] ? (PyArrayObject *)PyArray_FROMANY(first_row_o, NPY_INT64, 1, 1, NPY_ARRAY_IN_ARRAY) : NULL;
    refs[3] = refs[2] ? (PyArrayObject *)PyArray_FROMANY(spans_o, NPY_INT32, 2, 2, NPY_ARRAY_IN_ARRAY) : NULL;
    if (!refs[3]) return -1;
    npy_intp n = PyArray_DIM(refs[2], 0);
    if (PyArray_DIM(refs[0], 1) != 2 || PyArray_DIM(refs[1], 0) < 1 || PyArray_DIM(refs[3], 0) != n ||
        PyArray_DIM(refs[3], 1) != 4) {
        PyErr_SetString(PyExc_ValueError, "a run table is runs (R, 2) int32, row_start (rows + 1,) int64, "
                                          "first_row (n,) int64 and spans (n, 4) int32");
        return -1;
    }
    r->runs = PyArray_DATA(refs[0]);
    r->nruns = (int64_t)PyArray_DIM(refs[0], 0);
    r->row_start = PyArray_DATA(refs[1]);
    r->nrows = (int64_t)PyArray_DIM(refs[1], 0) - 1;
    r->first_row = PyArray_DATA(refs[2]);
    r->spans = PyArray_DATA(refs[3]);
    r->n = (int64_t)n;
    return raise_status(es_check_runs(r), "run table check");
}

static void drop_runs_refs(PyArrayObject **refs) { for (int k = 0; k < 4; k++) Py_XDECREF(refs[k]); }

static PyObject *py_runs(PyObject *self, PyObject *args) {
    PyObject *bits_o, *offsets_o, *spans_o;
    PyArrayObject *refs[3];
    es_bitmaps b;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOO", &bits_o, &offsets_o, &spans_o)) return NULL;
    if (to_bitmaps(bits_o, offsets_o, spans_o, &b, refs)) { drop_refs(refs); return NULL; }
    int64_t rows = 0;
    for (int64_t i = 0; i < b.n; i++) rows += b.spans[i].h;
    npy_intp nd = (npy_intp)b.n, rd = (npy_intp)rows + 1;
    PyObject *first_row = PyArray_SimpleNew(1, &nd, NPY_INT64), *row_start = PyArray_SimpleNew(1, &rd, NPY_INT64);
    int64_t cap = 2 * rows + 64, nruns = 0;
    int32_t *buf = NULL;
    int st = ES_ERR_NOMEM;
    while (first_row && row_start) {
        int32_t *grown = PyMem_RawRealloc(buf, sizeof(int32_t) * 2 * (size_t)cap);
        if (!grown) { st = ES_ERR_NOMEM; break; }
        buf = grown;
        Py_BEGIN_ALLOW_THREADS
        st = es_bitmap_runs(&b, PyArray_DATA((PyArrayObject *)first_row), PyArray_DATA((PyArrayObject *)row_start),
                            rows, buf, cap, &nruns);
        Py_END_ALLOW_THREADS
        if (st != ES_ERR_CAPACITY) break;
        cap *= 4; /* a row has at most w / 2 + 1 runs, so this ends */
    }
    drop_refs(refs);
    PyObject *runs = NULL;
    if (st == ES_OK) {
        npy_intp dims[2] = {(npy_intp)nruns, 2};
        runs = PyArray_SimpleNew(2, dims, NPY_INT32);
        if (runs && nruns) memcpy(PyArray_DATA((PyArrayObject *)runs), buf, sizeof(int32_t) * 2 * (size_t)nruns);
    }
    PyMem_RawFree(buf);
    if (!runs) {
        Py_XDECREF(first_row); Py_XDECREF(row_start);
        if (!PyErr_Occurred()) raise_status(st, "es_bitmap_runs");
        return NULL;
    }
    return Py_BuildValue("(NNN)", first_row, row_start, runs);
}

static PyObject *py_shapes(PyObject *self, PyObject *args) {
    PyObject *runs_o, *row_start_o, *first_row_o, *spans_o;
    PyArrayObject *refs[4];
    es_runs r;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOO", &runs_o, &row_start_o, &first_row_o, &spans_o)) return NULL;
    if (to_runs(runs_o, row_start_o, first_row_o, spans_o, &r, refs)) { drop_runs_refs(refs); return NULL; }
    int64_t max_h = 0;
    for (int64_t i = 0; i < r.n; i++) if (r.spans[i].h > max_h) max_h = r.spans[i].h;
    int64_t wcap = es_shapes_work_size(max_h);
    npy_intp dims[2] = {(npy_intp)r.n, 6};
    PyObject *out = PyArray_SimpleNew(2, dims, NPY_FLOAT64);
    int32_t *work = PyMem_RawMalloc(sizeof(int32_t) * (size_t)wcap);
    int st = ES_ERR_NOMEM;
    if (out && work) {
        Py_BEGIN_ALLOW_THREADS
        st = es_runs_shapes(&r, work, wcap, PyArray_DATA((PyArrayObject *)out), r.n);
        Py_END_ALLOW_THREADS
    }
    PyMem_RawFree(work);
    drop_runs_refs(refs);
    if (st != ES_OK) {
        Py_XDECREF(out);
        if (!PyErr_Occurred()) raise_status(st, "es_runs_shapes");
        return NULL;
    }
    return out;
}

static PyObject *py_extents(PyObject *self, PyObject *args) {
    PyObject *runs_o, *row_start_o, *first_row_o, *spans_o, *params_o;
    PyArrayObject *refs[4];
    es_runs r;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOOO", &runs_o, &row_start_o, &first_row_o, &spans_o, &params_o)) return NULL;
    if (to_runs(runs_o, row_start_o, first_row_o, spans_o, &r, refs)) { drop_runs_refs(refs); return NULL; }
    PyArrayObject *params = (PyArrayObject *)PyArray_FROMANY(params_o, NPY_FLOAT64, 2, 2, NPY_ARRAY_IN_ARRAY);
    if (!params || PyArray_DIM(params, 0) != r.n || PyArray_DIM(params, 1) != 5) {
        if (params) PyErr_Format(PyExc_ValueError, "params must be (%zd, 5) float64", (Py_ssize_t)r.n);
        Py_XDECREF(params);
        drop_runs_refs(refs);
        return NULL;
    }
    npy_intp dims[2] = {(npy_intp)r.n, 4};
    PyObject *out = PyArray_SimpleNew(2, dims, NPY_FLOAT64);
    int st = ES_ERR_NOMEM;
    if (out) {
        Py_BEGIN_ALLOW_THREADS
        st = es_runs_extents(&r, PyArray_DATA(params), PyArray_DATA((PyArrayObject *)out), r.n);
        Py_END_ALLOW_THREADS
    }
    Py_DECREF(params);
    drop_runs_refs(refs);
    if (st != ES_OK) {
        Py_XDECREF(out);
        if (!PyErr_Occurred()) raise_status(st, "es_runs_extents");
        return NULL;
    }
    return out;
}

static PyObject *py_sweep_quads(PyObject *self, PyObject *args) {
    PyObject *params_o;
    double fw, ft;
    int ih, iw;
    (void)self;
    if (!PyArg_ParseTuple(args, "Oddii", &params_o, &fw, &ft, &ih, &iw)) return NULL;
    PyArrayObject *params = (PyArrayObject *)PyArray_FROMANY(params_o, NPY_FLOAT64, 2, 2, NPY_ARRAY_IN_ARRAY);
    if (!params) return NULL;
    if (PyArray_DIM(params, 1) != 7) {
        PyErr_Format(PyExc_ValueError, "sweep_quads: params must be (m, 7) float64, got (%zd, %zd)",
                     (Py_ssize_t)PyArray_DIM(params, 0), (Py_ssize_t)PyArray_DIM(params, 1));
        Py_DECREF(params);
        return NULL;
    }
    npy_intp m = PyArray_DIM(params, 0), wd[2] = {2 * m, 4}, pd[3] = {2 * m, 4, 2};
    PyObject *windows = PyArray_SimpleNew(2, wd, NPY_INT32), *pts = PyArray_SimpleNew(3, pd, NPY_INT32);
    if (windows && pts && raise_status(es_sweep_quads(PyArray_DATA(params), (int64_t)m, fw, ft, ih, iw,
                                                      PyArray_DATA((PyArrayObject *)windows),
                                                      PyArray_DATA((PyArrayObject *)pts)), "es_sweep_quads"))
        Py_CLEAR(windows);
    Py_DECREF(params);
    if (!windows || !pts) { Py_XDECREF(windows); Py_XDECREF(pts); return NULL; }
    return Py_BuildValue("NN", windows, pts);
}

static PyObject *py_sweeps(PyObject *self, PyObject *args) {
    PyObject *runs_o, *row_start_o, *first_row_o, *spans_o, *o[5];
    static const int types[5] = {NPY_UINT8, NPY_INT64, NPY_INT32, NPY_INT64, NPY_INT64};
    static const char *names[5] = {"bytes", "offsets", "windows", "which", "bounds"};
    PyArrayObject *refs[4], *a[5] = {NULL, NULL, NULL, NULL, NULL};
    es_runs r;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOOOOOOO", &runs_o, &row_start_o, &first_row_o, &spans_o, &o[0], &o[1], &o[2], &o[3],
                          &o[4]))
        return NULL;
    if (to_runs(runs_o, row_start_o, first_row_o, spans_o, &r, refs)) { drop_runs_refs(refs); return NULL; }
    int ok = 1;
    for (int k = 0; k < 5 && ok; k++) {
        a[k] = (PyArrayObject *)PyArray_FROMANY(o[k], types[k], k == 2 ? 2 : 1, k == 2 ? 2 : 1, NPY_ARRAY_IN_ARRAY);
        if (!a[k]) { PyErr_Format(PyExc_TypeError, "sweeps: %s has the wrong type or dimensions", names[k]); ok = 0; }
    }
    npy_intp m = ok ? PyArray_DIM(a[4], 0) - 1 : 0;
    if (ok && (m < 0 || PyArray_DIM(a[1], 0) != 2 * m || PyArray_DIM(a[2], 0) != 2 * m || PyArray_DIM(a[2], 1) != 4)) {
        PyErr_Format(PyExc_ValueError, "sweeps: for bounds of %zd entries expected offsets (%zd,) int64 and windows "
                     "(%zd, 4) int32, got offsets %zd and windows %zd x %zd", (Py_ssize_t)(m + 1), (Py_ssize_t)(2 * m),
                     (Py_ssize_t)(2 * m), (Py_ssize_t)PyArray_DIM(a[1], 0), (Py_ssize_t)PyArray_DIM(a[2], 0),
                     (Py_ssize_t)PyArray_DIM(a[2], 1));
        ok = 0;
    }
    PyObject *out = NULL;
    if (ok) {
        es_sweeps s = {PyArray_DATA(a[0]), (int64_t)PyArray_SIZE(a[0]), PyArray_DATA(a[2]), PyArray_DATA(a[1]),
                       PyArray_DATA(a[4]), (int64_t)m, PyArray_DATA(a[3]), (int64_t)PyArray_SIZE(a[3])};
        npy_intp dims[2] = {m, 2};
        out = PyArray_SimpleNew(2, dims, NPY_INT64);
        int64_t size = es_sweeps_work_size(&s);
        uint8_t *work = out ? PyMem_RawMalloc((size_t)size + 8) : NULL;
        int st = ES_ERR_NOMEM;
        if (work) {
            Py_BEGIN_ALLOW_THREADS
            st = es_runs_sweeps(&r, &s, work, size + 8, PyArray_DATA((PyArrayObject *)out));
            Py_END_ALLOW_THREADS
        }
        PyMem_RawFree(work);
        if (st != ES_OK) {
            Py_CLEAR(out);
            if (!PyErr_Occurred()) raise_status(st, "es_runs_sweeps");
        }
    }
    for (int k = 0; k < 5; k++) Py_XDECREF(a[k]);
    drop_runs_refs(refs);
    return out;
}

typedef struct { es_runs *r; int ih, iw; uint8_t *work; size_t work_size; } runs_rle;
static int runs_rle_call(void *ctx, int64_t first, char *out, int64_t cap, int64_t *ends, int64_t *done) {
    runs_rle *c = ctx;
    return es_rle_runs(c->r, c->ih, c->iw, first, out, cap, ends, done, c->work, c->work_size);
}

static PyObject *py_rle_runs(PyObject *self, PyObject *args) {
    PyObject *runs_o, *row_start_o, *first_row_o, *spans_o;
    int ih, iw;
    PyArrayObject *refs[4];
    es_runs r;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOOii", &runs_o, &row_start_o, &first_row_o, &spans_o, &ih, &iw)) return NULL;
    if (to_runs(runs_o, row_start_o, first_row_o, spans_o, &r, refs)) { drop_runs_refs(refs); return NULL; }
    size_t size = es_rle_runs_workspace_size(&r);
    uint8_t *work = PyMem_RawMalloc(size ? size : 1);
    PyObject *strings = NULL;
    if (!work) PyErr_NoMemory();
    else {
        runs_rle ctx = {&r, ih, iw, work, size};
        strings = rle_strings(runs_rle_call, &ctx, r.n, iw);
    }
    PyMem_RawFree(work);
    drop_runs_refs(refs);
    return strings;
}

/* (m, 3) float64 C-contiguous copy of o (a new reference), or NULL with an error naming `what`. */
static PyArrayObject *rows3(PyObject *o, const char *what, npy_intp m) {
    PyArrayObject *a = (PyArrayObject *)PyArray_FROMANY(o, NPY_FLOAT64, 1, 2, NPY_ARRAY_IN_ARRAY);
    npy_intp want = m < 0 ? 3 : 3 * m;
    if (a && (PyArray_SIZE(a) != want || PyArray_DIM(a, PyArray_NDIM(a) - 1) != 3)) {
        PyErr_Format(PyExc_ValueError, "%s must hold %zd float64 values in rows of 3", what, (Py_ssize_t)want);
        Py_CLEAR(a);
    }
    return a;
}

static PyObject *py_poses(PyObject *self, PyObject *args) {
    PyObject *pos_o, *clo_o, *app_o, *up_o, *he_o;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOOO", &pos_o, &clo_o, &app_o, &up_o, &he_o)) return NULL;
    PyArrayObject *pos = (PyArrayObject *)PyArray_FROMANY(pos_o, NPY_FLOAT64, 2, 2, NPY_ARRAY_IN_ARRAY);
    npy_intp m = pos ? PyArray_DIM(pos, 0) : 0;
    if (pos && PyArray_DIM(pos, 1) != 3) {
        PyErr_SetString(PyExc_ValueError, "position must be (m, 3) float64");
        Py_CLEAR(pos);
    }
    PyArrayObject *clo = pos ? rows3(clo_o, "closing", m) : NULL;
    PyArrayObject *app = clo ? rows3(app_o, "approach", -1) : NULL;
    PyArrayObject *up = app ? rows3(up_o, "up", -1) : NULL;
    PyArrayObject *he = NULL;
    if (up && he_o != Py_None) {
        he = (PyArrayObject *)PyArray_FROMANY(he_o, NPY_FLOAT64, 2, 2, NPY_ARRAY_IN_ARRAY);
        if (he && (PyArray_DIM(he, 0) != 4 || PyArray_DIM(he, 1) != 4)) {
            PyErr_SetString(PyExc_ValueError, "hand_eye must be (4, 4) float64");
            Py_CLEAR(he);
        }
    }
    PyObject *out = NULL;
    if (up && (he_o == Py_None || he)) {
        npy_intp dims[3] = {m, 2, ES_POSE_SIZE};
        out = PyArray_SimpleNew(3, dims, NPY_FLOAT64);
        if (out && es_grasp_poses(PyArray_DATA(pos), PyArray_DATA(clo), PyArray_DATA(app), PyArray_DATA(up),
                                  he ? PyArray_DATA(he) : NULL, (int64_t)m, PyArray_DATA((PyArrayObject *)out))) {
            PyErr_SetString(PyExc_ValueError, "es_grasp_poses refused its arguments");
            Py_CLEAR(out);
        }
    }
    Py_XDECREF(pos); Py_XDECREF(clo); Py_XDECREF(app); Py_XDECREF(up); Py_XDECREF(he);
    return out;
}

PyMethodDef es_post_methods[] = {
    {"runs", py_runs, METH_VARARGS,
     "runs(bits, offsets, spans) -> (first_row (n,) int64, row_start (rows + 1,) int64, runs (R, 2) int32): "
     "the masks as runs of foreground per row; see edgeseg/_c/es_runs.h."},
    {"shapes", py_shapes, METH_VARARGS,
     "shapes(runs, row_start, first_row, spans) -> (n, 6) float64: area, centroid x, y, angle, solidity, hull area; "
     "see edgeseg.grasp.shape."},
    {"extents", py_extents, METH_VARARGS,
     "extents(runs, row_start, first_row, spans, params (n, 5)) -> (n, 4) float64: t min, t max, s min, s max."},
    {"sweep_quads", py_sweep_quads, METH_VARARGS,
     "sweep_quads(params (m, 7), finger_width, finger_thickness, image_h, image_w) -> (windows (2m, 4) int32, "
     "points (2m, 4, 2) int32): each grasp's two finger quads for cv2.fillConvexPoly; see edgeseg/_c/es_runs.h."},
    {"sweeps", py_sweeps, METH_VARARGS,
     "sweeps(runs, row_start, first_row, spans, bytes, offsets (2m,), windows (2m, 4), which, bounds (m + 1,)) -> "
     "(m, 2) int64: swept pixels of each grasp's two finger windows and those the masks "
     "which[bounds[k]:bounds[k + 1]] cover; see edgeseg/_c/es_runs.h."},
    {"rle_runs", py_rle_runs, METH_VARARGS,
     "rle_runs(runs, row_start, first_row, spans, image_h, image_w) -> list of COCO RLE count strings."},
    {"poses", py_poses, METH_VARARGS,
     "poses(position (m, 3), closing (m, 3), approach (3,), up (3,), hand_eye (4, 4) or None) -> (m, 2, 17) "
     "float64: camera and robot pose per grasp (position, quaternion, yaw, rotation); see edgeseg/_c/es_pose.h."},
    {NULL, NULL, 0, NULL},
};
