"""Hostile manifests and device configs: each defect is refused with a message naming key, expectation and value.

One test case per problem found when probing the loaders (issue 18); every
case was silently accepted, or crashed with a bare TypeError / AttributeError
/ RecursionError / UnicodeDecodeError / OverflowError, before the shared
validator (:mod:`edgeseg.fromdict`).
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest

from edgeseg.backends import load_backend
from edgeseg.bundle import BundleError, load_bundle
from edgeseg.device_config import BackendOptions, ConfigError, load_device_config
from edgeseg.manifest import ManifestError, parse_manifest

NANO = Path(__file__).resolve().parents[1] / "edgeseg" / "assets" / "edgeseg-nano"
GOOD = json.loads((NANO / "manifest.json").read_text())


def _with(path: str, value) -> dict:
    """A copy of the good manifest with the value at dotted ``path`` (list indices as ints) replaced."""
    data = copy.deepcopy(GOOD)
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]
    node = data
    for k in keys[:-1]:
        node = node[k]
    node[keys[-1]] = value
    return data


def test_the_good_manifest_parses():
    m = parse_manifest(copy.deepcopy(GOOD))
    assert m.input.shape == (1, 3, 320, 320) and len(m.classes) == 6


@pytest.mark.parametrize(
    "path, value, key, expected",
    [
        ("input.letterbox.pad_value", 1000, "manifest.input.letterbox.pad_value", "[0, 255]"),
        ("input.letterbox.pad_value", -1, "manifest.input.letterbox.pad_value", "[0, 255]"),
        ("thresholds.max_detections", 2**63, "manifest.thresholds.max_detections", "int in"),
        ("thresholds.pre_nms_topk", 1e308, "manifest.thresholds.pre_nms_topk", "int, got"),
        ("thresholds.max_detections", 1.5, "manifest.thresholds.max_detections", "int, got"),
        ("thresholds.score", float("nan"), "manifest.thresholds.score", "a finite number"),
        ("thresholds.iou", 0, "manifest.thresholds.iou", "(0, 1]"),
        ("thresholds.class_agnostic", "yes", "manifest.thresholds.class_agnostic", "bool"),
        ("input.scale", 3, "manifest.input.scale", "(0, 1]"),
        ("input.scale", float("nan"), "manifest.input.scale", "a finite number"),
        ("input.scale", float("inf"), "manifest.input.scale", "a finite number"),
        ("input.std", [0, 0, 0], "manifest.input.std[0]", "(0, 255]"),
        ("input.mean", [0, float("nan"), 0], "manifest.input.mean[1]", "a finite number"),
        ("input.shape", [1, 3, True, 320], "manifest.input.shape[2]", "int, got"),
        ("input.shape", [1, 3, 8000, 8000], "manifest.input.shape[2]", "[1, 4096]"),
        ("input.shape", [1, 3, 20000, 20000], "manifest.input.shape[2]", "[1, 4096]"),
        ("input.shape", "1,3,320,320", "manifest.input.shape", "a list"),
        ("anchors.offset", float("nan"), "manifest.anchors.offset", "a finite number"),
        ("anchors.strides", [8, 0, 32], "manifest.anchors.strides[1]", "[1, 1024]"),
        ("anchors.strides", [], "manifest.anchors.strides", "1 to 16 items"),
        ("classes", "boxcan", "manifest.classes", "a list"),
        ("classes", ["box", "box"], "manifest.classes", "all different"),
        ("classes", ["box", ""], "manifest.classes[1]", "1 to"),
        ("outputs.0", ["boxes", "boxes", "BAC"], "manifest.outputs[0]", "a mapping"),
        ("outputs", {"name": "boxes"}, "manifest.outputs", "a list"),
        ("input", [1, 3, 320, 320], "manifest.input", "a mapping"),
        ("name", 7, "manifest.name", "str"),
        ("files.model.onnx", {"sha256": "0" * 64, "size": "4598433"}, "size", "int, got"),
        ("files.model.onnx", {"sha256": "xyz", "size": 1}, "sha256", "matching"),
        ("provenance", {"a": float("inf")}, "manifest.provenance", "finite numbers"),
    ],
)
def test_each_bad_value_is_refused_naming_key_expectation_and_value(path, value, key, expected):
    data = _with(path, value) if not path.startswith("files.") else {**GOOD, "files": {"model.onnx": value}}
    with pytest.raises(ManifestError) as err:
        parse_manifest(data)
    msg = str(err.value)
    assert key in msg and expected in msg and "got" in msg, msg


def test_deeply_nested_values_are_refused_without_recursion_error():
    deep: list = []
    for _ in range(100):
        deep = [deep]
    with pytest.raises(ManifestError, match="nested at most 32 deep"):
        parse_manifest(_with("provenance", {"x": deep}))


@pytest.fixture()
def nano_copy(tmp_path) -> Path:
    dst = tmp_path / "nano"
    shutil.copytree(NANO, dst)
    return dst


def _write_manifest(root: Path, data) -> None:
    (root / "manifest.json").write_text(json.dumps(data))


def test_a_manifest_file_that_is_not_utf8_or_nested_too_deep_is_a_bundle_error(nano_copy):
    (nano_copy / "manifest.json").write_bytes(b'{"name": "\xff\xfe"}')
    with pytest.raises(BundleError, match=r"manifest\.json is not UTF-8"):
        load_bundle(nano_copy)
    (nano_copy / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(BundleError, match="nested too deeply"):
        load_bundle(nano_copy)


def test_a_size_written_as_a_string_names_the_type_not_equal_looking_numbers(nano_copy):
    size = (nano_copy / "model.onnx").stat().st_size
    data = copy.deepcopy(GOOD)
    data["files"]["model.onnx"]["size"] = str(size)
    _write_manifest(nano_copy, data)
    with pytest.raises(BundleError, match=r"manifest\.files\.model\.onnx\.size must be int, got str '\d+'"):
        load_bundle(nano_copy)


def test_the_onnx_backend_checks_the_manifest_input_against_the_model_at_load(nano_copy):
    _write_manifest(nano_copy, _with("input.shape", [1, 3, 256, 256]))
    bundle = load_bundle(nano_copy)  # the manifest alone is consistent
    with pytest.raises(ValueError, match=r"model input 'images' is tensor\(float\) \[1, 3, 320, 320\].*\[1, 3, 256, 256\]"):
        load_backend(bundle, BackendOptions())
    _write_manifest(nano_copy, GOOD)
    load_backend(load_bundle(nano_copy), BackendOptions()).close()


@pytest.mark.parametrize(
    "text, key, expected",
    [
        ("backend: {threads: 5000}\n", "config.backend.threads", "[0, 1024]"),
        ("backend: {threads: true}\n", "config.backend.threads", "int, got"),
        ("camera: {fps: .nan}\n", "config.camera.fps", "a finite number"),
        ("camera: {width: 1.5}\n", "config.camera.width", "int, got"),
        ("backend: {providers: [{name: CPUExecutionProvider, options: {a: .inf}}]}\n",
         "config.backend.providers[0].options", "finite numbers"),
        ("calibration: {pixels_per_metre: .inf}\n", "config.calibration.pixels_per_metre", "a finite number"),
        ("robot: {baud: 9600.0}\n", "config.robot.baud", "int, got"),
        ("{1: 2}\n", "config", "unknown key(s) ['1']"),
    ],
)
def test_device_config_values_go_through_the_same_validator(tmp_path, text, key, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_device_config(path)
    msg = str(err.value)
    assert str(path) in msg and key in msg and expected in msg, msg


def test_device_config_not_utf8_or_too_deep_is_a_config_error(tmp_path):
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(ConfigError, match="bin.yaml is not UTF-8"):
        load_device_config(path)
    path.write_text("name: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match="bin.yaml"):
        load_device_config(path)
