"""RKNN int8 in rknn-toolkit2's x86 simulator, through edgeseg's RKNNLite backend code.

rknn-toolkit2 pins numpy<=1.26 and torch<=2.4, so it lives in ``.venv-rknn``
(``make rknn-venv``, a prerequisite of ``make test``) and runs as a
subprocess: ``scripts/rknn_simulator.py`` converts edgeseg-nano (and the
imported YOLOv8n-seg, whose shared output is split) to ``.rknn``, runs every
measurement through :class:`edgeseg.backends.rknn.RknnBackend` with the
simulator stand-in for RKNNLite, and writes the parity report this test
reads. Simulator figures: accuracy is the int8 model's; timings are x86
emulation, not RK3588 speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgeseg.bundle import load_bundle

REPO = Path(__file__).resolve().parents[1]
RKNN_PYTHON = REPO / ".venv-rknn" / "bin" / "python"
SCRIPT = REPO / "scripts" / "rknn_simulator.py"
ULTRALYTICS = REPO / "tests" / "fixtures" / "ultralytics"

pytestmark = pytest.mark.skipif(not (REPO / ".venv-rknn" / ".done").is_file(),
                                reason="no .venv-rknn: make rknn-venv (make test makes it)")


@pytest.fixture(scope="module")
def val_set(tmp_path_factory) -> Path:
    """The first 16 scenes of the project's validation split (same generator, seed 1000)."""
    out = tmp_path_factory.mktemp("val") / "val"
    subprocess.run([sys.executable, "-m", "export.data.synthetic", "--out", str(out), "--num", "16", "--seed", "1000",
                    "--workers", "1"], check=True, capture_output=True)
    return out


def _simulate(bundle: Path, out: Path, val: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(RKNN_PYTHON), str(SCRIPT), str(bundle), "--calib", str(val / "images"), "--val", str(val),
         "--latency-runs", "2", "--out", str(out)],
        capture_output=True, text=True, timeout=900, cwd=REPO,
    )


def test_nano_int8_in_the_simulator_holds_the_gate(val_set, tmp_path):
    done = _simulate(REPO / "edgeseg" / "assets" / "edgeseg-nano", tmp_path, val_set)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "parity.json").read_text())
    (row,) = report["formats"]
    assert row["name"] == "rknn" and row["precision"] == "int8" and row["passed"]
    assert report["pytorch"]["mask_map"] > 50 and row["mask_drop"] <= 1.0  # a real model, a real drop
    assert row["size_ratio"] < 0.5  # int8 weights
    m = load_bundle(tmp_path / "edgeseg-nano-rknn").manifest
    assert m.format == "rknn" and m.provenance["quantization"]["target"] == "rk3588"
    assert [o.name for o in m.outputs] == ["boxes", "scores", "coeffs", "protos"]


def test_ultralytics_import_in_the_simulator_gets_split_outputs(val_set, tmp_path):
    from edgeseg.imports import import_model

    float_bundle = import_model(ULTRALYTICS / "yolov8n-seg" / "model.onnx", tmp_path / "yolov8n-seg")
    done = _simulate(float_bundle.root, tmp_path / "rknn", val_set)
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "rknn" / "parity.json").read_text())
    (row,) = report["formats"]
    m = load_bundle(row["bundle"]).manifest
    assert m.provenance["quantization"]["outputs_split"] is True
    assert {o.role: o.name for o in m.outputs if o.role != "protos"} == {
        "boxes": "edgeseg_boxes", "scores": "edgeseg_scores", "coeffs": "edgeseg_coeffs"}
    # one shared int8 scale turns every class to 0 (rknn_model_zoo #429); split outputs keep the detections
    assert row["accuracy"]["mask_map"] > 0.5 * report["pytorch"]["mask_map"]
