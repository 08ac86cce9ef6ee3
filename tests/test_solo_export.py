"""solo-nano (family ``kernel``) exported to ONNX and TFLite (fp32, int8) and decoded by the runtime.

A small random-weight model (the output convolutions scaled up so every
output has a real range and cells pass the score threshold); each bundle is
held to PyTorch through the same preprocessor and the ``kernel`` decoder.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import edgeseg

torch = pytest.importorskip("torch")
pytest.importorskip("litert_torch")

from export.accuracy import canonical_outputs, torch_segmenter  # noqa: E402
from export.bundler import build_manifest, input_spec  # noqa: E402
from export.calibration import CalibrationSet  # noqa: E402
from export.formats import ExportJob, export_format  # noqa: E402
from export.models.solo_nano import SoloConfig, build_solo  # noqa: E402
from export.sensitivity import relative_rms  # noqa: E402
from export.spec import spec_for_solo  # noqa: E402

IMGSZ = 96
#: 96 px: neck features 12 / 6 / 3; level 0 is resized to its 10x10 grid in the graph.
CFG = SoloConfig(width=8, mask_channels=8, imgsz=IMGSZ, grids=(10, 6, 3), min_area=(2, 2, 2))
FORMATS = ("onnx", "tflite", "tflite-int8")
#: Largest relative RMS error per output against PyTorch (see tests/test_export_formats.py).
REL_RMS_LIMIT = {"fp32": 1e-4, "int8": 0.25, "mixed": 0.25}


@pytest.fixture(scope="module")
def lively():
    torch.manual_seed(0)
    model = build_solo(CFG)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, torch.nn.Conv2d) and (name.endswith(".out") or name == "mask_out.2"):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * 0.3)
                if name.startswith("cate_tower"):
                    # Scores spread over (0, 1), peaked like a trained model's: candidates to decode, and
                    # neighbours far enough apart that int8 rounding rarely ties them in the points NMS.
                    m.weight.mul_(8.0)
                    m.bias.zero_()
    x = torch.rand(1, 3, IMGSZ, IMGSZ)
    with torch.no_grad():
        shared = model.eval()(x)
        fused = model.fuse()(x)  # BN folded, towers copied per level: same outputs
    for a, b in zip(shared, fused, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    return model, spec_for_solo(CFG, source="tests: random weights")


@pytest.fixture(scope="module")
def bundles(lively, calib_dir, tmp_path_factory):
    model, spec = lively
    job = ExportJob(model, spec, calibration=CalibrationSet(calib_dir, input_spec(spec)))
    root = tmp_path_factory.mktemp("solo_formats")
    return {name: export_format(name, job, root / name) for name in FORMATS}


@pytest.fixture(scope="module")
def reference(lively):
    model, spec = lively
    return torch_segmenter(model, build_manifest(spec, fmt="onnx", precision="fp32", model_file="model.onnx"))


def test_int8_tflite_quantizes_every_level_s_towers(bundles):
    """Only the points NMS on the tiny score maps (and the dequantize ops around it) stays float."""
    from ai_edge_litert import interpreter as litert

    interp = litert.Interpreter(model_path=str(bundles["tflite-int8"].model_path))
    interp.allocate_tensors()
    dtypes = {t["index"]: t["dtype"] for t in interp.get_tensor_details()}
    float_convs = [op["op_name"] for op in interp._get_ops_details()
                   if "CONV" in op["op_name"] and any(dtypes[i] == np.float32 for i in op["outputs"])]
    assert float_convs == []


def test_manifest_carries_the_kernel_block(bundles):
    for name, bundle in bundles.items():
        m = bundle.manifest
        assert m.family == "kernel" and m.kernel.grids == (10, 6, 3) and m.kernel.strides == (2, 2, 2), name
        assert m.output("cell_scores").activation == "none" and not m.thresholds.nms
        assert m.kernel.matrix_nms.kernel == "gaussian" and m.thresholds.score == pytest.approx(0.1)
    assert bundles["tflite"].manifest.output("mask_features").layout in ("NCHW", "NHWC")


@pytest.mark.parametrize("name", FORMATS)
def test_bundle_outputs_match_pytorch(name, bundles, reference, calib_dir):
    seg = edgeseg.load(bundles[name].root)
    int8 = seg.manifest.precision != "fp32"
    errors = {}
    for path in sorted(calib_dir.iterdir())[:4]:
        image = cv2.imread(str(path))
        got, ref = canonical_outputs(seg, image), canonical_outputs(reference, image)
        for role in ref:
            assert got[role].shape == ref[role].shape, (role, got[role].shape, ref[role].shape)
            if role == "cell_scores" and int8:
                _check_int8_points_nms(got[role], ref[role], seg.manifest.output(role).quant.scale)
                continue
            errors[role] = max(errors.get(role, 0.0), relative_rms(got[role], ref[role]))
    print(name, {k: f"{v:.2g}" for k, v in errors.items()})
    assert max(errors.values()) < REL_RMS_LIMIT[seg.manifest.precision], errors


def _check_int8_points_nms(got: np.ndarray, ref: np.ndarray, scale: float) -> None:
    """Int8 cell scores after the in-graph points NMS, against float.

    Neighbouring cells closer than one int8 step tie after rounding and both
    keep their score (float keeps one): the int8 survivors are a superset of
    float's, up to the few near-ties that rounding flips the other way; where
    both keep a cell, the scores agree within a few steps.
    """
    both = (got > 0) & (ref > 0)
    assert both.sum() > 0.9 * (ref > 0).sum(), ((ref > 0).sum(), both.sum())
    assert np.abs(got - ref)[both].max() <= 4 * scale


def test_bundles_decode_like_pytorch(bundles, reference, calib_dir):
    image = cv2.imread(str(sorted(calib_dir.iterdir())[0]))
    ref = reference(image)
    assert len(ref) > 3
    for name, bundle in bundles.items():
        r = edgeseg.load(bundle.root)(image)
        assert r.image_size == image.shape[:2]
        if bundle.manifest.precision == "fp32":
            assert len(r) == len(ref), name
            np.testing.assert_array_equal(r.class_ids, ref.class_ids)
            np.testing.assert_allclose(r.scores, ref.scores, atol=1e-4)
            np.testing.assert_allclose(r.boxes, ref.boxes, atol=0.05)
            assert [m.area for m in r.masks] == pytest.approx([m.area for m in ref.masks], abs=3)
        else:  # int8 moves near-tied random scores: only require instances
            assert len(r) > 0, name
