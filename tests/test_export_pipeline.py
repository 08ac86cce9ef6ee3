"""export_bundles / ``edgeseg export``: fails fast on bad input, searches mixed precision, reports parity."""

from __future__ import annotations

import dataclasses
import json
import logging
import time

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from export.formats import ExportJob, ExportOptions, export_format, parse_formats  # noqa: E402
from export.parity import GateError, ParityReport, check_gate  # noqa: E402
from export.pipeline import export_bundles  # noqa: E402
from export.sensitivity import (  # noqa: E402
    float_layer_schedule,
    layer_sensitivity,
    output_layers,
    search_float_layers,
)

IMGSZ = 64


@pytest.fixture(scope="module")
def small(tiny_model):
    model, spec = tiny_model
    return model, dataclasses.replace(spec, imgsz=(IMGSZ, IMGSZ))


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A calibration folder (6 images) and a COCO validation set (4 images)."""
    from export.data.synthetic import SceneConfig, generate

    root = tmp_path_factory.mktemp("data")
    generate(root / "calib", 6, seed=31, cfg=SceneConfig(height=96, width=128))
    generate(root / "val", 4, seed=32, cfg=SceneConfig(height=96, width=128))
    return root / "calib" / "images", root / "val"


def _fails_fast(fn, match, tmp_path):
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=match):
        fn()
    assert time.perf_counter() - t0 < 20, "the error must come before any conversion"
    assert not any(tmp_path.glob("out/*/manifest.json"))


def test_bad_input_fails_before_any_conversion(small, folders, tmp_path):
    model, spec = small
    calib, val = folders
    out = tmp_path / "out"
    empty = tmp_path / "empty"
    empty.mkdir()
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.jpg").write_bytes(b"not a jpeg")
    (junk / "b.png").write_bytes(b"\x89PNG broken")

    class TwoOutputs(torch.nn.Module):
        def forward(self, x):
            return model(x)[:2]

    _fails_fast(lambda: parse_formats("onnx,coreml"), r"unknown export format.*coreml", tmp_path)
    _fails_fast(lambda: export_bundles(TwoOutputs(), spec, "onnx", out), r"must return 4 tensors", tmp_path)
    _fails_fast(lambda: export_bundles(model, spec, "onnx-int8", out), r"need calibration images", tmp_path)
    _fails_fast(lambda: export_bundles(model, spec, "onnx-int8", out, calib=empty), r"no images", tmp_path)
    _fails_fast(lambda: export_bundles(model, spec, "tflite-int8", out, calib=junk), r"could be decoded", tmp_path)
    _fails_fast(lambda: export_bundles(model, spec, "onnx", out, val=calib), r"annotations.json", tmp_path)
    misspelt = ExportOptions(float_layers=("box_heads.0.outt",))
    _fails_fast(lambda: export_bundles(model, spec, "tflite-int8", out, calib=calib, options=misspelt),
                r"float layers \['box_heads.0.outt'\] are not modules", tmp_path)
    with pytest.raises(ValueError, match="calibration method"):
        ExportOptions(calibration_method="kl")


def test_export_with_validation_writes_bundles_and_report(small, folders, tmp_path, caplog):
    model, spec = small
    calib, val = folders
    out = tmp_path / "out"
    options = ExportOptions(latency_runs=3, sensitivity_images=2, calibration_method="percentile")
    with caplog.at_level(logging.WARNING, logger="export.calibration"):
        report = export_bundles(model, spec, "onnx,onnx-int8", out, calib=calib, val=val, options=options,
                                command="pytest")
    assert "only 6 calibration images" in caplog.text
    assert [f.name for f in report.formats] == ["onnx", "onnx-int8"]
    data = json.loads((out / "parity.json").read_text())
    md = (out / "parity.md").read_text()
    assert data["pytorch"]["images"] == 4 and data["calibration_images"] == 6 and data["machine"]["cores"] >= 1
    for f in data["formats"]:
        assert f["accuracy"]["images"] == 4 and f["mask_drop"] is not None
        assert f["latency_ms"][0] > 0 and set(f["deviation"]) == {"boxes", "scores", "coeffs", "protos"}
        assert f"| {f['name']} |" in md
    onnx, int8 = report.formats
    assert onnx.deviation["protos"]["max_abs"] < 1e-4 and onnx.size_ratio == 1.0
    assert int8.size_ratio < 0.6 and int8.search and int8.search[0]["float_layers"] == ()
    bundle = json.loads((out / "edgeseg-nano-onnx-int8" / "manifest.json").read_text())
    assert bundle["provenance"]["quantization"]["calibration"] == {"method": "percentile", "images": 6}
    assert not list(out.glob(".tmp-*"))
    with pytest.raises(ValueError, match="--force"):
        export_bundles(model, spec, "onnx", out)


def test_float_layers_stay_float_in_onnx_int8(small, folders, tmp_path):
    import onnx

    from export.bundler import input_spec
    from export.calibration import CalibrationSet

    model, spec = small
    calib, _ = folders
    job = ExportJob(model, spec, calibration=CalibrationSet(calib, input_spec(spec)),
                    float_layers=frozenset({"box_heads.0.out", "proto.2"}))
    bundle = export_format("onnx-int8", job, tmp_path / "b")
    q = bundle.manifest.provenance["quantization"]
    assert bundle.manifest.precision == "mixed" and len(q["float_nodes"]) == 2
    graph = onnx.load(str(bundle.model_path)).graph
    produced_by = {o: n for n in graph.node for o in n.output}
    init = {i.name for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Conv":
            weight = node.input[1]
            float_weight = weight in init
            assert float_weight == (node.name in q["float_nodes"]), (node.name, produced_by.get(weight))
    with pytest.raises(ValueError, match="not modules of the model"):
        dataclasses.replace(job, float_layers=frozenset({"nope.conv"}))


def test_float_layers_in_tflite_int8_compute_in_float_from_int8_weights(small, folders, tmp_path, caplog):
    """A float output runs in float end to end; its weights are still stored int8; all else is int8."""
    pytest.importorskip("litert_torch")
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    from export.bundler import input_spec
    from export.calibration import CalibrationSet

    model, spec = small
    calib, _ = folders
    box_head = frozenset(f"box_heads.{i}.out" for i in range(3))
    job = ExportJob(model, spec, calibration=CalibrationSet(calib, input_spec(spec)), float_layers=box_head)
    bundle = export_format("tflite-int8", job, tmp_path / "b")
    q = bundle.manifest.provenance["quantization"]
    assert bundle.manifest.precision == "mixed" and q["float_layers"] == sorted(box_head) and q["float_ops"] == 3
    quant = {out.role: out.quant for out in bundle.manifest.outputs}
    assert quant["boxes"] is None and quant["scores"] is not None

    flat = flatbuffer_utils.read_model(str(bundle.model_path))
    graph = flat.subgraphs[0]
    op_name = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    ops = [(op_name[flat.operatorCodes[op.opcodeIndex].builtinCode], op) for op in graph.operators]

    def dtype(index: int) -> int:
        return graph.tensors[index].type

    constants = {i for i, t in enumerate(graph.tensors) if flat.buffers[t.buffer].data is not None}
    float_convs = [op for name, op in ops if name in ("CONV_2D", "DEPTHWISE_CONV_2D")
                   and dtype(op.inputs[0]) == schema.TensorType.FLOAT32]
    assert len(float_convs) == 3
    # Each float layer's weights come from a DEQUANTIZE of an int8 constant.
    dequantized = {op.outputs[0]: op.inputs[0] for name, op in ops if name == "DEQUANTIZE"}
    for op in float_convs:
        w = op.inputs[1]
        assert w in dequantized and dequantized[w] in constants and dtype(dequantized[w]) == schema.TensorType.INT8
    stored_float = [i for i in constants if dtype(i) == schema.TensorType.FLOAT32 and len(graph.tensors[i].shape) > 1]
    assert stored_float == []
    # Residual and FPN adds run in int8, not between a dequantize and a quantize.
    adds = [op for name, op in ops if name == "ADD"]
    assert adds and all(dtype(i) == schema.TensorType.INT8 for op in adds for i in op.inputs)

    # One level of an output cannot stay float (the concatenation requantizes it): said, not hidden.
    with caplog.at_level(logging.WARNING, logger="export.formats.tflite"):
        one = export_format("tflite-int8", dataclasses.replace(job, float_layers=frozenset({"cls_heads.1.out"})),
                            tmp_path / "one")
    assert one.manifest.provenance["quantization"]["float_ops"] == 0 and one.manifest.precision == "int8"
    assert "0 of 1 float layers run in float" in caplog.text


def test_layer_sensitivity_and_search(small):
    model, spec = small
    x = [np.random.default_rng(i).random((1, 3, IMGSZ, IMGSZ), dtype=np.float32) for i in range(2)]
    ranked = layer_sensitivity(model, spec.output_roles, x)
    convs = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    assert sorted(s.name for s in ranked) == sorted(convs)
    scores = [s.score for s in ranked]
    assert scores == sorted(scores, reverse=True) and all(np.isfinite(scores)) and scores[0] > 0
    assert set(ranked[0].per_output) == set(spec.output_roles)
    with torch.no_grad():  # the probe restores every layer it touched
        before = [o.clone() for o in model(torch.from_numpy(x[0]))]
        layer_sensitivity(model, spec.output_roles, x[:1])
        for a, b in zip(before, model(torch.from_numpy(x[0])), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)

    heads = output_layers(model, spec.output_roles, torch.from_numpy(x[0]))
    assert heads == {"boxes": [f"box_heads.{i}.out" for i in range(3)], "scores": [f"cls_heads.{i}.out" for i in range(3)],
                     "coeffs": [f"coef_heads.{i}.out" for i in range(3)], "protos": ["proto.2"]}

    schedule = float_layer_schedule(("u",), [["h1", "h2"], ["h3"]], ["a", "h1", "b", "c", "d"], max_float_layers=6)
    assert schedule == [("u",), ("u", "h1", "h2"), ("u", "h1", "h2", "h3"), ("u", "h1", "h2", "h3", "a"),
                        ("u", "h1", "h2", "h3", "a", "b")]
    assert float_layer_schedule((), [["h1", "h2", "h3"]], ["a"], max_float_layers=2) == [()]
    built = []
    found, steps = search_float_layers(lambda s: built.append(s) or len(s), lambda c: (c >= 3, {"n": c}), schedule)
    assert found == 3 and [s.passed for s in steps] == [False, True] and len(built) == 2


def test_gate_failure_is_loud():
    from export.parity import FormatResult

    bad = FormatResult("tflite-int8", "b", "int8", 10, 0.3, None, 2.5, 1.0, (1.0, 2.0), {}, passed=False)
    report = ParityReport("m", (64, 64), "cmd", 1.0, "val", 10, 10, None, (1.0, 1.0), (bad,))
    with pytest.raises(GateError, match=r"tflite-int8 \(drop 2.50\)"):
        check_gate(report)
    assert "**FAIL**" in report.to_markdown()


def test_match_outputs_uses_shape_then_values():
    from export.formats.tflite import match_outputs

    rng = np.random.default_rng(0)
    ref = {"boxes": rng.random((1, 10, 4), dtype=np.float32), "scores": rng.random((1, 10, 4), dtype=np.float32),
           "protos": rng.random((1, 8, 8, 4), dtype=np.float32)}
    # LiteRT order and names say nothing; boxes and scores even share a shape.
    details = [{"name": "out_2", "shape": np.array([1, 10, 4]), "quantization": (0.0, 0)},
               {"name": "out_0", "shape": np.array([1, 8, 8, 4]), "quantization": (0.0, 0)},
               {"name": "out_1", "shape": np.array([1, 10, 4]), "quantization": (0.0, 0)}]
    values = {"out_2": ref["boxes"] + 1e-3, "out_1": ref["scores"], "out_0": ref["protos"]}
    assert match_outputs(details, values, ref) == {"boxes": "out_2", "scores": "out_1", "protos": "out_0"}
    with pytest.raises(ValueError, match="no match for roles"):
        match_outputs(details[:2], values, ref)


def test_cli_gate_and_errors(tmp_path):
    import subprocess
    import sys

    from export.models import NanoConfig, build_nano, save_nano

    torch.manual_seed(2)
    weights = tmp_path / "w.safetensors"
    save_nano(build_nano(NanoConfig(width=8, imgsz=64)), weights)
    img = tmp_path / "calib"
    img.mkdir()
    cv2.imwrite(str(img / "a.png"), np.full((64, 64, 3), 90, np.uint8))
    run = lambda *a: subprocess.run([sys.executable, "-m", "edgeseg", "export", str(weights), *a],  # noqa: E731
                                    capture_output=True, text=True, timeout=300)
    bad = run("--formats", "onnx,tflite-int9", "--out", str(tmp_path / "o"))
    assert bad.returncode == 2 and "tflite-int9" in bad.stderr and "Traceback" not in bad.stderr
    empty = run("--formats", "tflite-int8", "--calib", str(tmp_path / "nothing"), "--out", str(tmp_path / "o"))
    assert empty.returncode == 2 and "nothing" in empty.stderr
    ok = run("--formats", "onnx", "--calib", str(img), "--out", str(tmp_path / "o"), "--latency-runs", "2")
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "o" / "parity.md").is_file() and "edgeseg-nano-onnx" in ok.stdout
