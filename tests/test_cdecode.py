"""The C decoding path against the numpy reference: bit for bit, on randomized frames.

Hypothesis draws the frame's shape (anchors, classes, prototype size and
layout, input and original sizes, letterbox padding on either axis), the
tensors' dtypes (float32 or int8/uint8 with scale/zero-point), special values
(NaN/Inf/denormal/huge logits) and boxes partly or wholly outside the image;
every output kind (cropped, full frame, RLE) must equal the reference's.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeseg.decode import ProtoOptions, QTensor, reference, reference_roi
from edgeseg.decode.tensors import ProtoTensors
from edgeseg.manifest import Quant
from edgeseg.preprocess import LetterboxInfo

cpath = pytest.importorskip("edgeseg.decode.cpath")
if not cpath.available():
    pytest.skip("C decoder extension not built", allow_module_level=True)
from edgeseg._c import _cdecode  # noqa: E402

SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45, 1e-30, 1e30, 3e38, -3e38], np.float32)
FLAG_SETS = (0, _cdecode.NO_BLOCKFILL, _cdecode.NO_STREAM | _cdecode.FULL_LOGITS)


def _values(rng: np.random.Generator, shape: tuple, special: float, scale: float = 1.0) -> np.ndarray:
    x = (rng.normal(0.0, scale, shape)).astype(np.float32)
    hit = rng.random(shape) < special
    x[hit] = rng.choice(SPECIAL, int(hit.sum()))
    return x


def _tensor(rng: np.random.Generator, x: np.ndarray, kind: str) -> QTensor:
    """``x`` as float32 or quantized int8/uint8 (NaN/Inf become arbitrary codes)."""
    if kind == "f32":
        return QTensor(x)
    dtype = np.int8 if kind == "i8" else np.uint8
    info = np.iinfo(dtype)
    q = rng.integers(info.min, info.max + 1, x.shape).astype(dtype)
    zp = int(rng.integers(info.min, info.max + 1))
    return QTensor(q, Quant(scale=float(rng.uniform(0.001, 0.2)), zero_point=zp))


@st.composite
def frames(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    encoding = draw(st.sampled_from(["ltrb", "xyxy", "cxcywh"]))
    ih, iw = 16 * draw(st.integers(1, 6)), 16 * draw(st.integers(1, 6))
    oh, ow = draw(st.integers(1, 160)), draw(st.integers(1, 160))
    lb = LetterboxInfo.fit((oh, ow), (ih, iw), center=draw(st.booleans()))
    grid = None
    if encoding == "ltrb":
        grid = reference.anchor_grid((ih, iw), (8, 16), 0.5)
        a = grid[0].shape[0]
        boxes = rng.uniform(0, 4, (a, 4)).astype(np.float32) * draw(st.sampled_from([0.01, 1.0, 10.0]))
    else:
        a = draw(st.integers(0, 60))
        lo = rng.uniform(-0.5 * iw, 1.5 * iw, (a, 2)).astype(np.float32)
        size = rng.uniform(0, 1, (a, 2)).astype(np.float32) * draw(st.sampled_from([0.5, 20.0, 3.0 * iw]))
        boxes = np.concatenate([lo, lo + size], 1) if encoding == "xyxy" else np.concatenate([lo, size], 1)
        boxes = boxes.astype(np.float32)
        if draw(st.booleans()):
            boxes[rng.random(boxes.shape) < 0.03] = np.nan
    c, k = draw(st.integers(1, 4)), draw(st.integers(1, 5))
    hp, wp = draw(st.integers(1, 23)), draw(st.integers(1, 23))
    special = draw(st.sampled_from([0.0, 0.02, 0.3]))
    scores = _values(rng, (a, c), special, 2.0)
    coeffs = _values(rng, (a, k), special)
    protos = _values(rng, (k, hp, wp), special)
    variant = draw(st.sampled_from(["plain", "plain", "objectness"] + (["labels"] if encoding != "ltrb" else [])))
    box_scale = (1.0, 1.0)
    if encoding != "ltrb" and draw(st.booleans()):  # boxes normalized to the input size (Ultralytics TFLite)
        box_scale = (float(iw), float(ih))
        boxes = (boxes / np.array([iw, ih, iw, ih], np.float32)).astype(np.float32)
    if variant == "labels":  # end-to-end rows: one score, a class id stored as a number
        scores = _values(rng, (a, 1), special, 2.0)
        labels = rng.integers(-1, c + 1, (a, 1)).astype(np.float32)
        labels[rng.random((a, 1)) < 0.1] = np.nan
        labels += rng.choice([0.0, 0.3], (a, 1)).astype(np.float32)
    dtypes = [draw(st.sampled_from(["f32", "f32", "i8", "u8"])) for _ in range(4)]
    t = [_tensor(rng, x, d) for x, d in zip((boxes, scores, coeffs, protos), dtypes, strict=True)]
    if draw(st.booleans()):  # channels-first heads and NHWC protos arrive as strided views
        t[1] = QTensor(np.ascontiguousarray(t[1].data.T).T, t[1].quant)
        t[3] = QTensor(np.ascontiguousarray(t[3].data.transpose(1, 2, 0)).transpose(2, 0, 1), t[3].quant)
    extra: dict = {}
    if variant == "objectness":
        extra["objectness"] = QTensor(rng.uniform(0, 1, (a, 1)).astype(np.float32))
    elif variant == "labels":
        extra["labels"] = QTensor(labels)
    if draw(st.booleans()) and all(d == "f32" for d in dtypes[:3]):
        # roles as channel ranges of one shared channels-first tensor (Ultralytics' output0)
        parts = [t[0].data, *([extra["objectness"].data] if "objectness" in extra else []), t[1].data, t[2].data]
        shared = np.ascontiguousarray(np.concatenate(parts, 1).T).T
        bounds = np.cumsum([0, *(p.shape[1] for p in parts)])
        views = [QTensor(shared[:, bounds[i]:bounds[i + 1]]) for i in range(len(parts))]
        t[0], t[1], t[2] = views[0], views[-2], views[-1]
        if "objectness" in extra:
            extra["objectness"] = views[1]
    opts = ProtoOptions(
        score_threshold=draw(st.sampled_from([0.0, 0.05, 0.3, 0.7, 1.0])),
        iou_threshold=draw(st.sampled_from([0.05, 0.5, 0.9, 1.0])),
        max_detections=draw(st.integers(1, 30)),
        pre_nms_topk=draw(st.integers(1, 80)),
        class_agnostic=draw(st.booleans()),
        box_encoding=encoding,
        score_activation="none" if variant == "objectness" else draw(st.sampled_from(["sigmoid", "none"])),
        score_strict=draw(st.booleans()),
        nms=draw(st.sampled_from([True, True, False])),
        box_scale=box_scale,
    )
    return ProtoTensors(*t, **extra), lb, opts, grid


def _same_masks(ref, masks) -> None:
    assert len(ref) == len(masks)
    for r, m in zip(ref, masks, strict=True):
        assert (m.x0, m.y0, m.bitmap.shape) == (r.x0, r.y0, r.bitmap.shape)
        np.testing.assert_array_equal(m.bitmap, r.bitmap)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=frames(), threads=st.sampled_from([1, 1, 3]), flags=st.sampled_from(FLAG_SETS))
def test_c_path_equals_reference_bit_for_bit(frame, threads, flags):
    t, lb, opts, grid = frame
    ref = reference.decode_proto(t, lb, opts, grid)
    det = cpath.decode_proto(t, lb, opts, grid, threads=threads, flags=flags)
    np.testing.assert_array_equal(det.boxes, ref.boxes)  # NaN == NaN here
    np.testing.assert_array_equal(det.scores, ref.scores)
    np.testing.assert_array_equal(det.class_ids, ref.class_ids)
    assert det.boxes.dtype == np.float32 and det.class_ids.dtype == np.int32
    assert det.nonfinite == ref.nonfinite  # NaN/Inf rows and candidates dropped before NMS, counted alike
    assert np.isfinite(ref.boxes).all() and np.isfinite(ref.scores).all()
    _same_masks(ref.masks, det.masks)

    out = np.ones((opts.max_detections + 1, *lb.orig_size), bool)  # stale contents must be overwritten
    det_full, frames_ = cpath.decode_proto_full(t, lb, opts, grid, out, threads=threads, flags=flags)
    assert frames_.shape == (len(ref.masks), *lb.orig_size) and frames_.base is out
    for r, f in zip(ref.masks, frames_, strict=True):
        np.testing.assert_array_equal(f, r.full())

    _, rles = cpath.decode_proto_rle(t, lb, opts, grid, flags=flags)
    assert rles == [r.rle() for r in ref.masks]


@st.composite
def roi_cases(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n, mh, mw = draw(st.integers(0, 12)), draw(st.integers(1, 28)), draw(st.integers(1, 28))
    h, w = draw(st.integers(1, 120)), draw(st.integers(1, 120))
    lo = rng.uniform(-40, max(h, w) + 40, (n, 2))
    size = rng.uniform(0, 1, (n, 2)) * draw(st.sampled_from([0.0, 1.5, 30.0, 300.0]))
    boxes = np.concatenate([lo, lo + size], 1).astype(np.float32)
    if n and draw(st.booleans()):
        boxes[0, draw(st.integers(0, 3))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    logits = _tensor(rng, _values(rng, (n, mh, mw), draw(st.sampled_from([0.0, 0.1])), 3.0),
                     draw(st.sampled_from(["f32", "i8", "u8"])))
    return logits, boxes, (h, w)


@settings(max_examples=150, deadline=None)
@given(case=roi_cases(), threads=st.sampled_from([1, 2]), flags=st.sampled_from(FLAG_SETS))
def test_roi_paste_equals_reference(case, threads, flags):
    logits, boxes, size = case
    ref = reference_roi.paste_masks(logits, boxes, size)
    _same_masks(ref, cpath.paste_roi(logits, boxes, size, threads=threads, flags=flags))
    out = np.ones((len(boxes), *size), bool)
    full = cpath.paste_roi(logits, boxes, size, output="full", out=out, threads=threads, flags=flags)
    for r, f in zip(ref, full, strict=True):
        np.testing.assert_array_equal(f, r.full())
    assert cpath.paste_roi(logits, boxes, size, output="rle", flags=flags) == [r.rle() for r in ref]


def test_roi_reference_hand_case():
    # A 2x2 ROI map: left column positive. Box spans 4 pixels: p = (x + 0.5) / 2 - 0.5
    logits = np.array([[[1.0, -1.0], [1.0, -1.0]]], np.float32)
    (m,) = reference_roi.paste_masks(QTensor(logits), np.array([[2, 0, 6, 2]], np.float32), (4, 8))
    assert (m.x0, m.y0, m.bitmap.shape) == (2, 0, (2, 4))
    # samples at p = -0.25 (clamped 0), 0.25, 0.75, 1.25 (clamped 1): v = 1, 0.5, -0.5, -1
    assert m.bitmap.tolist() == [[True, True, False, False]] * 2


def test_rle_matches_pycocotools():
    mask_api = pytest.importorskip("pycocotools.mask")
    rng = np.random.default_rng(3)
    logits = QTensor(rng.normal(0, 1, (6, 7, 5)).astype(np.float32))
    boxes = np.array([[0, 0, 50, 40], [10, 5, 11, 6], [30, 20, 64, 48], [-5, -5, 70, 60], [63.6, 0, 64, 48], [0, 0, 0, 0]],
                     np.float32)
    rles = cpath.paste_roi(logits, boxes, (48, 64), output="rle")
    full = cpath.paste_roi(logits, boxes, (48, 64), output="full", out=np.zeros((6, 48, 64), bool))
    for r, f in zip(rles, full, strict=True):
        ref = mask_api.encode(np.asfortranarray(f.astype(np.uint8)))
        assert r["counts"] == ref["counts"].decode() and r["size"] == [48, 64]


def test_bad_inputs_raise_with_expected_and_found():
    lb = LetterboxInfo.fit((20, 30), (32, 32))
    protos = np.zeros((2, 8, 8), np.float32)
    t = ProtoTensors(QTensor(np.zeros((3, 4), np.float32)), QTensor(np.ones((3, 2), np.float32)),
                     QTensor(np.zeros((3, 2), np.float32)), QTensor(protos))
    opts = ProtoOptions(box_encoding="xyxy", score_activation="none", score_threshold=0.5)
    with pytest.raises(ValueError, match=r"shape \(>= 3, 20, 30\), got bool \(5, 30, 20\)"):
        cpath.decode_proto_full(t, lb, opts, None, np.zeros((5, 30, 20), bool))
    with pytest.raises(ValueError, match="unknown box encoding"):
        cpath.decode_proto(t, lb, ProtoOptions(box_encoding="xywh"), None)
    with pytest.raises(ValueError, match="output must be one of"):
        cpath.paste_roi(QTensor(np.zeros((1, 4, 4), np.float32)), np.zeros((1, 4), np.float32), (8, 8), output="png")
    with pytest.raises(TypeError, match="maps must be aligned native float32, int8 or uint8"):
        _cdecode.masks(0, _cdecode.ROI, None, np.zeros((1, 4, 4), np.int32), 1.0, 0.0, np.zeros((1, 4)), (8, 8, 8, 8, 0, 0, 1.0, 1.0), None, 1, 0)
    with pytest.raises(ValueError, match="mask mode PROTO needs coefficients"):  # the job names its mode
        _cdecode.masks(0, _cdecode.PROTO, None, np.zeros((1, 4, 4), np.float32), 1.0, 0.0, np.zeros((1, 4), np.float32),
                       (8, 8, 8, 8, 0, 0, 1.0, 1.0), None, 1, 0)
    with pytest.raises(ValueError, match="unknown mask mode 7"):
        _cdecode.masks(0, 7, None, np.zeros((1, 4, 4), np.float32), 1.0, 0.0, np.zeros((1, 4), np.float32),
                       (8, 8, 8, 8, 0, 0, 1.0, 1.0), None, 1, 0)
    # float16 outputs (fp16 TFLite) are converted once, and decode the same
    t16 = ProtoTensors(t.boxes, QTensor(np.ones((3, 2), np.float16)), t.coeffs, QTensor(protos.astype(np.float16)))
    det, ref = cpath.decode_proto(t16, lb, opts, None), reference.decode_proto(t16, lb, opts, None)
    assert len(det.scores) == 3 and np.array_equal(det.boxes, ref.boxes) and np.array_equal(det.scores, ref.scores)


def test_binding_per_call_overhead_is_measured_not_asserted():
    """Smoke: the trivial call works; benchmarks/decode_bench.py reports its cost."""
    maps = np.zeros((1, 4, 4), np.float32)
    res = _cdecode.masks(_cdecode.CROPPED, _cdecode.ROI, None, maps[:0], 1.0, 0.0, np.zeros((0, 4), np.float32),
                         (8, 8, 1, 1, 0, 0, 1.0, 1.0), None, 1, 0)
    assert res[0].size == 0 and res[1].shape == (0, 4)


def test_real_model_outputs_decode_identically(scene):
    """The shipped bundle's real outputs (onnxruntime), thresholds low enough for many instances."""
    import dataclasses

    import edgeseg
    from edgeseg.families.proto import proto_tensors

    seg = edgeseg.load()
    tensor, lb = seg.preprocessor(scene)
    raw = seg.backend.run(tensor)
    dec = seg.decoder
    t = proto_tensors(raw, dec.manifest, dec.impl.anchor_count)
    opts = dataclasses.replace(dec.options, score_threshold=0.0, max_detections=300)
    ref = reference.decode_proto(t, lb, opts, dec.impl.grid)
    det = cpath.decode_proto(t, lb, opts, dec.impl.grid)
    assert len(ref.scores) > 20 and sum(m.area for m in ref.masks) > 0
    np.testing.assert_array_equal(det.boxes, ref.boxes)
    np.testing.assert_array_equal(det.scores, ref.scores)
    _same_masks(ref.masks, det.masks)
    _, rles = cpath.decode_proto_rle(t, lb, opts, dec.impl.grid)
    assert rles == [m.rle() for m in ref.masks]


def test_nan_boxes_are_dropped_before_nms_and_counted():
    """5 real boxes and 44 NaN boxes with higher scores: NaN never suppresses, so it used to fill the slots."""
    real = np.array([[10 + 20 * i, 10, 25 + 20 * i, 30] for i in range(5)], np.float32)
    boxes = np.concatenate([np.full((44, 4), np.nan, np.float32), real])
    boxes[:44:2, 1:] = 5.0  # half have one NaN coordinate only
    scores = np.concatenate([np.full((40, 1), 0.99, np.float32), np.full((4, 1), np.inf, np.float32),
                             np.full((5, 1), 0.9, np.float32)])
    scores = np.concatenate([scores, np.zeros_like(scores)], 1)
    scores[[0, 2], 1] = np.nan  # two rows with a NaN score: never candidates, counted
    t = ProtoTensors(QTensor(boxes), QTensor(scores), QTensor(np.zeros((49, 2), np.float32)),
                     QTensor(np.zeros((2, 8, 8), np.float32)))
    lb = LetterboxInfo.fit((64, 128), (64, 128))
    opts = ProtoOptions(box_encoding="xyxy", score_activation="none", score_threshold=0.5, max_detections=100)
    for res in (reference.decode_proto(t, lb, opts, None), cpath.decode_proto(t, lb, opts, None)):
        assert len(res) == 5 and res.nonfinite == 44
        np.testing.assert_array_equal(res.boxes, real)


_LB_VALUES = st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -1.0, 1e-300, 1e300, 0.5, 1.0, 2.0])
_SIDES = st.sampled_from([-(2**31), -1, 0, 1, 7, 64, 65536, 65537, 2**31 - 1])


@settings(max_examples=200, deadline=None)
@given(sizes=st.tuples(*[_SIDES] * 4), pads=st.tuples(*[_SIDES] * 2), scales=st.tuples(_LB_VALUES, _LB_VALUES),
       kind=st.sampled_from([_cdecode.CROPPED, _cdecode.FULL, _cdecode.RLE]), mode=st.sampled_from([0, 1]),
       iou=_LB_VALUES, box_scale=_LB_VALUES)
def test_c_core_checks_every_letterbox_and_job_field(sizes, pads, scales, kind, mode, iou, box_scale):
    """NaN/Inf/zero/negative/huge letterbox fields give a ValueError from the binding, never a crash (ASan/UBSan too)."""
    lb = (*sizes, *pads, *scales)
    oh, ow, ih, iw = sizes
    geometry_ok = (1 <= oh <= 65536 and 1 <= ow <= 65536 and all(abs(p) <= 65536 for p in pads)
                   and all(1e-6 <= s <= 1e6 for s in scales))
    masks_ok = geometry_ok and (mode == _cdecode.ROI or (1 <= ih <= 65536 and 1 <= iw <= 65536))
    boxes = np.array([[0, 0, 4, 4], [1, 1, 3, 7]], np.float32)
    if mode == _cdecode.PROTO:
        coeffs, maps = np.ones((2, 3), np.float32), np.ones((3, 4, 4), np.float32)
    else:
        coeffs, maps = None, np.ones((2, 4, 4), np.float32)
    if not masks_ok:
        with pytest.raises(ValueError, match="letterbox needs sizes"):
            _cdecode.masks(kind, mode, coeffs, maps, 1.0, 0.0, boxes, lb, None, 1, 0)
    elif oh * ow <= 1 << 16:  # a valid job runs (full frames only into a small buffer)
        out = np.zeros((2, oh, ow), bool) if kind == _cdecode.FULL else None
        _cdecode.masks(kind, mode, coeffs, maps, 1.0, 0.0, boxes, lb, out, 1, 0)
    scores = np.array([[0.9], [0.8]], np.float32)
    call = (boxes, 1.0, 0.0, scores, 1.0, 0.0, None, 1.0, 0.0, None, 1.0, 0.0, None, None, 0.5, float(iou), 10, 10,
            1, False, False, True, 1, float(box_scale), float(box_scale), lb)
    bs32 = np.float32(box_scale)
    if geometry_ok and 0 <= iou <= 1 and np.isfinite(bs32) and bs32 > 0:
        assert _cdecode.detect(*call)[4] in (1, 2)
    else:
        with pytest.raises(ValueError, match="es_detect failed"):
            _cdecode.detect(*call)
