"""``export.transformers_onnx``: a transformers Mask2Former built here -> ONNX -> ``edgeseg import`` -> decode.

A tiny ``Mask2FormerForUniversalSegmentation`` is built from a config with
random weights (transformers and torch come with the ``export`` extra), exported,
checked against the module on an input it was not traced on, imported as a
``query`` bundle, and its outputs decoded by the runtime and by a transcription
of transformers' post-processing (``tests/test_query_decode.py``): same
instances.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("onnx")


def _model(size: int):
    from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, SwinConfig

    torch.manual_seed(0)
    backbone = SwinConfig(image_size=size, embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=4,
                          out_features=["stage1", "stage2", "stage3", "stage4"])
    config = Mask2FormerConfig(backbone_config=backbone, num_labels=3, num_queries=8, hidden_dim=32, feature_size=32,
                               mask_feature_size=32, dim_feedforward=64, encoder_layers=1, decoder_layers=2,
                               num_attention_heads=4, encoder_feedforward_dim=64, use_pretrained_backbone=False,
                               id2label={0: "box", 1: "can", 2: "bottle"})
    return Mask2FormerForUniversalSegmentation(config).eval()


def test_export_import_and_decode_like_transformers(tmp_path):
    import onnx
    import onnxruntime as ort
    from test_query_decode import _transformers_post_process

    from edgeseg.bundle import load_bundle
    from edgeseg.decode import active_path
    from edgeseg.families.query import FAMILY, QueryDecoder
    from edgeseg.imports import import_model
    from edgeseg.preprocess import LetterboxInfo
    from export.transformers_onnx import check_parity, export_mask2former

    model = _model(128)
    path = export_mask2former(model, tmp_path / "m2f.onnx", (128, 128))
    assert not model.training  # the exporter restores the flag of the module it traced
    gaps = check_parity(model, path, (128, 128), seed=7)
    assert max(gaps.values()) < 1e-4, gaps
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(meta["id2label"]) == {"0": "box", "1": "can", "2": "bottle"}
    assert json.loads(meta["image_size"]) == [128, 128] and meta["transformers_model"] == type(model).__name__

    bundle = load_bundle(import_model(path, tmp_path / "bundle").root)
    m = bundle.manifest
    assert (m.family, m.classes, m.input.shape) == ("query", ("box", "can", "bottle"), (1, 3, 128, 128))
    x = np.random.default_rng(3).normal(size=(1, 3, 128, 128)).astype(np.float32)
    cls, masks = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"pixel_values": x})
    image = (90, 160)
    expected = _transformers_post_process(cls, masks, 0.0, image)
    decoder = QueryDecoder(m, active_path())
    opts = dataclasses.replace(FAMILY.options(m), score_threshold=0.0)
    r = decoder({"class_queries_logits": cls, "masks_queries_logits": masks}, LetterboxInfo.stretch(image, (128, 128)),
                opts)
    got = sorted(((int(k), float(s)) for k, s, mk in zip(r.class_ids, r.scores, r.masks, strict=True)
                  if mk.bitmap.any()), key=lambda t: -t[1])
    want = sorted(((k, s) for k, s, _ in expected), key=lambda t: -t[1])
    assert [k for k, _ in got] == [k for k, _ in want] and len(got) > 0
    np.testing.assert_allclose([s for _, s in got], [s for _, s in want], atol=1e-4)


def test_export_refuses_sizes_the_processor_would_pad(tmp_path):
    from export.transformers_onnx import export_mask2former

    with pytest.raises(ValueError, match="multiples of 32"):
        export_mask2former(_model(128), tmp_path / "m.onnx", (100, 128))
