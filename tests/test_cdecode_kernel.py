"""Kernel family (SOLOv2-style): the C core against the numpy reference, bit for bit.

Hypothesis draws kernels and mask features (float32 or int8/uint8 with their
quantization, rows transposed as ``BCA`` outputs give them, maps ``NHWC``;
NaN/Inf/denormal/huge values), grids of 1-3 levels, cell scores with ties,
mask thresholds, level strides, Matrix NMS settings (both kernels), zero
candidates and zero channels: the survivors, their decayed scores and their
logit maps must equal the reference's bit for bit, and so must the whole frame
through the family decoder (boxes, scores, classes, masks). Matrix NMS and
the hand-written exponential are also compared alone.
``tests/test_cdecode_asan.py`` runs this file again under AddressSanitizer +
UBSan and on the scalar (no SSE2) build.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeseg.decode import QTensor, kernel_candidates, matrix_nms, reference_kernel
from edgeseg.manifest import Quant, parse_manifest
from edgeseg.preprocess import LetterboxInfo

cpath = pytest.importorskip("edgeseg.decode.cpath")
if not cpath.available():
    pytest.skip("C decoder extension not built", allow_module_level=True)
from mask_parity import assert_same_results  # noqa: E402

from edgeseg._c import _cdecode  # noqa: E402
from edgeseg.decode import ckernel  # noqa: E402
from edgeseg.families.kernel import FAMILY, KernelDecoder  # noqa: E402

SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45, 1e-30, 1e30, 3e38, -3e38], np.float32)


def same_bits(a: np.ndarray, b: np.ndarray) -> None:
    """Equal shapes, NaN at the same places, every other value with the same bits (-0.0 is not 0.0)."""
    assert a.shape == b.shape and a.dtype == b.dtype
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    np.testing.assert_array_equal(nan_a, nan_b)
    width = {4: np.uint32, 8: np.uint64}[a.dtype.itemsize]
    np.testing.assert_array_equal(a[~nan_a].view(width), b[~nan_b].view(width))


def _tensor(rng, shape, kind: str, special: float, scale: float) -> QTensor:
    if kind == "f32":
        x = rng.normal(0.0, scale, shape).astype(np.float32)
        hit = rng.random(shape) < special
        x[hit] = rng.choice(SPECIAL, int(hit.sum()))
        return QTensor(x)
    dtype = np.int8 if kind == "i8" else np.uint8
    info = np.iinfo(dtype)
    q = rng.integers(info.min, info.max + 1, shape).astype(dtype)
    return QTensor(q, Quant(scale=float(rng.uniform(0.001, 0.1)), zero_point=int(rng.integers(info.min, info.max + 1))))


def _strided(t: QTensor, transpose: bool) -> QTensor:
    """The same values as a transposed view (``BCA`` rows, ``NHWC`` maps): non-unit strides for the C core."""
    if not transpose:
        return t
    axes = (1, 0) if t.data.ndim == 2 else (1, 2, 0)
    back = (1, 0) if t.data.ndim == 2 else (2, 0, 1)
    return QTensor(np.ascontiguousarray(t.data.transpose(axes)).transpose(back), t.quant)


@st.composite
def frames(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    grids = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=3)))
    strides = tuple(draw(st.lists(st.integers(0, 12), min_size=len(grids), max_size=len(grids))))
    s = int(kernel_candidates.level_bounds(grids)[-1])
    c, e = draw(st.integers(1, 4)), draw(st.integers(0, 9))
    hm, wm = draw(st.integers(1, 19)), draw(st.integers(1, 70))  # rows longer than one 64-bit word, odd sizes
    special = draw(st.sampled_from([0.0, 0.0, 0.02]))
    kernels = _tensor(rng, (s, e), draw(st.sampled_from(["f32", "i8", "u8"])), special, 1.0)
    features = _tensor(rng, (e, hm, wm), draw(st.sampled_from(["f32", "i8", "u8"])), special, 2.0)
    kernels, features = _strided(kernels, draw(st.booleans())), _strided(features, draw(st.booleans()))
    scores = rng.choice(np.float32([0.0, 0.05, 0.3, 0.3, 0.6, 0.9, 1.0]), (s, c))  # ties
    if draw(st.booleans()):
        scores[rng.random((s, c)) < 0.05] = np.nan
    opts = dict(mask_threshold=draw(st.sampled_from([0.5, 0.5, 0.1, 0.8])),
                nms_kernel=draw(st.sampled_from(["gaussian", "linear"])),
                sigma=draw(st.sampled_from([2.0, 0.5, 7.0])), update_threshold=draw(st.sampled_from([0.0, 0.05, 0.3])),
                max_detections=draw(st.integers(1, 40)), class_agnostic=draw(st.booleans()))
    cand, _ = kernel_candidates.select(scores, grids, strides, activation="none", threshold=draw(st.sampled_from(
        [0.0, 0.1, 0.5])), strict=draw(st.booleans()), pre_top_k=draw(st.integers(1, 60)))
    return cand, kernels, features, opts


@settings(max_examples=150, deadline=None)
@given(frame=frames(), keep=st.booleans())
def test_c_decode_equals_reference_bit_for_bit(frame, keep):
    """Also both ways to the survivors' logits: kept from step 2, or computed again."""
    cand, kernels, features, opts = frame
    ref = reference_kernel.decode_kernel(cand, kernels, features, **opts)
    got = ckernel.decode_kernel(cand, kernels, features, **opts, keep_logits=keep)
    np.testing.assert_array_equal(got[0], ref[0])
    same_bits(got[1], ref[1])
    same_bits(got[2], ref[2])


@st.composite
def nms_cases(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n, p = draw(st.integers(0, 40)), draw(st.integers(1, 300))
    binary = rng.random((n, p)) < rng.uniform(0.0, 0.9, (n, 1))
    if n and draw(st.booleans()):  # duplicates: iou 1, compensation 1
        binary[rng.integers(0, n, n // 2)] = binary[0]
    labels = rng.integers(0, draw(st.integers(1, 3)), n).astype(np.int32)
    scores = rng.choice(np.float32([0.1, 0.4, 0.4, 0.7, 0.95, 0.0]), n)
    return binary, binary.sum(1).astype(np.int64), labels, scores, dict(
        kernel=draw(st.sampled_from(["gaussian", "linear"])), sigma=draw(st.sampled_from([2.0, 0.1, 30.0])),
        update_threshold=draw(st.sampled_from([0.0, 0.05, 0.5])), max_keep=draw(st.sampled_from([None, 1, 5])))


@settings(max_examples=200, deadline=None)
@given(case=nms_cases())
def test_c_matrix_nms_equals_reference_bit_for_bit(case):
    binary, area, labels, scores, kw = case
    ref = matrix_nms.matrix_nms(binary, area, labels, scores, **kw)
    got = ckernel.matrix_nms(binary, area, labels, scores, **kw)
    np.testing.assert_array_equal(got[0], ref[0])
    same_bits(got[1], ref[1])


@settings(max_examples=300, deadline=None)
@given(x=st.floats(allow_nan=False, width=64) | st.floats(-120, 120))
def test_exp64_c_equals_numpy(x):
    c = _cdecode.exp64(x)
    n = float(reference_kernel.exp64(np.array([x]))[0])
    assert c == n and math.copysign(1, c) == math.copysign(1, n)


def _manifest(grids, classes, e, hm, wm, size):
    return parse_manifest({
        "schema_version": 1, "name": "k", "family": "kernel", "format": "onnx", "precision": "fp32", "model": "m.onnx",
        "input": {"name": "images", "shape": [1, 3, *size]},
        "outputs": [{"name": "cate", "role": "cell_scores", "layout": "BAC"},
                    {"name": "kern", "role": "kernels", "layout": "BAC"},
                    {"name": "feat", "role": "mask_features", "layout": "NCHW"}],
        "classes": [f"k{i}" for i in range(classes)], "thresholds": {"score": 0.1, "nms": False},
        "kernel": {"grids": list(grids), "strides": [2] * len(grids)},
    })


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), orig=st.tuples(st.integers(8, 90), st.integers(8, 90)),
       kernel=st.sampled_from(["gaussian", "linear"]))
def test_whole_frame_c_equals_numpy(seed, orig, kernel):
    rng = np.random.default_rng(seed)
    grids, c, e, hm, wm = (3, 2), 3, 4, 8, 12
    m = _manifest(grids, c, e, hm, wm, (hm * 4, wm * 4))
    s = 13
    raw = {"cate": rng.choice(np.float32([0, 0.2, 0.5, 0.9]), (1, s, c)),
           "kern": rng.normal(0, 1, (1, s, e)).astype(np.float32),
           "feat": rng.normal(0, 2, (1, e, hm, wm)).astype(np.float32)}
    opts = dataclasses.replace(FAMILY.options(m), nms_kernel=kernel)
    lb = LetterboxInfo.fit(orig, (hm * 4, wm * 4))
    r_c = KernelDecoder(m, "c")(raw, lb, opts)
    r_n = KernelDecoder(m, "numpy")(raw, lb, opts)
    same_bits(r_c.scores, r_n.scores)
    assert_same_results(r_c, r_n)


def test_bad_arguments_are_refused():
    cand = kernel_candidates.Candidates(np.array([5]), np.array([0], np.int32), np.float32([0.5]), np.array([0]))
    k, f = QTensor(np.zeros((3, 2), np.float32)), QTensor(np.zeros((2, 4, 4), np.float32))
    kw = dict(mask_threshold=0.5, nms_kernel="gaussian", sigma=2.0, update_threshold=0.0, max_detections=5)
    with pytest.raises(ValueError, match=r"cell 5 must be in \[0, 3\)"):
        ckernel.decode_kernel(cand, k, f, **kw)
    with pytest.raises(ValueError, match="kernels have 2 channels but features have 3"):
        ckernel.decode_kernel(dataclasses.replace(cand, cell=np.array([0])), k, QTensor(np.zeros((3, 4, 4), np.float32)),
                              **kw)
    with pytest.raises(ValueError, match="kernel must be one of"):
        ckernel.decode_kernel(cand, k, f, **{**kw, "nms_kernel": "box"})
    with pytest.raises(ValueError, match="scores must be finite"):
        ckernel.matrix_nms(np.ones((1, 4), bool), np.array([4]), np.zeros(1, np.int32), np.float32([np.nan]))
