/* _ckernel_module.c - CPython binding of the kernel family core (es_kernel.c, es_matrix_nms.c).
 *
 * Part of the _cdecode extension (its functions join the module's in PyInit__cdecode); thin like
 * _cdecode_module.c: checks arrays, lets numpy allocate every output, releases the GIL around the C work.
 * Python-facing API: edgeseg/decode/ckernel.py.
 */
#include "_cbinding.h"

#include <math.h>

/* Borrows a 1-D array of `type` and length n (n < 0: any length, stored in *n). */
static PyArrayObject *vector(PyObject *obj, int type, npy_intp *n, const char *name) {
    PyArrayObject *a = (PyArrayObject *)PyArray_FROMANY(obj, type, 1, 1, NPY_ARRAY_IN_ARRAY);
    if (!a) return NULL;
    if (*n >= 0 && PyArray_DIM(a, 0) != *n) {
        PyErr_Format(PyExc_ValueError, "%s must have %zd values, got %zd", name, (Py_ssize_t)*n,
                     (Py_ssize_t)PyArray_DIM(a, 0));
        Py_DECREF(a);
        return NULL;
    }
    *n = PyArray_DIM(a, 0);
    return a;
}

static void drop(PyArrayObject **a, int k) { for (int i = 0; i < k; i++) Py_XDECREF(a[i]); }

static PyObject *py_kernel_decode(PyObject *self, PyObject *args) {
    PyObject *k_o, *f_o, *cells_o, *labels_o, *scores_o, *min_o;
    double ks, kz, fs, fz, sigma;
    float t, update;
    int kernel, agnostic, keep;
    Py_ssize_t max_det;
    es_tensor kernels, features;
    (void)self;
    if (!PyArg_ParseTuple(args, "OddOddOOOOfidfnpp", &k_o, &ks, &kz, &f_o, &fs, &fz, &cells_o, &labels_o,
                          &scores_o, &min_o, &t, &kernel, &sigma, &update, &max_det, &agnostic, &keep))
        return NULL;
    if (to_tensor(k_o, 2, ks, kz, "kernels", &kernels) || to_tensor(f_o, 3, fs, fz, "features", &features)) return NULL;
    if (kernels.shape[1] != features.shape[0])
        return PyErr_Format(PyExc_ValueError, "kernels have %zd channels but features have %zd",
                            (Py_ssize_t)kernels.shape[1], (Py_ssize_t)features.shape[0]);
    if (kernel != ES_NMS_GAUSSIAN && kernel != ES_NMS_LINEAR)
        return PyErr_Format(PyExc_ValueError, "unknown Matrix NMS kernel %d", kernel);
    if (max_det < 1 || !(sigma > 0.0) || features.shape[1] > ES_MAX_SIDE || features.shape[2] > ES_MAX_SIDE)
        return PyErr_Format(PyExc_ValueError, "max_det must be >= 1, sigma > 0 and the feature map at most %d a side",
                            ES_MAX_SIDE);
    npy_intp n = -1;
    PyArrayObject *a[4] = {NULL, NULL, NULL, NULL};
    if (!(a[0] = vector(cells_o, NPY_INT64, &n, "cells")) || !(a[1] = vector(labels_o, NPY_INT32, &n, "labels")) ||
        !(a[2] = vector(scores_o, NPY_FLOAT32, &n, "scores")) || !(a[3] = vector(min_o, NPY_INT64, &n, "min_area"))) {
        drop(a, 4);
        return NULL;
    }
    const int64_t *cells = PyArray_DATA(a[0]);
    const float *scores = PyArray_DATA(a[2]);
    for (npy_intp c = 0; c < n; c++) {
        if (cells[c] < 0 || cells[c] >= kernels.shape[0] || !isfinite(scores[c])) {
            drop(a, 4);
            return PyErr_Format(PyExc_ValueError, "candidate %zd: cell %lld must be in [0, %zd) and its score finite",
                                (Py_ssize_t)c, (long long)cells[c], (Py_ssize_t)kernels.shape[0]);
        }
    }
    es_kernel_params p = {t, kernel, sigma, update, (int64_t)max_det, agnostic, keep};
    npy_intp cap = n < max_det ? n : max_det;
    npy_intp d1[1] = {cap}, d3[3] = {cap, (npy_intp)features.shape[1], (npy_intp)features.shape[2]};
    PyObject *index = PyArray_SimpleNew(1, d1, NPY_INT64), *score = PyArray_SimpleNew(1, d1, NPY_FLOAT32);
    PyObject *logits = PyArray_SimpleNew(3, d3, NPY_FLOAT32);
    size_t work_size = es_kernel_work_size(n, features.shape[0], features.shape[1], features.shape[2], keep);
    uint8_t *work = PyMem_RawMalloc(work_size);
    int64_t survivors = 0;
    int st = ES_ERR_NOMEM;
    if (index && score && logits && work) {
        Py_BEGIN_ALLOW_THREADS
        st = es_kernel_decode(&kernels, &features, cells, PyArray_DATA(a[1]), scores, PyArray_DATA(a[3]), n, &p, work,
                              work_size, PyArray_DATA((PyArrayObject *)index), PyArray_DATA((PyArrayObject *)score),
                              PyArray_DATA((PyArrayObject *)logits), cap, &survivors);
        Py_END_ALLOW_THREADS
    }
    PyMem_RawFree(work);
    drop(a, 4);
    if (st != ES_OK) {
        Py_XDECREF(index); Py_XDECREF(score); Py_XDECREF(logits);
        if (!PyErr_Occurred()) raise_status(st, "es_kernel_decode");
        return NULL;
    }
    return Py_BuildValue("NNNn", index, score, logits, (Py_ssize_t)survivors);
}

static PyObject *py_matrix_nms(PyObject *self, PyObject *args) {
    PyObject *bits_o, *area_o, *labels_o, *scores_o;
    int kernel;
    double sigma;
    float update;
    Py_ssize_t max_keep;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOOidfn", &bits_o, &area_o, &labels_o, &scores_o, &kernel, &sigma, &update, &max_keep))
        return NULL;
    if (kernel != ES_NMS_GAUSSIAN && kernel != ES_NMS_LINEAR)
        return PyErr_Format(PyExc_ValueError, "unknown Matrix NMS kernel %d", kernel);
    if (max_keep < 0 || !(sigma > 0.0)) return PyErr_Format(PyExc_ValueError, "max_keep must be >= 0 and sigma > 0");
    PyArrayObject *a[4] = {NULL, NULL, NULL, NULL};
    a[0] = (PyArrayObject *)PyArray_FROMANY(bits_o, NPY_UINT64, 2, 2, NPY_ARRAY_IN_ARRAY);
    npy_intp n = a[0] ? PyArray_DIM(a[0], 0) : 0;
    if (!a[0] || !(a[1] = vector(area_o, NPY_INT64, &n, "area")) || !(a[2] = vector(labels_o, NPY_INT32, &n, "labels"))
        || !(a[3] = vector(scores_o, NPY_FLOAT32, &n, "scores"))) {
        drop(a, 4);
        return NULL;
    }
    npy_intp cap = n < max_keep ? n : max_keep, d1[1] = {cap};
    PyObject *index = PyArray_SimpleNew(1, d1, NPY_INT64), *score = PyArray_SimpleNew(1, d1, NPY_FLOAT32);
    size_t scratch_size = es_matrix_nms_scratch(n);
    uint8_t *scratch = PyMem_RawMalloc(scratch_size);
    int64_t kept = 0;
    int st = ES_ERR_NOMEM;
    if (index && score && scratch) {
        Py_BEGIN_ALLOW_THREADS
        st = es_matrix_nms(PyArray_DATA(a[0]), (int64_t)PyArray_DIM(a[0], 1), PyArray_DATA(a[1]), PyArray_DATA(a[2]),
                           PyArray_DATA(a[3]), n, kernel, sigma, update, max_keep, scratch, scratch_size,
                           PyArray_DATA((PyArrayObject *)index), PyArray_DATA((PyArrayObject *)score), cap, &kept);
        Py_END_ALLOW_THREADS
    }
    PyMem_RawFree(scratch);
    drop(a, 4);
    if (st != ES_OK) {
        Py_XDECREF(index); Py_XDECREF(score);
        if (!PyErr_Occurred()) raise_status(st, "es_matrix_nms (scores must be finite, areas >= 0)");
        return NULL;
    }
    return Py_BuildValue("NNn", index, score, (Py_ssize_t)kept);
}

static PyObject *py_exp64(PyObject *self, PyObject *args) {
    double x;
    (void)self;
    if (!PyArg_ParseTuple(args, "d", &x)) return NULL;
    return PyFloat_FromDouble(es_exp64(x));
}

PyMethodDef es_kernel_methods[] = {
    {"kernel_decode", py_kernel_decode, METH_VARARGS,
     "kernel_decode(kernels, k_scale, k_zp, features, f_scale, f_zp, cells, labels, scores, min_area, "
     "logit_threshold, nms_kernel, sigma, update_threshold, max_det, class_agnostic, keep_logits) -> (index, score, "
     "logits, n); "
     "see edgeseg.decode.ckernel."},
    {"matrix_nms", py_matrix_nms, METH_VARARGS,
     "matrix_nms(bits (n, words) uint64, area, labels, scores, kernel, sigma, update_threshold, max_keep) -> "
     "(index, decayed score, n); see edgeseg.decode.ckernel."},
    {"exp64", py_exp64, METH_VARARGS, "exp64(x) -> es_exp64(x): the hand-written exponential (tests)."},
    {NULL, NULL, 0, NULL},
};
