"""The ``kernel`` family (SOLOv2-style): a hand-built ONNX bundle end to end, Matrix NMS by hand and by the paper.

* A real ONNX model (onnx.helper) whose outputs are fixed SOLOv2-shaped
  tensors runs through ``edgeseg.load`` -> ``Segmenter`` -> ``Result``: the
  instances, scores (cell score x maskness), boxes from the masks, the area
  filter and Matrix NMS's suppression of a duplicate are computed by hand.
* Matrix NMS on 2-4 masks whose IoUs are counted by hand, both kernels.
* Matrix NMS against a direct loop transcription of the SOLOv2 paper's formula
  (``decay_j = min_i f(iou_ij) / f(max_k iou_ki)``, class-aware), on random masks.
* The hand-written exponential against :func:`math.exp`; points NMS by hand;
  layouts and manifest mistakes.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeseg.bundle import load_bundle, write_bundle
from edgeseg.decode import kernel_candidates, reference_kernel
from edgeseg.decode.matrix_nms import mask_iou, matrix_nms
from edgeseg.families.kernel import FAMILY, KernelDecoder
from edgeseg.manifest import ManifestError, parse_manifest
from edgeseg.preprocess import LetterboxInfo

SIG4 = 1.0 / (1.0 + math.exp(-4.0))


def kernel_manifest(**changes) -> dict:
    """A kernel-family manifest: 32x32 input, grids 2 and 4 (S = 20), 2 classes, features (3, 8, 8)."""
    data = {
        "schema_version": 1, "name": "solo", "family": "kernel", "format": "onnx", "precision": "fp32",
        "model": "model.onnx", "input": {"name": "images", "shape": [1, 3, 32, 32]},
        "outputs": [{"name": "cate", "role": "cell_scores", "layout": "BAC", "activation": "none"},
                    {"name": "kernels", "role": "kernels", "layout": "BAC"},
                    {"name": "mask_features", "role": "mask_features", "layout": "NCHW"}],
        "classes": ["box", "can"], "thresholds": {"score": 0.1, "nms": False, "max_detections": 100},
        "kernel": {"grids": [2, 4], "strides": [0, 20], "mask_threshold": 0.5,
                   "matrix_nms": {"kernel": "gaussian", "sigma": 2.0, "pre_top_k": 500, "update_threshold": 0.05}},
    }
    data.update(changes)
    return json.loads(json.dumps(data))


def hand_outputs() -> dict[str, np.ndarray]:
    """Mask features: channel 0 is +4 on rows 0-3 x cols 0-3 (mask A) else -4, channel 1 +4 on rows 4-7 x
    cols 2-7 (mask B) else -4, channel 2 is 1. Cells (level 0: 0-3, level 1: 4-19):

    * 0, class 1, 0.9: kernel (2, 0, -4) -> A (logits 4 / -12);
    * 5, class 0, 0.8: kernel (0, 1, 0) -> B (24 cells > stride 20);
    * 6, class 0, 0.3: B again: Matrix NMS decays it by exp(-2) to 0.04 < 0.05;
    * 12, class 1, 0.7: A (16 cells <= level 1's stride 20): dropped by the area filter.
    """
    f = np.full((3, 8, 8), -4.0, np.float32)
    f[0, 0:4, 0:4] = 4.0
    f[1, 4:8, 2:8] = 4.0
    f[2] = 1.0
    cate = np.zeros((20, 2), np.float32)
    kernels = np.zeros((20, 3), np.float32)
    for cell, cls, score, k in [(0, 1, 0.9, (2, 0, -4)), (5, 0, 0.8, (0, 1, 0)), (6, 0, 0.3, (0, 1, 0)),
                                (12, 1, 0.7, (1, 0, 0))]:
        cate[cell, cls] = score
        kernels[cell] = k
    return {"cate": cate[None], "kernels": kernels[None], "mask_features": f[None]}


def _constant_model(path, outputs: dict[str, np.ndarray]) -> None:
    """A real ONNX model returning ``outputs`` (each plus 0 x the image mean)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2, 3], keepdims=0),
             helper.make_node("Mul", ["mean", "zero"], ["nothing"])]
    inits = [numpy_helper.from_array(np.zeros((), np.float32), "zero")]
    for name, value in outputs.items():
        nodes.append(helper.make_node("Add", ["nothing", f"{name}_value"], [name]))
        inits.append(numpy_helper.from_array(value, f"{name}_value"))
    graph = helper.make_graph(
        nodes, "solo", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(v.shape)) for n, v in outputs.items()],
        initializer=inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))


def _check_hand_result(result):
    assert result.class_names[0] == "box" and result.class_ids.tolist() == [1, 0]
    np.testing.assert_allclose(result.scores, [0.9 * SIG4, 0.8 * SIG4], rtol=1e-6)
    # 64x64 image, scale 0.5: pixel x samples feature column p = (x + 0.5) / 8 - 0.5. A's logits go from 4
    # (cell 3) to -12 (cell 4): positive while p < 3.25, x <= 29. B's from -4 (cell 1) to 4 (cell 2): x >= 16.
    assert result.boxes.tolist() == [[0, 0, 30, 30], [16, 32, 64, 64]]
    assert [m.area for m in result.masks] == [30 * 30 - 1, 48 * 32 - 6]  # less the bilinear-rounded corners


def test_hand_built_onnx_bundle_runs_end_to_end(tmp_path, monkeypatch):
    import edgeseg

    _constant_model(tmp_path / "solo.onnx", hand_outputs())
    write_bundle(tmp_path / "bundle", parse_manifest(kernel_manifest()), {"model.onnx": tmp_path / "solo.onnx"})
    for path in ("numpy", "c"):
        monkeypatch.setenv("EDGESEG_DECODER", path)
        seg = edgeseg.load(load_bundle(tmp_path / "bundle"))
        if seg.decoder.path != path:
            continue
        result = seg(np.full((64, 64, 3), 90, np.uint8))
        _check_hand_result(result)
        assert result.timings.infer_ms > 0 and result.to_dict()["instances"][0]["class_name"] == "can"
        rle = seg(np.full((64, 64, 3), 90, np.uint8), masks="rle")
        assert [r["size"] for r in rle.mask_rles] == [[64, 64]] * 2


def test_layouts_and_quantized_outputs_decode_alike():
    base = hand_outputs()
    lb = LetterboxInfo.fit((64, 64), (32, 32))
    m = parse_manifest(kernel_manifest())
    _check_hand_result(KernelDecoder(m, "numpy")(base, lb, FAMILY.options(m)))
    d = kernel_manifest()
    d["outputs"][0]["layout"] = d["outputs"][1]["layout"] = "BCA"
    d["outputs"][2]["layout"] = "NHWC"
    d["outputs"][2]["quant"] = {"scale": 0.5, "zero_point": 0}
    mt = parse_manifest(d)
    moved = {"cate": base["cate"].transpose(0, 2, 1), "kernels": base["kernels"].transpose(0, 2, 1),
             "mask_features": (base["mask_features"].transpose(0, 2, 3, 1) * 2).astype(np.int8)}
    _check_hand_result(KernelDecoder(mt, "numpy")(moved, lb, FAMILY.options(mt)))


def test_sigmoid_scores_get_points_nms_and_thresholds_apply():
    out = hand_outputs()
    cate = np.where(out["cate"] > 0, out["cate"], 1e-9)
    logits = np.log(cate / (1 - cate)).astype(np.float32)
    logits[0, 4, 0] = np.log(0.85 / 0.15)  # cell 4 (level 1, (0, 0)) left of cell 5 ((0, 1)), a zero kernel
    logits[0, 7, 1] = np.inf
    d = kernel_manifest()
    d["outputs"][0]["activation"] = "sigmoid"
    m = parse_manifest(d)
    opts = FAMILY.options(m)
    lb = LetterboxInfo.fit((64, 64), (32, 32))
    r = KernelDecoder(m, "numpy")(out | {"cate": logits}, lb, opts)
    # points NMS: cell 4 (0.85) suppresses cell 5 (0.8), which suppresses cell 6; cell 4's empty mask and
    # cell 12's small one fail the area filter; the infinite logit is dropped and counted
    assert r.class_ids.tolist() == [1] and r.nonfinite == 1
    np.testing.assert_allclose(r.scores, [0.9 * SIG4], rtol=1e-6)
    r = KernelDecoder(m, "numpy")(out | {"cate": logits}, lb, dataclasses.replace(opts, score_threshold=0.95))
    assert len(r) == 0


def test_points_nms_keeps_local_maxima_only():
    p = np.array([[0.1, 0.5, 0.4], [0.2, 0.3, 0.6], [0.9, 0.2, 0.6]], np.float32).reshape(9, 1)
    kept = kernel_candidates.points_nms(p, (3,)).reshape(3, 3)
    # each cell against its upper, left and upper-left neighbours
    np.testing.assert_array_equal(kept, np.float32([[0.1, 0.5, 0], [0.2, 0, 0.6], [0.9, 0, 0.6]]))


def test_candidates_are_sorted_stably_and_cut():
    raw = np.array([[0.5, 0.2], [0.5, 0.9], [np.nan, 0.7], [0.1, 0.5], [0, 0]], np.float32)  # grids (1, 2)
    cand, nonfinite = kernel_candidates.select(raw, (1, 2), (3, 7), activation="none", threshold=0.5, strict=False,
                                               pre_top_k=3)
    assert nonfinite == 1
    assert cand.cell.tolist() == [1, 0, 1] and cand.cls.tolist() == [1, 0, 0]
    assert cand.min_area.tolist() == [7, 3, 7]
    strict, _ = kernel_candidates.select(raw, (1, 2), (3, 7), activation="none", threshold=0.5, strict=True,
                                         pre_top_k=10)
    assert strict.cell.tolist() == [1]


# --------------------------------------------------------------------------- Matrix NMS by hand


def _masks(*rects, size=(4, 4)) -> np.ndarray:
    out = np.zeros((len(rects), *size), bool)
    for k, (y0, y1, x0, x1) in enumerate(rects):
        out[k, y0:y1, x0:x1] = True
    return out.reshape(len(rects), -1)


def test_matrix_nms_hand_cases_gaussian_and_linear():
    # A: rows 0-1 x cols 0-3 (8 cells); B: rows 0-1 x cols 0-1 (4, inside A); C: rows 1-2 x cols 0-3 (8);
    # D: rows 2-3 x cols 0-3 (8), another class. iou(A, B) = 4/8, iou(A, C) = 4/12, iou(B, C) = 2/10,
    # iou(C, D) = 4/12 but D is another class: untouched. Scores sorted: A 0.9, B 0.8, C 0.7, D 0.6.
    b = _masks((0, 2, 0, 4), (0, 2, 0, 2), (1, 3, 0, 4), (2, 4, 0, 4))
    area = b.sum(1)
    labels = np.array([0, 0, 0, 1])
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    np.testing.assert_allclose(mask_iou(b, area)[0, 1:3], [0.5, 1 / 3])
    # compensation: c_A = 0, c_B = 0.5 (by A), c_C = max(1/3, 0.2) = 1/3
    # gaussian: decay_B = exp(-2 * 0.25) ; decay_C = min(exp(-2/9), exp(-2 * 0.04) / exp(-2 * 0.25))
    #   = min(0.8007, 1.5068) = exp(-2/9)
    idx, dec = matrix_nms(b, area, labels, scores, kernel="gaussian", sigma=2.0)
    assert idx.tolist() == [0, 3, 2, 1]  # re-sorted by decayed score: 0.9, 0.6, 0.561, 0.485
    np.testing.assert_allclose(dec[np.argsort(idx)], [0.9, 0.8 * math.exp(-0.5), 0.7 * math.exp(-2 / 9), 0.6],
                               rtol=1e-6)
    # linear: decay_B = 1 - 0.5; decay_C = min((1 - 1/3) / 1, (1 - 0.2) / (1 - 0.5)) = 2/3
    idx, dec = matrix_nms(b, area, labels, scores, kernel="linear")
    np.testing.assert_allclose(dec[np.argsort(idx)], [0.9, 0.4, 0.7 * 2 / 3, 0.6], rtol=1e-6)
    assert idx.tolist() == [0, 3, 2, 1]  # re-sorted by decayed score: 0.9, 0.6, 0.467, 0.4
    # update threshold and top-k
    idx, dec = matrix_nms(b, area, labels, scores, kernel="linear", update_threshold=0.45, max_keep=2)
    assert idx.tolist() == [0, 3]
    # class-agnostic (one label): D is decayed by C (iou 1/3, c_C = 1/3): linear (2/3) / (2/3) = 1,
    # by A and B nothing (no overlap): D keeps 0.6
    idx, dec = matrix_nms(b, area, np.zeros(4, int), scores, kernel="linear")
    np.testing.assert_allclose(dec[np.argsort(idx)][3], 0.6, rtol=1e-6)


def test_matrix_nms_duplicates_and_ties():
    b = _masks((0, 2, 0, 2), (0, 2, 0, 2), (0, 2, 0, 2))
    area = b.sum(1)
    scores = np.array([0.5, 0.5, 0.5], np.float32)  # ties: input order
    idx, dec = matrix_nms(b, area, np.zeros(3, int), scores, kernel="linear")
    # second: (1 - 1) / 1 = 0; third: by the first 0, the second (c = 1) suppresses nothing
    assert idx.tolist() == [0, 1, 2] and dec.tolist() == [0.5, 0.0, 0.0]
    idx, dec = matrix_nms(b, area, np.zeros(3, int), scores, kernel="gaussian", sigma=2.0)
    # second: exp(-2); third: min(exp(-2), exp(-2) / exp(-2) = 1)
    np.testing.assert_allclose(dec, [0.5, 0.5 * math.exp(-2), 0.5 * math.exp(-2)], rtol=1e-6)
    empty = matrix_nms(np.zeros((0, 4), bool), np.zeros(0, int), np.zeros(0, int), np.zeros(0, np.float32))
    assert empty[0].size == 0 and empty[1].size == 0


def paper_matrix_nms(binary, labels, scores, kernel, sigma):
    """The SOLOv2 paper's Matrix NMS written as loops: decay_j = min over higher-scored i of f(iou_ij) / f(max_k
    iou_ki), class-aware (iou of different classes counts as 0), f gaussian exp(-sigma x^2) or linear 1 - x."""
    order = sorted(range(len(scores)), key=lambda i: -float(scores[i]))  # Python's sort is stable
    n = len(order)

    def iou(i, j):
        a, b = binary[order[i]], binary[order[j]]
        if labels[order[i]] != labels[order[j]]:
            return 0.0
        inter = int(np.logical_and(a, b).sum())
        union = int(a.sum()) + int(b.sum()) - inter
        return inter / union

    def f(x):
        return math.exp(-sigma * x * x) if kernel == "gaussian" else 1.0 - x

    comp = [max([iou(k, i) for k in range(i)], default=0.0) for i in range(n)]
    out = {}
    for j in range(n):
        ratios = [f(iou(i, j)) / f(comp[i]) if f(comp[i]) > 0 else math.inf for i in range(j)]
        out[order[j]] = float(scores[order[j]]) * min(ratios, default=1.0)
    return out


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 12), kernel=st.sampled_from(["gaussian", "linear"]),
       classes=st.integers(1, 3))
def test_matrix_nms_equals_the_papers_formula(seed, n, kernel, classes):
    rng = np.random.default_rng(seed)
    binary = rng.random((n, 36)) < rng.uniform(0.1, 0.9, (n, 1))
    binary[:, 0] = True  # no empty mask (the decoder never passes one)
    labels = rng.integers(0, classes, n)
    scores = rng.choice(np.float32([0.2, 0.5, 0.7, 0.9]), n)  # ties included
    idx, dec = matrix_nms(binary, binary.sum(1), labels, scores, kernel=kernel, sigma=2.0)
    expected = paper_matrix_nms(binary, labels, scores, kernel, 2.0)
    assert sorted(idx.tolist()) == list(range(n))
    for i, d in zip(idx.tolist(), dec.tolist(), strict=True):
        assert d == pytest.approx(min(expected[i], float(scores[i])), rel=1e-6, abs=1e-7)


# --------------------------------------------------------------------------- pieces


def test_exp64_matches_math_exp():
    x = np.concatenate([np.linspace(-100, 100, 20001), [0.0, -0.0, 1e-300, -1e-300, 0.5, -0.5]])
    got = reference_kernel.exp64(x)
    want = np.array([math.exp(v) for v in x])
    np.testing.assert_allclose(got, want, rtol=4e-16, atol=0)
    assert reference_kernel.exp64(np.array([1e6, -1e6])).tolist() == [math.exp(100), math.exp(-100)]
    assert reference_kernel.logit_threshold(0.5) == 0 and reference_kernel.logit_threshold(0.75) == np.float32(
        math.log(3))


def test_maskness_is_mean_sigmoid_inside_the_mask():
    logits = np.array([[4.0, -4.0, 2.0, np.nan], [-1.0, -1.0, -1.0, -1.0]], np.float32)
    binary, area, maskness = reference_kernel.masks_and_maskness(logits, np.float32(0))
    assert binary.tolist() == [[True, False, True, False], [False] * 4] and area.tolist() == [2, 0]
    s = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    np.testing.assert_allclose(maskness, [(s(4) + s(2)) / 2, 0.0], rtol=1e-15)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.pop("kernel"), "needs the 'kernel' block"),
        (lambda d: d["thresholds"].update(nms=True), "thresholds.nms must be false"),
        (lambda d: d["kernel"].update(strides=[1]), "one value per level"),
        (lambda d: d["kernel"]["matrix_nms"].update(kernel="box"), "matrix_nms.kernel"),
        (lambda d: d["kernel"].update(mask_threshold=1.0), "mask_threshold"),
        (lambda d: d["outputs"][2].update(layout="BAC"), "layout must be one of"),
        (lambda d: d["outputs"][1].update(activation="sigmoid"), "does not take 'activation'"),
    ],
)
def test_manifest_mistakes_are_named(edit, message):
    d = kernel_manifest()
    edit(d)
    with pytest.raises(ManifestError, match=message):
        parse_manifest(d)


def test_kernel_block_refused_by_other_families():
    d = kernel_manifest(family="query")
    d["outputs"] = [{"name": "c", "role": "class_logits", "layout": "BAC"},
                    {"name": "m", "role": "mask_logits", "layout": "NCHW"}]
    with pytest.raises(ManifestError, match="takes no 'kernel' block"):
        parse_manifest(d)


def test_output_shapes_are_checked():
    m = parse_manifest(kernel_manifest())
    out = hand_outputs()
    with pytest.raises(ValueError, match=r"have 20 cells, but cell scores have 19 rows"):
        KernelDecoder(m, "numpy")(out | {"cate": out["cate"][:, :19]}, LetterboxInfo.fit((8, 8), (32, 32)),
                                  FAMILY.options(m))
    with pytest.raises(ValueError, match="kernels have 3 channels but mask features have 2"):
        FAMILY.check_output_shapes(m, {"cate": (1, 20, 2), "kernels": (1, 20, 3), "mask_features": (1, 2, 8, 8)})
    with pytest.raises(ValueError, match="must have 2 channels"):
        FAMILY.check_output_shapes(m, {"cate": (1, 20, 3), "kernels": (1, 20, 3), "mask_features": (1, 3, 8, 8)})
    assert m.to_dict()["kernel"]["matrix_nms"]["sigma"] == 2.0
    assert parse_manifest(json.loads(m.to_json())) == m
