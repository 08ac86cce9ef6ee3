"""Int8 of an imported Ultralytics ONNX: outputs split exactly, QDQ through onnxruntime, the gate measured."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")

from edgeseg.imports import import_model  # noqa: E402

FIXTURE = Path(__file__).parent / "fixtures" / "ultralytics" / "yolov8n-seg" / "model.onnx"


@pytest.fixture(scope="module")
def float_bundle(tmp_path_factory):
    return import_model(FIXTURE, tmp_path_factory.mktemp("import") / "yolov8n-seg")


@pytest.fixture(scope="module")
def val_set(tmp_path_factory) -> Path:
    """Twelve synthetic scenes with COCO annotations (the project's generator, seeded)."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("val") / "val"
    subprocess.run([sys.executable, "-m", "export.data.synthetic", "--out", str(out), "--num", "12", "--seed", "1000",
                    "--workers", "1"], check=True, capture_output=True)
    return out


def test_split_outputs_equal_the_shared_tensors_channel_ranges(float_bundle, tmp_path):
    import onnx
    import onnxruntime as ort

    from export.import_int8 import split_outputs

    m = float_bundle.manifest
    specs = split_outputs(float_bundle.model_path, tmp_path / "split.onnx", m)
    graph = onnx.load(str(tmp_path / "split.onnx")).graph
    names = [o.name for o in graph.output]
    assert names == ["output1", "edgeseg_boxes", "edgeseg_scores", "edgeseg_coeffs"]
    assert not any(n.op_type == "Slice" and n.name.startswith("edgeseg_") for n in graph.node)  # true concat inputs
    x = np.random.default_rng(0).uniform(0, 1, (1, 3, 320, 320)).astype(np.float32)
    full = dict(zip(["output0", "output1"], ort.InferenceSession(str(float_bundle.model_path)).run(None, {"images": x}),
                    strict=True))
    split = dict(zip(names, ort.InferenceSession(str(tmp_path / "split.onnx")).run(None, {"images": x}), strict=True))
    for spec in m.outputs:
        if spec.channels is None:
            continue
        a, b = spec.channels
        np.testing.assert_allclose(split[f"edgeseg_{spec.role}"], full["output0"][:, a:b], rtol=1e-6, atol=1e-4)
    assert {s.role: s.name for s in specs}["scores"] == "edgeseg_scores"


def test_int8_import_writes_a_gated_bundle_and_its_report(float_bundle, val_set, tmp_path):
    import cv2

    import edgeseg
    from export.import_int8 import quantize_imported

    out = tmp_path / "yolov8n-seg-int8"
    report = quantize_imported(float_bundle, out, calib=str(val_set / "images"), val=str(val_set), calib_images=12,
                               gate=100.0, max_steps=1, command="test")
    int8 = edgeseg.load(out)
    m = int8.manifest
    assert m.precision == "int8" and m.provenance["quantization"]["outputs_split"] is True
    assert [o.name for o in m.outputs if o.role != "protos"] == ["edgeseg_boxes", "edgeseg_scores", "edgeseg_coeffs"]
    assert report.passed and (out / "parity.md").is_file()
    data = json.loads((out / "parity.json").read_text())
    assert data["reference"] == "float ONNX (imported)" and data["formats"][0]["name"] == "onnx-int8"
    assert data["formats"][0]["size_ratio"] < 0.35
    image = cv2.imread(str(sorted((val_set / "images").iterdir())[0]))
    f, q = edgeseg.load(float_bundle)(image, score_threshold=0.1), int8(image, score_threshold=0.1)
    assert abs(len(f) - len(q)) <= max(2, len(f) // 3)  # int8 keeps the picture, not every borderline detection


def test_committed_import_parity_report_holds_the_gate_and_readme_quotes_it():
    """benchmarks/results/parity/yolov8n-seg-import: the int8 bundle of the YOLOv8 fixture on the 500-image val split."""
    repo = Path(__file__).resolve().parents[1]
    report = json.loads((repo / "benchmarks/results/parity/yolov8n-seg-import/parity.json").read_text())
    (row,) = report["formats"]
    assert report["val"] == "data/synth/val" and report["calibration_images"] >= 300 and report["gate"] == 1.0
    assert row["passed"] and row["mask_drop"] <= 1.0
    assert row["latency_ms"][0] < report["pytorch_latency_ms"][0]  # int8 infers faster than the float ONNX
    readme = (repo / "README.md").read_text()
    assert f"{row['accuracy']['mask_map']:.1f}" in readme and f"{row['mask_drop']:.2f}" in readme
