"""Exported ONNX through onnxruntime matches PyTorch; the full runtime path runs."""

from __future__ import annotations

import numpy as np
import pytest

import edgeseg

torch = pytest.importorskip("torch")

# Max abs difference allowed between ORT and PyTorch outputs (float32, folded BN).
TOLERANCE = 1e-4


def test_onnxruntime_matches_pytorch(tiny_model, tiny_bundle, scene):
    model, _ = tiny_model
    seg = edgeseg.load(tiny_bundle)
    x, _ = seg.preprocessor(scene)
    ort_out = seg.backend.run(x)
    with torch.no_grad():
        ref = model(torch.from_numpy(x))
    diffs = {}
    for name, t in zip(["boxes", "scores", "coeffs", "protos"], ref, strict=True):
        assert ort_out[name].shape == tuple(t.shape)
        diffs[name] = float(np.abs(ort_out[name] - t.numpy()).max())
    print("max abs diff ORT vs PyTorch:", diffs)
    assert max(diffs.values()) < TOLERANCE, diffs


def test_segmenter_result_is_consistent(tiny_bundle, scene):
    seg = edgeseg.load(tiny_bundle)
    r = seg(scene, score_threshold=0.01, max_detections=20)
    assert 0 < len(r) <= 20
    assert r.image_size == scene.shape[:2]
    assert (np.diff(r.scores) <= 0).all()
    assert (r.boxes[:, 0] >= 0).all() and (r.boxes[:, 2] <= scene.shape[1]).all()
    for inst in r:
        m = inst.mask
        assert m.image_size == scene.shape[:2]
        x1, y1, x2, y2 = inst.box
        assert x1 - 1 <= m.x0 and m.x0 + m.bitmap.shape[1] <= x2 + 1
    assert r.timings.infer_ms > 0 and r.timings.decode_ms > 0
    full = r.full_masks()
    assert full.shape == (len(r), *scene.shape[:2])
    d = r.to_dict()
    assert len(d["instances"]) == len(r) and d["instances"][0]["mask_rle"]["size"] == list(scene.shape[:2])
    boxes_only = seg(scene, score_threshold=0.01, max_detections=20, with_masks=False)
    np.testing.assert_array_equal(boxes_only.boxes, r.boxes)
    assert boxes_only.masks == ()


def test_wrong_input_tensor_shape_is_clear(tiny_bundle):
    seg = edgeseg.load(tiny_bundle)
    with pytest.raises(ValueError, match=r"model input must be float32 \(1, 3, 160, 160\)"):
        seg.backend.run(np.zeros((1, 3, 320, 320), np.float32))


def test_export_rejects_model_with_wrong_outputs(tiny_model, tmp_path):
    from export.onnx_export import export_onnx_bundle

    model, spec = tiny_model

    class TwoOutputs(torch.nn.Module):
        def forward(self, x):
            return model(x)[:2]

    with pytest.raises(ValueError, match=r"must return 4 tensors \['boxes', 'scores', 'coeffs', 'protos'\]"):
        export_onnx_bundle(TwoOutputs(), spec, tmp_path / "b")
