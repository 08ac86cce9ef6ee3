"""Resizers of models' own preprocessing (edgeseg.resample), the stretched input, and the Mask2Former exporter's fix-up.

``pil-bilinear`` must equal Pillow's ``Image.resize(BILINEAR)`` and
``torchvision-bilinear`` torch's native uint8 ``interpolate(antialias=True)``
(what transformers' image processors call through torchvision), byte for
byte, shrinking and enlarging, on real images and on noise.
"""

from __future__ import annotations

import platform

import cv2
import numpy as np
import pytest

from edgeseg.manifest import ManifestError, parse_manifest
from edgeseg.preprocess import LetterboxInfo, Preprocessor
from edgeseg.resample import RESAMPLERS, pil_bilinear, torchvision_bilinear

SIZES = [(256, 256), (384, 384), (100, 333), (1000, 900), (640, 100), (33, 17)]


def _images():
    photo = cv2.imread("edgeseg/assets/samples/scene_00.jpg")
    noise = np.random.default_rng(0).integers(0, 256, (97, 211, 3), dtype=np.uint8)
    return [photo, noise]


@pytest.mark.parametrize("size", SIZES)
def test_pil_bilinear_equals_pillow(size):
    from PIL import Image

    for image in _images():
        expected = np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))
        np.testing.assert_array_equal(pil_bilinear(image, size), expected)


@pytest.mark.parametrize("size", SIZES)
def test_torchvision_bilinear_equals_torch_uint8_antialias(size):
    torch = pytest.importorskip("torch")
    if torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512") and platform.machine() not in ("aarch64", "arm64"):
        pytest.skip("torchvision resizes uint8 natively only on AVX2 x86 and arm64 CPUs")
    for image in _images():
        x = torch.from_numpy(image).permute(2, 0, 1)[None].contiguous(memory_format=torch.channels_last)
        y = torch.nn.functional.interpolate(x, size=(size[1], size[0]), mode="bilinear", align_corners=False,
                                            antialias=True)
        np.testing.assert_array_equal(torchvision_bilinear(image, size), y[0].permute(1, 2, 0).numpy())


def test_the_two_differ_and_linear_is_opencv():
    photo = _images()[0]
    a, b = pil_bilinear(photo, (256, 256)), torchvision_bilinear(photo, (256, 256))
    assert 0 < np.count_nonzero(a != b) < 0.01 * a.size and np.abs(a.astype(int) - b).max() == 1
    np.testing.assert_array_equal(RESAMPLERS["linear"](photo, (256, 256)),
                                  cv2.resize(photo, (256, 256), interpolation=cv2.INTER_LINEAR))
    out = np.empty((300, 200, 3), np.uint8)
    assert pil_bilinear(photo, (200, 300), dst=out) is out


def test_stretched_input_keeps_no_aspect_and_resizes_by_name(tmp_path):
    manifest = {
        "schema_version": 1, "name": "m", "family": "query", "format": "onnx", "precision": "fp32", "model": "m.onnx",
        "input": {"name": "pixel_values", "shape": [1, 3, 64, 96], "mean": [0.485, 0.456, 0.406],
                  "std": [0.229, 0.224, 0.225],
                  "letterbox": {"keep_aspect": False, "resample": "torchvision-bilinear"}},
        "outputs": [{"name": "c", "role": "class_logits", "layout": "BAC"},
                    {"name": "m", "role": "mask_logits", "layout": "NCHW"}],
        "classes": ["a"], "thresholds": {"nms": False},
    }
    m = parse_manifest(manifest)
    image = cv2.imread("edgeseg/assets/samples/scene_00.jpg")
    tensor, lb = Preprocessor(m.input)(image)
    assert lb == LetterboxInfo.stretch((480, 640), (64, 96)) and (lb.pad_left, lb.pad_top) == (0, 0)
    assert tensor.shape == (1, 3, 64, 96)
    rgb = torchvision_bilinear(image, (96, 64))[..., ::-1].astype(np.float32)
    expected = (rgb * np.float32(1 / 255) - np.float32([0.485, 0.456, 0.406])) / np.float32([0.229, 0.224, 0.225])
    np.testing.assert_allclose(tensor[0].transpose(1, 2, 0), expected, atol=1e-5)
    manifest["input"]["letterbox"]["resample"] = "lanczos"
    with pytest.raises(ManifestError, match="resample.*lanczos"):
        parse_manifest(manifest)
    manifest["input"]["letterbox"]["resample"] = "linear"
    manifest["thresholds"]["nms"] = True
    with pytest.raises(ManifestError, match="nms must be false"):
        parse_manifest(manifest)


def test_exporter_casts_float64_sampling_grids_onnxruntime_cannot_run(tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("torch")
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from export.transformers_onnx import cast_float64_grids

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])
    grid = helper.make_tensor_value_info("grid", TensorProto.DOUBLE, [1, 2, 2, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 2, 2])
    node = helper.make_node("GridSample", ["x", "grid"], ["y"], align_corners=0, mode="bilinear", name="gs")
    model = helper.make_model(helper.make_graph([node], "g", [x, grid], [y]), opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    with pytest.raises(Exception, match="GridSample"):
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    assert cast_float64_grids(model) == 1
    onnx.checker.check_model(model)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    image = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    corners = np.array([[[[-0.75, -0.75], [0.75, -0.75]], [[-0.75, 0.75], [0.75, 0.75]]]], np.float64)
    (out,) = sess.run(None, {"x": image, "grid": corners})
    # -0.75 and 0.75 in normalized coordinates are pixel centres 0 and 3 of a 4-wide axis (align_corners=0)
    np.testing.assert_array_equal(out[0, 0], [[0, 3], [12, 15]])
