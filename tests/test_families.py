"""Model families as plug-ins: a toy family from the tests folder, shared outputs, the proto layouts in the wild."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from edgeseg.bundle import load_bundle, write_bundle
from edgeseg.decode import ProtoOptions, QTensor, cpath, reference
from edgeseg.decode.tensors import ProtoTensors
from edgeseg.families import FAMILIES
from edgeseg.families.proto import proto_tensors
from edgeseg.manifest import InputSpec, Manifest, ManifestError, OutputSpec, Thresholds, parse_manifest
from edgeseg.preprocess import LetterboxInfo

DECODERS = [reference.decode_proto] + ([cpath.decode_proto] if cpath.available() else [])


def _circle_model(path, rows: np.ndarray) -> None:
    """A real ONNX model whose output ``circles`` (1, N, 5) is ``rows`` (plus 0 x the image mean)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Reshape", ["mean", "shape"], ["mean3"]),
        helper.make_node("Mul", ["mean3", "zero"], ["nothing"]),
        helper.make_node("Add", ["nothing", "rows"], ["circles"]),
    ]
    graph = helper.make_graph(
        nodes, "circles", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("circles", TensorProto.FLOAT, [1, len(rows), 5])],
        initializer=[numpy_helper.from_array(np.array([1, 1, 1], np.int64), "shape"),
                     numpy_helper.from_array(np.zeros((1,), np.float32), "zero"),
                     numpy_helper.from_array(rows[None].astype(np.float32), "rows")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))


@pytest.fixture()
def toy_family():
    from toy_family import FAMILY

    FAMILIES.register(FAMILY.name, FAMILY)
    yield FAMILY
    FAMILIES.unregister(FAMILY.name)


def test_a_family_defined_in_the_tests_folder_runs_through_the_whole_runtime(tmp_path, toy_family):
    import edgeseg
    from edgeseg.grasp import GripperSpec, plan_grasps

    _circle_model(tmp_path / "circles.onnx", np.array([[20, 30, 8, 0.9, 1], [44, 40, 6, 0.1, 0]], np.float32))
    manifest = Manifest(
        name="circles", family="toy-circles", format="onnx", precision="fp32", model="model.onnx",
        input=InputSpec(name="images", shape=(1, 3, 64, 64)),
        outputs=(OutputSpec("circles", "circles", "BAC"),), classes=("disk", "coin"),
        thresholds=Thresholds(score=0.5),
    )
    write_bundle(tmp_path / "bundle", manifest, {"model.onnx": tmp_path / "circles.onnx"})
    seg = edgeseg.load(load_bundle(tmp_path / "bundle"))
    assert seg.decoder.family is toy_family and type(seg.decoder.options).__name__ == "CircleOptions"
    result = seg(np.full((128, 128, 3), 90, np.uint8))  # 2x the input: circle (40, 60) r 16
    assert [i.class_name for i in result] == ["coin"]
    np.testing.assert_allclose(result.boxes[0], [24, 44, 56, 76])
    assert abs(result.masks[0].area - math.pi * 16**2) < 0.05 * math.pi * 16**2
    assert result.timings.infer_ms > 0 and result.to_dict()["instances"][0]["mask_rle"]["size"] == [128, 128]
    grasps = plan_grasps(result, GripperSpec(max_opening=100, finger_width=4, finger_thickness=4, finger_depth=8,
                                             margin=2, unit="px"))
    assert len(grasps) == 1 and abs(grasps[0].center[0] - 40) < 1 and abs(grasps[0].center[1] - 60) < 1
    # unregistered again: the same manifest names the family it lacks and the known ones
    FAMILIES.unregister("toy-circles")
    with pytest.raises(ValueError, match=r"family must be one of \['proto', 'roi', 'prompt'\], got 'toy-circles'"):
        load_bundle(tmp_path / "bundle")


def _shared_manifest(**changes) -> dict:
    outputs = [
        {"name": "output0", "role": "boxes", "layout": "BCA", "channels": [0, 4], "encoding": "cxcywh"},
        {"name": "output0", "role": "scores", "layout": "BCA", "channels": [4, 6], "activation": "none"},
        {"name": "output0", "role": "coeffs", "layout": "BCA", "channels": [6, 9]},
        {"name": "output1", "role": "protos", "layout": "NCHW"},
    ]
    data = {"schema_version": 1, "name": "m", "family": "proto", "format": "onnx", "precision": "fp32",
            "model": "model.onnx", "input": {"name": "images", "shape": [1, 3, 64, 64]}, "outputs": outputs,
            "classes": ["a", "b"]}
    data.update(changes)
    return json.loads(json.dumps(data))


def test_roles_read_channel_ranges_of_one_shared_tensor_without_copying():
    m = parse_manifest(_shared_manifest())
    out0 = np.random.default_rng(0).normal(size=(1, 9, 7)).astype(np.float32)
    protos = np.zeros((1, 3, 16, 16), np.float32)
    t = proto_tensors({"output0": out0, "output1": protos}, m, None)
    for role, (a, b) in {"boxes": (0, 4), "scores": (4, 6), "coeffs": (6, 9)}.items():
        view = getattr(t, role).data
        assert np.shares_memory(view, out0) and view.shape == (7, b - a)
        np.testing.assert_array_equal(view, out0[0, a:b].T)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["outputs"][1].update(channels=[3, 6]), r"overlap: channels \[0, 4\] and \[3, 6\]"),
        (lambda d: d["outputs"][2].pop("channels"), r"share tensor 'output0': each needs 'channels'"),
        (lambda d: d["outputs"][1].update(channels=[4, 7]) or d["outputs"][2].update(channels=[7, 9]),
         r"role scores\) spans 3 channels \[4, 7\], expected 2"),
        (lambda d: d["outputs"][0].update(channels=[4, 0]), r"channels must be \[start, stop\)"),
        (lambda d: d["outputs"][2].update(layout="BAC"), "differ in layout or quant"),
        (lambda d: d["outputs"][0].update(encoding="ltrb", normalized=True), "need 'anchors'"),
        (lambda d: d["outputs"].append({"name": "o", "role": "objectness", "layout": "BAC"})
         or d["outputs"].append({"name": "l", "role": "labels", "layout": "BAC"}), "not both"),
        (lambda d: d["outputs"][3].update(normalized=True), "does not take 'normalized'"),
    ],
)
def test_shared_output_mistakes_are_named(edit, message):
    data = _shared_manifest()
    edit(data)
    with pytest.raises(ManifestError, match=message):
        parse_manifest(data)


def _frame(boxes, scores, *, objectness=None, labels=None, input_size=(64, 64)):
    a = len(boxes)
    t = ProtoTensors(
        QTensor(np.asarray(boxes, np.float32)), QTensor(np.asarray(scores, np.float32)),
        QTensor(np.ones((a, 1), np.float32)), QTensor(np.ones((1, 4, 4), np.float32)),
        None if objectness is None else QTensor(np.asarray(objectness, np.float32)[:, None]),
        None if labels is None else QTensor(np.asarray(labels, np.float32)[:, None]),
    )
    return t, LetterboxInfo.fit(input_size, input_size)


@pytest.mark.parametrize("decode", DECODERS)
def test_strict_threshold_keeps_only_scores_above_it(decode):
    t, lb = _frame([[0, 0, 10, 10], [20, 20, 30, 30]], [[0.25, 0.0], [0.0, 0.2500001]])
    opts = ProtoOptions(box_encoding="xyxy", score_activation="none", score_threshold=0.25)
    assert decode(t, lb, opts, None).scores.tolist() == pytest.approx([0.2500001, 0.25])
    strict = decode(t, lb, ProtoOptions(**{**opts.__dict__, "score_strict": True}), None)
    assert strict.class_ids.tolist() == [1]


@pytest.mark.parametrize("decode", DECODERS)
def test_objectness_multiplies_every_class_score(decode):
    t, lb = _frame([[0, 0, 10, 10], [20, 20, 30, 30]], [[0.6, 0.2], [0.9, 0.1]], objectness=[0.5, 0.2])
    r = decode(t, lb, ProtoOptions(box_encoding="xyxy", score_activation="none", score_threshold=0.25), None)
    assert r.class_ids.tolist() == [0] and r.scores.tolist() == [np.float32(0.6) * np.float32(0.5)]


@pytest.mark.parametrize("decode", DECODERS)
def test_end_to_end_rows_keep_their_labels_and_skip_nms(decode):
    boxes = [[0, 0, 10, 10], [0, 0, 10, 10], [1, 1, 9, 9], [5, 5, 6, 6]]
    t, lb = _frame(boxes, [[0.9], [0.8], [0.7], [0.95]], labels=[1, 1, 0, 7])  # label 7: not a class
    opts = ProtoOptions(box_encoding="xyxy", score_activation="none", nms=False, max_detections=300)
    r = decode(t, lb, opts, None, class_names=("a", "b"))
    assert r.class_ids.tolist() == [1, 1, 0] and r.scores.tolist() == pytest.approx([0.9, 0.8, 0.7])
    with_nms = decode(t, lb, ProtoOptions(**{**opts.__dict__, "nms": True}), None, class_names=("a", "b"))
    assert with_nms.class_ids.tolist() == [1, 0]


@pytest.mark.parametrize("decode", DECODERS)
def test_normalized_boxes_are_scaled_to_the_input_first(decode):
    t, lb = _frame([[0.5, 0.25, 0.25, 0.5]], [[0.9]], input_size=(64, 128))  # cxcywh fractions, 128 wide
    opts = ProtoOptions(box_encoding="cxcywh", score_activation="none", box_scale=(128.0, 64.0))
    lb = LetterboxInfo.fit((64, 128), (64, 128))
    np.testing.assert_array_equal(decode(t, lb, opts, None).boxes, [[48, 0, 80, 32]])


def test_output_shapes_are_checked_by_the_family_before_any_conversion():
    m = parse_manifest(_shared_manifest())
    proto = FAMILIES.get("proto")
    proto.check_output_shapes(m, {"output0": (1, 9, 84), "output1": (1, 3, 16, 16)})
    with pytest.raises(ValueError, match=r"takes channels \[6, 9\) but the tensor has 8"):
        proto.check_output_shapes(m, {"output0": (1, 8, 84), "output1": (1, 3, 16, 16)})
    with pytest.raises(ValueError, match="coeffs have 3 channels but protos have 5"):
        proto.check_output_shapes(m, {"output0": (1, 9, 84), "output1": (1, 5, 16, 16)})
    assert proto.map_roles() == {"protos"} and FAMILIES.get("roi").map_roles() == {"masks"}


def test_roi_family_decodes_detections_and_pastes_their_masks():
    """Mask R-CNN-style outputs through the registry: score filter, letterbox undo, per-ROI paste."""
    from edgeseg.decode import Decoder

    m = Manifest(
        name="roi", family="roi", format="onnx", precision="fp32", model="model.onnx",
        input=InputSpec(name="images", shape=(1, 3, 64, 64)),
        outputs=(OutputSpec("b", "boxes", "BAC"), OutputSpec("s", "scores", "BAC"),
                 OutputSpec("l", "labels", "BAC"), OutputSpec("m", "masks", "NCHW")),
        classes=("bg", "part"), thresholds=Thresholds(score=0.5, nms=False),
    )
    logits = np.full((2, 1, 4, 4), -5.0, np.float32)
    logits[0, 0, :, :2] = 5.0  # left half of the first box
    raw = {"b": np.array([[8, 16, 24, 48], [0, 0, 8, 8]], np.float32), "s": np.array([0.9, 0.2], np.float32),
           "l": np.array([1, 1], np.int64), "m": logits}
    lb = LetterboxInfo.fit((32, 64), (64, 64))  # 64x32 image: 16 rows of padding on top
    r = Decoder(m)(raw, lb)
    assert r.class_ids.tolist() == [1] and r.scores.tolist() == pytest.approx([0.9])
    np.testing.assert_allclose(r.boxes, [[8, 0, 24, 32]])
    mask = r.masks[0].full()
    assert mask[:, 8:16].all() and not mask[:, 16:24].any() and mask.sum() == 8 * 32
