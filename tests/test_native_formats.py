"""OpenVINO and ncnn bundles made from float ONNX bundles, run through their real runtimes.

edgeseg-nano (separate outputs) and the imported Ultralytics YOLOv8n-seg
(one shared ``output0``) are converted with ``edgeseg convert``'s code, and
every converted bundle is held to what ONNX Runtime decodes from the float
model on the sample images.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import edgeseg
from edgeseg.backends import BackendUnavailable, load_backend
from edgeseg.bundle import load_bundle, write_bundle
from edgeseg.device_config import BackendOptions, DeviceConfig
from edgeseg.native_options import NcnnOptions, OpenVINOOptions

REPO = Path(__file__).resolve().parents[1]
NANO = REPO / "edgeseg" / "assets" / "edgeseg-nano"
SAMPLES = REPO / "edgeseg" / "assets" / "samples"
ULTRALYTICS = REPO / "tests" / "fixtures" / "ultralytics"


def _images() -> list[np.ndarray]:
    return [cv2.imread(str(p)) for p in sorted(SAMPLES.glob("*.jpg"))]


def _mask_iou(a, b) -> float:
    fa, fb = a.full_masks(), b.full_masks()
    inter = (fa & fb).sum(axis=(1, 2))
    return float(np.min(inter / np.maximum((fa | fb).sum(axis=(1, 2)), 1)))


def _same_instances(ref, got, *, box_px: float, iou: float) -> None:
    assert len(ref) > 0
    assert got.class_ids.tolist() == ref.class_ids.tolist()
    np.testing.assert_allclose(got.boxes, ref.boxes, atol=box_px)
    np.testing.assert_allclose(got.scores, ref.scores, atol=0.01)
    assert _mask_iou(ref, got) >= iou


@pytest.fixture(scope="module")
def nano_converted(tmp_path_factory):
    from export.convert_native import convert_bundle

    out = tmp_path_factory.mktemp("native")
    report = convert_bundle(NANO, "openvino,ncnn", out, calib=str(SAMPLES), command="test")
    return out, report


def _config(**backend) -> DeviceConfig:
    return DeviceConfig(backend=BackendOptions(threads=1, **backend))


@pytest.mark.parametrize("fmt", ["openvino", "ncnn"])
def test_float_conversions_decode_the_onnx_models_instances(nano_converted, fmt):
    out, _ = nano_converted
    ref = edgeseg.load(NANO, device_config=_config())
    seg = edgeseg.load(out / f"edgeseg-nano-{fmt}", device_config=_config())
    assert seg.manifest.format == fmt and seg.backend.device.startswith(fmt)
    for image in _images():
        _same_instances(ref(image), seg(image), box_px=0.5, iou=0.97)


def test_conversion_report_and_provenance(nano_converted):
    out, report = nano_converted
    data = json.loads((out / "parity.json").read_text())
    assert [f["name"] for f in data["formats"]] == ["openvino", "ncnn"] and report.passed
    assert data["reference"] == "float ONNX (edgeseg-nano)" and (out / "parity.md").is_file()
    rows = {f["name"]: f for f in data["formats"]}
    assert rows["ncnn"]["precision"] == "fp16" and rows["ncnn"]["size_ratio"] < 0.55  # fp16 weights
    assert 0.9 < rows["openvino"]["size_ratio"] < 1.05
    for row in rows.values():
        assert set(row["deviation"]) == {"boxes", "scores", "coeffs", "protos"}
    m = load_bundle(out / "edgeseg-nano-openvino").manifest
    source = load_bundle(NANO).manifest
    assert m.provenance["converted_from"]["sha256"] == source.files["model.onnx"].sha256
    assert set(m.files) == {"model.xml", "model.bin"}
    assert set(load_bundle(out / "edgeseg-nano-ncnn").manifest.files) == {"model.ncnn.param", "model.ncnn.bin"}


def test_device_config_options_reach_the_runtime(nano_converted):
    out, _ = nano_converted
    ncnn = load_backend(load_bundle(out / "edgeseg-nano-ncnn"),
                        BackendOptions(threads=1, ncnn=NcnnOptions(fp16_storage=False)))
    assert "fp16 storage=False" in ncnn.device and ncnn.net.opt.use_fp16_storage is False
    ov = load_backend(load_bundle(out / "edgeseg-nano-openvino"),
                      BackendOptions(threads=1, openvino=OpenVINOOptions(precision="f32")))
    assert ov.compiled.get_property("INFERENCE_PRECISION_HINT").to_string() == "f32"
    with pytest.raises(ValueError, match="could not compile .* for 'NOSUCHDEVICE'"):
        load_backend(load_bundle(out / "edgeseg-nano-openvino"),
                     BackendOptions(openvino=OpenVINOOptions(device="NOSUCHDEVICE")))


def test_ncnn_bundle_with_a_wrong_input_is_refused(nano_converted):
    out, _ = nano_converted
    seg = edgeseg.load(out / "edgeseg-nano-ncnn", device_config=_config())
    with pytest.raises(ValueError, match=r"model input must be float32 \(1, 3, 320, 320\), got float32 \(1, 3, 32, 32\)"):
        seg.backend.run(np.zeros((1, 3, 32, 32), np.float32))


@pytest.fixture(scope="module")
def yolov8(tmp_path_factory):
    from edgeseg.imports import import_model

    return import_model(ULTRALYTICS / "yolov8n-seg" / "model.onnx", tmp_path_factory.mktemp("import") / "yolov8n-seg")


def test_ultralytics_import_converts_with_int8_outputs_split(yolov8, tmp_path):
    """openvino-int8 (NNCF) splits the shared output0; ncnn keeps it and decodes the same instances."""
    from export.convert_native import convert_bundle

    report = convert_bundle(yolov8, "openvino-int8,ncnn", tmp_path, calib=str(ULTRALYTICS / "images"),
                            command="test")
    assert [f.name for f in report.formats] == ["openvino-int8", "ncnn"]
    int8_dir, ncnn_dir = (Path(f.bundle) for f in report.formats)
    assert int8_dir == tmp_path / f"{yolov8.manifest.name}-openvino-int8"
    int8 = load_bundle(int8_dir).manifest
    assert int8.precision == "int8" and int8.provenance["quantization"]["outputs_split"] is True
    assert {o.role: o.name for o in int8.outputs if o.role != "protos"} == {
        "boxes": "edgeseg_boxes", "scores": "edgeseg_scores", "coeffs": "edgeseg_coeffs"}
    assert all(o.channels is None for o in int8.outputs)
    ncnn = load_bundle(ncnn_dir).manifest
    assert [o.channels for o in ncnn.outputs] == [o.channels for o in yolov8.manifest.outputs]
    ref = edgeseg.load(yolov8, device_config=_config())
    f16 = edgeseg.load(ncnn_dir, device_config=_config())
    q = edgeseg.load(int8_dir, device_config=_config())
    for path in sorted((ULTRALYTICS / "images").glob("*.jpg")):
        image = cv2.imread(str(path))
        r = ref(image, score_threshold=0.3)
        _same_instances(r, f16(image, score_threshold=0.3), box_px=1.0, iou=0.95)
        got = q(image, score_threshold=0.3)
        assert abs(len(got) - len(r)) <= max(1, len(r) // 3)  # int8 keeps the picture, not every borderline one


def test_convert_refuses_what_it_cannot_make(tmp_path):
    from export.convert_native import convert_bundle

    with pytest.raises(ValueError, match=r"formats \['onnx-int8'\] are not made from ONNX"):
        convert_bundle(NANO, "onnx-int8", tmp_path)
    with pytest.raises(ValueError, match=r"\['openvino-int8'\] are int8 and need --calib"):
        convert_bundle(NANO, "openvino-int8", tmp_path)
    with pytest.raises(ValueError, match="unknown export format"):
        convert_bundle(NANO, "openvino-fp8", tmp_path)
    done = subprocess.run([sys.executable, "-m", "edgeseg", "convert", str(tmp_path / "missing"), "--formats", "ncnn",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "missing" in done.stderr


def test_rknn_bundle_without_rknnlite_names_the_extra(tmp_path):
    """rknn-toolkit-lite2 exists for aarch64 boards only: here the backend says what to install."""
    pytest.importorskip("numpy")
    try:
        import rknnlite  # noqa: F401
        pytest.skip("rknn-toolkit-lite2 is installed here")
    except ImportError:
        pass
    src = load_bundle(NANO)
    fake = tmp_path / "model.rknn"
    fake.write_bytes(b"RKNN")
    bundle = write_bundle(tmp_path / "b", src.manifest.replace(format="rknn", precision="int8", model="model.rknn"),
                          {"model.rknn": fake})
    with pytest.raises(BackendUnavailable, match=r"pip install 'edgeseg\[rknn\]'"):
        load_backend(bundle, BackendOptions())


def test_readme_board_native_example_runs(tmp_path, monkeypatch, capsys):
    import re

    text = (REPO / "README.md").read_text()
    start = text.index("## Board-native backends")
    (block,) = re.findall(r"```python\n(.*?)```", text[start:text.find("\n## ", start + 1)], flags=re.S)
    monkeypatch.chdir(REPO)
    exec(compile(block.replace('"bundles/native"', repr(str(tmp_path))).replace(
        'f"bundles/native/', f'f"{tmp_path}/'), "README:Board-native backends", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["openvino", "ncnn"]
    assert all(int(line.split()[-2]) > 0 for line in lines)
    assert "openvino CPU" in lines[0] and "threads=4" in lines[1]


def test_openvino_int8_keeps_the_float_nodes_float(tmp_path):
    """What the mixed-precision search asks for (ONNX node names) reaches NNCF's ignored scope."""
    import onnx
    import openvino as ov

    from export.calibration import CalibrationSet
    from export.formats import openvino

    src = load_bundle(NANO)
    convs = [n.name for n in onnx.load(str(src.model_path)).graph.node if n.op_type == "Conv"]
    kept = tuple(convs[-2:])
    bundle = openvino.convert(src, "int8", tmp_path / "mixed", calibration=CalibrationSet(SAMPLES, src.manifest.input),
                              float_nodes=kept)
    assert bundle.manifest.precision == "mixed" and bundle.manifest.provenance["quantization"]["float_nodes"] == list(kept)
    fed = {}
    for op in ov.Core().read_model(str(bundle.model_path)).get_ops():
        if op.get_type_name() in ("Convolution", "GroupConvolution"):
            name = op.get_friendly_name().removesuffix("/WithoutBiases")
            fed[name] = {i.get_source_output().get_node().get_type_name() for i in op.inputs()}
    assert all("FakeQuantize" not in fed[name] for name in kept)
    assert sum("FakeQuantize" in inputs for inputs in fed.values()) >= len(convs) - len(kept) - 2  # the rest is int8
