"""Every export format of a tiny model, run through the runtime and compared to PyTorch.

One module-scoped export per format (the LiteRT conversions take seconds
each); the tests then hold each bundle to PyTorch through the same
preprocessor and the same decoder, with nothing format-specific outside the
backends.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util

import numpy as np
import pytest

import edgeseg

torch = pytest.importorskip("torch")
pytest.importorskip("litert_torch")

from edgeseg.decode import Decoder  # noqa: E402
from export.accuracy import canonical_outputs, torch_segmenter  # noqa: E402
from export.bundler import build_manifest, input_spec  # noqa: E402
from export.calibration import CalibrationSet  # noqa: E402
from export.formats import FORMATS, ExportJob, export_format  # noqa: E402
from export.sensitivity import relative_rms  # noqa: E402

IMGSZ = 96
#: Largest relative RMS error per output against PyTorch, by precision: float32
#: kernels reorder sums (~1e-6); fp16 keeps ~3 decimal digits; int8 (8 calibration images,
#: random heads) lands near 0.05-0.2; a swapped output or a wrong zero point gives > 1.
REL_RMS_LIMIT = {"fp32": 1e-4, "fp16": 1e-2, "int8": 0.25, "mixed": 0.25}
#: Formats whose converter is installed here: rknn-toolkit2 lives in its own venv (tests/test_rknn_simulator.py).
EXPORTED = [name for name in FORMATS if name != "rknn" or importlib.util.find_spec("rknn")]


@pytest.fixture(scope="module")
def lively(tiny_model):
    """The tiny model with head/prototype output layers scaled up, so every output has a real range.

    (Untrained heads start at std 0.01 and a -4.6 score prior; int8 parity on outputs that are all
    ~0, and decoding with no instance above threshold, would test nothing.)
    """
    model, spec = tiny_model
    model = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, torch.nn.Conv2d) and (name.endswith(".out") or name == "proto.2"):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * 0.3)
                if name.startswith("cls_heads"):
                    m.bias.zero_()  # scores near 0.5: instances to decode
    return model.eval(), dataclasses.replace(spec, imgsz=(IMGSZ, IMGSZ))


@pytest.fixture(scope="module")
def bundles(lively, calib_dir, tmp_path_factory):
    model, spec = lively
    calibration = CalibrationSet(calib_dir, input_spec(spec))
    job = ExportJob(model, spec, calibration=calibration)
    root = tmp_path_factory.mktemp("formats")
    return {name: export_format(name, job, root / name) for name in EXPORTED}


@pytest.fixture(scope="module")
def reference(lively):
    model, spec = lively
    return torch_segmenter(model, build_manifest(spec, fmt="onnx", precision="fp32", model_file="model.onnx"))


@pytest.mark.parametrize("name", EXPORTED)
def test_bundle_outputs_match_pytorch(name, bundles, reference, calib_dir):
    import cv2

    seg = edgeseg.load(bundles[name].root)
    limit = REL_RMS_LIMIT[seg.manifest.precision]
    errors = {}
    for path in sorted(calib_dir.iterdir())[:4]:
        image = cv2.imread(str(path))
        got, ref = canonical_outputs(seg, image), canonical_outputs(reference, image)
        for role in ref:
            assert got[role].shape == ref[role].shape, (role, got[role].shape, ref[role].shape)
            errors[role] = max(errors.get(role, 0.0), relative_rms(got[role], ref[role]))
    print(name, seg.manifest.precision, {k: f"{v:.2g}" for k, v in errors.items()})
    assert max(errors.values()) < limit, errors


def test_every_format_decodes_through_the_one_decoder(bundles, reference, scene):
    """Same Decoder class, manifest-driven; fp32 formats give PyTorch's instances."""
    ref = reference(scene, score_threshold=0.3)
    assert len(ref) > 0
    for name, bundle in bundles.items():
        seg = edgeseg.load(bundle.root)
        assert type(seg.decoder) is Decoder
        r = seg(scene, score_threshold=0.3)
        assert r.image_size == scene.shape[:2] and r.class_names == ref.class_names
        if FORMATS[name].precision == "fp32":
            assert len(r) == len(ref), name
            np.testing.assert_allclose(r.boxes, ref.boxes, atol=0.05)
            assert [m.area for m in r.masks] == pytest.approx([m.area for m in ref.masks], abs=3)
        else:  # near-tied random scores reorder under rounding: only require instances
            assert len(r) > 0, name


def test_int8_outputs_decode_like_their_float_values(bundles, scene):
    """Integer outputs are dequantized from the manifest alone: decoding the raw int8 tensors
    equals decoding their float values under a manifest without quantization."""
    seg = edgeseg.load(bundles["tflite-int8"].root)
    x, letterbox = seg.preprocessor(scene)
    assert x.dtype == np.int8
    raw = seg.backend.run(x)
    assert all(v.dtype == np.int8 for v in raw.values())
    floats = {o.name: (raw[o.name].astype(np.float32) - o.quant.zero_point) * np.float32(o.quant.scale)
              for o in seg.manifest.outputs}
    plain = seg.manifest.replace(outputs=tuple(dataclasses.replace(o, quant=None) for o in seg.manifest.outputs))
    opts = dataclasses.replace(seg.decoder.options, score_threshold=0.3)
    a, b = seg.decoder(raw, letterbox, opts), Decoder(plain)(floats, letterbox, opts)
    assert len(a.boxes) > 0
    np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)
    np.testing.assert_array_equal(a.class_ids, b.class_ids)


def test_manifests_describe_each_variant(bundles):
    from ai_edge_litert import interpreter as litert

    for name in ("tflite", "tflite-fp16", "tflite-int8"):
        m = bundles[name].manifest
        assert m.format == "tflite" and m.input.layout == "NHWC" and m.output("protos").layout == "NHWC"
        interp = litert.Interpreter(model_path=str(bundles[name].model_path))
        details = {d["name"]: d for d in interp.get_output_details()}
        for out in m.outputs:  # real tensor names, real quantization
            scale, zero_point = details[out.name]["quantization"]
            assert (out.quant is None) == (scale == 0.0), out
            if out.quant is not None:
                assert (out.quant.scale, out.quant.zero_point) == pytest.approx((scale, zero_point))
    int8 = bundles["tflite-int8"].manifest
    assert int8.input.dtype == "int8" and int8.input.quant is not None
    assert all(o.quant is not None for o in int8.outputs)
    assert bundles["onnx-int8"].manifest.provenance["quantization"]["calibration"]["images"] == 8
    sizes = {n: b.model_path.stat().st_size for n, b in bundles.items()}
    assert sizes["onnx-int8"] < 0.5 * sizes["onnx"] and sizes["tflite-fp16"] < sizes["tflite"]
