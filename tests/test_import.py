"""``edgeseg import``: layouts, metadata, refusals that name what was found and the flag that helps."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from ultralytics_like import make_model

from edgeseg.imports import ImportFailed, ImportOptions, import_model, read_model_file


def test_per_anchor_layout_becomes_channel_ranges_with_predict_defaults(tmp_path):
    bundle = import_model(make_model(tmp_path / "m.onnx", nc=3, nm=4), tmp_path / "b")
    m = bundle.manifest
    assert m.family == "proto" and m.classes == ("c0", "c1", "c2") and m.input.shape == (1, 3, 64, 64)
    roles = {o.role: (o.name, o.layout, o.channels) for o in m.outputs}
    assert roles == {"boxes": ("output0", "BCA", (0, 4)), "scores": ("output0", "BCA", (4, 7)),
                     "coeffs": ("output0", "BCA", (7, 11)), "protos": ("output1", "NCHW", None)}
    th = m.thresholds
    assert (th.score, th.score_strict, th.iou, th.max_detections, th.nms, th.drop_empty_masks) == (0.25, True, 0.7, 300, True, True)
    assert m.input.letterbox.pad_value == 114 and m.provenance["license"].startswith("AGPL-3.0")


def test_end_to_end_layout_has_labels_and_no_nms(tmp_path):
    m = import_model(make_model(tmp_path / "e.onnx", layout="end2end", nm=4), tmp_path / "b").manifest
    roles = {o.role: o.channels for o in m.outputs}
    assert roles == {"boxes": (0, 4), "scores": (4, 5), "labels": (5, 6), "coeffs": (6, 10), "protos": None}
    assert m.output("boxes").encoding == "xyxy" and m.thresholds.nms is False


def test_yolov5_layout_has_objectness(tmp_path):
    m = import_model(make_model(tmp_path / "v5.onnx", layout="yolov5", nc=2, nm=4, metadata={"task": None, "author": None}),
                     tmp_path / "b").manifest
    roles = {o.role: (o.layout, o.channels) for o in m.outputs}
    assert roles["objectness"] == ("BAC", (4, 5)) and roles["scores"] == ("BAC", (5, 7))
    assert (m.thresholds.iou, m.thresholds.max_detections) == (0.45, 1000)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metadata": {"task": "detect"}, "protos": False}, "detection-only model"),
        ({"metadata": {"task": "pose"}}, "is a pose model"),
        ({"metadata": {"task": "obb"}}, "oriented-box model"),
        ({"metadata": {"batch": "4"}}, "exported with batch 4"),
        ({"metadata": {"names": None, "author": None, "stride": None, "task": None}},
         r"no import source recognizes this model .* pass --source NAME"),
        ({"metadata": {"imgsz": None}, "dynamic": True}, "dynamic size .* pass --imgsz H,W"),
        ({"metadata": {"names": str({0: "a"})}}, "fit 4 box \\+ 1 class \\+ 4 coefficient"),
    ],
)
def test_what_cannot_be_imported_is_refused_naming_it(tmp_path, kwargs, message):
    with pytest.raises(ImportFailed, match=message):
        import_model(make_model(tmp_path / "m.onnx", **kwargs), tmp_path / "b")
    assert not (tmp_path / "b" / "manifest.json").exists()


def test_a_named_source_says_which_flags_supply_missing_metadata(tmp_path):
    model = make_model(tmp_path / "m.onnx", metadata={"names": None, "author": None, "stride": None, "task": None})
    with pytest.raises(ImportFailed, match="pass --task segment --names a,b,... --imgsz H,W"):
        import_model(model, tmp_path / "b", source="ultralytics")


def test_missing_metadata_comes_from_flags(tmp_path):
    model = make_model(tmp_path / "m.onnx", dynamic=True, metadata={"imgsz": None, "names": None, "author": None,
                                                                   "stride": None, "task": None})
    opts = ImportOptions(names=("bolt", "nut"), imgsz=(64, 64), task="segment", name="my model")
    m = import_model(model, tmp_path / "b", source="ultralytics", options=opts).manifest
    assert m.classes == ("bolt", "nut") and m.input.shape == (1, 3, 64, 64) and m.name == "my-model"


def test_metadata_is_never_evaluated_as_code(tmp_path):
    model = make_model(tmp_path / "m.onnx", metadata={"names": "__import__('os').system('touch pwned')"})
    with pytest.raises(ImportFailed, match="not a list of class names"):
        import_model(model, tmp_path / "b")
    assert not (tmp_path / "pwned").exists()


def test_not_a_model_file(tmp_path):
    (tmp_path / "x.onnx").write_bytes(b"PK\x03\x04 not a model")
    with pytest.raises(ImportFailed, match="neither an ONNX nor a TFLite model"):
        read_model_file(tmp_path / "x.onnx")


def test_cli_import_then_verify_and_run(tmp_path):
    model = make_model(tmp_path / "m.onnx")
    exe = [sys.executable, "-m", "edgeseg"]
    out = subprocess.run([*exe, "import", str(model), "--out", str(tmp_path / "b")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "boxes=output0[0, 4]" in out.stdout and "score > 0.25, iou 0.7, max 300" in out.stdout
    out = subprocess.run([*exe, "verify", str(tmp_path / "b")], capture_output=True, text=True)
    assert out.returncode == 0 and "proto/onnx/fp32" in out.stdout
    import cv2

    cv2.imwrite(str(tmp_path / "img.png"), np.full((48, 80, 3), 100, np.uint8))
    out = subprocess.run([*exe, "run", str(tmp_path / "img.png"), "--bundle", str(tmp_path / "b"), "--out",
                          str(tmp_path / "o")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "o" / "img.json").read_text())["image_size"] == [48, 80]
    out = subprocess.run([*exe, "import", str(model), "--out", str(tmp_path / "b")], capture_output=True, text=True)
    assert out.returncode == 2 and "already holds a bundle" in out.stderr


def test_float_import_needs_only_the_runtime(tmp_path):
    """What a board has: the import reads and checks the model without torch, onnx or the export package."""
    model = make_model(tmp_path / "m.onnx")
    code = ("import sys; from edgeseg.imports import import_model; "
            f"import_model({str(model)!r}, {str(tmp_path / 'b')!r}); "
            "heavy = sorted(m for m in ('torch', 'onnx', 'export', 'tensorflow', 'ultralytics') if m in sys.modules); "
            "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout
