/* _cbinding.h - what the CPython binding files of the _cdecode extension share.
 *
 * _cdecode_module.c (decoding; it defines ES_BINDING_MAIN and imports numpy's C API for the whole
 * extension) and _cpost_module.c (post-processing) include this instead of Python.h.
 */
#ifndef ES_CBINDING_H
#define ES_CBINDING_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#define PY_ARRAY_UNIQUE_SYMBOL es_cdecode_ARRAY_API
#ifndef ES_BINDING_MAIN
#define NO_IMPORT_ARRAY
#endif
#include <numpy/arrayobject.h>

#include "es_decode.h"
#include "es_kernel.h"
#include "es_pose.h"
#include "es_post.h"
#include "es_runs.h"

/* Sets a Python exception for a negative ES_ERR_* status (what: the call); returns st != ES_OK. */
int raise_status(int st, const char *what);

/* Borrows bits (1-D bool/uint8), offsets (n,) and spans (n, 4) as b; refs[0..2] hold the references. */
int to_bitmaps(PyObject *bits_o, PyObject *offsets_o, PyObject *spans_o, es_bitmaps *b, PyArrayObject **refs);
void drop_refs(PyArrayObject **refs);

/* One RLE encoder call (es_masks_rle, es_rle_runs) behind a context. */
typedef int (*rle_call)(void *ctx, int64_t first, char *out, int64_t cap, int64_t *ends, int64_t *done);

/* The n RLE strings a call writes, as a list of str, growing its buffer until they fit. */
PyObject *rle_strings(rle_call call, void *ctx, int64_t n, int64_t width);

/* _cpost_module.c's functions, added to the module at import. */
extern PyMethodDef es_post_methods[];

/* A float32/int8/uint8 numpy array of `ndim` dims -> es_tensor (a view: no copy); -1 with an exception set. */
int to_tensor(PyObject *obj, int ndim, double scale, double zp, const char *name, es_tensor *t);

/* _ckernel_module.c's functions (kernel family: dynamic-kernel masks, Matrix NMS), added at import. */
extern PyMethodDef es_kernel_methods[];

#endif
