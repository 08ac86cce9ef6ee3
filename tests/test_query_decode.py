"""The ``query`` family's scoring and library-mask steps against a transcription of transformers' own code.

``_transformers_post_process`` below is ``post_process_instance_segmentation``
of transformers 5.24 (``image_processing_mask2former.py``, Apache-2.0), the
lines that compute instances, transcribed in torch (transformers is not
installed by ``make test``; torch is, by the export extra). On random
Mask2Former-shaped outputs of several sizes the runtime's decoder must give
the same instances: labels, scores within 1e-4, masks (``transformers``
sampling) with IoU >= 0.99. Hand cases pin the pieces.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeseg.decode import queries
from edgeseg.decode.reference_maskfirst import tighten_all
from edgeseg.families.query import FAMILY, QueryDecoder
from edgeseg.manifest import parse_manifest
from edgeseg.preprocess import LetterboxInfo

torch = pytest.importorskip("torch")


def _transformers_post_process(class_logits, mask_logits, threshold, target_size):
    """transformers' instance post-processing (one image), as written there."""
    masks_queries_logits = torch.nn.functional.interpolate(
        torch.from_numpy(mask_logits), size=(384, 384), mode="bilinear", align_corners=False)
    mask_pred, mask_cls = masks_queries_logits[0], torch.from_numpy(class_logits)[0]
    num_classes, num_queries = mask_cls.shape[-1] - 1, mask_cls.shape[-2]
    scores = torch.nn.functional.softmax(mask_cls, dim=-1)[:, :-1]
    labels = torch.arange(num_classes).unsqueeze(0).repeat(num_queries, 1).flatten(0, 1)
    scores_per_image, topk_indices = scores.flatten(0, 1).topk(num_queries, sorted=False)
    labels_per_image = labels[topk_indices]
    topk_indices = torch.div(topk_indices, num_classes, rounding_mode="floor")
    mask_pred = mask_pred[topk_indices]
    pred_masks = (mask_pred > 0).float()
    mask_scores_per_image = (mask_pred.sigmoid().flatten(1) * pred_masks.flatten(1)).sum(1) / (
        pred_masks.flatten(1).sum(1) + 1e-6)
    pred_scores = scores_per_image * mask_scores_per_image
    pred_masks = torch.nn.functional.interpolate(pred_masks.unsqueeze(0), size=target_size, mode="nearest")[0]
    out = []
    for j in range(num_queries):
        score = pred_scores[j].item()
        if not torch.all(pred_masks[j] == 0) and score >= threshold:
            out.append((labels_per_image[j].item(), score, pred_masks[j].numpy().astype(bool)))
    return out


def _manifest(q: int, c: int, size: tuple[int, int], sampling: str):
    return parse_manifest({
        "schema_version": 1, "name": "m", "family": "query", "format": "onnx", "precision": "fp32", "model": "m.onnx",
        "input": {"name": "pixel_values", "shape": [1, 3, *size], "letterbox": {"keep_aspect": False}},
        "outputs": [{"name": "c", "role": "class_logits", "layout": "BAC"},
                    {"name": "m", "role": "mask_logits", "layout": "NCHW", "sampling": sampling}],
        "classes": [f"k{i}" for i in range(c)], "thresholds": {"score": 0.5, "nms": False, "max_detections": q},
    })


@st.composite
def frames(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    q, c = draw(st.integers(1, 12)), draw(st.integers(1, 5))
    hm, wm = draw(st.sampled_from([(16, 16), (24, 32), (13, 7)]))
    cls = (rng.normal(0, 4, (1, q, c + 1))).astype(np.float32)
    masks = rng.normal(draw(st.sampled_from([-2.0, 0.0, 2.0])), 3.0, (1, q, hm, wm)).astype(np.float32)
    image = (draw(st.integers(20, 300)), draw(st.integers(20, 300)))
    return cls, masks, image, draw(st.sampled_from([0.05, 0.3, 0.5]))


@settings(max_examples=40, deadline=None)
@given(frame=frames())
def test_decoder_equals_transformers_post_processing(frame):
    cls, masks, image, threshold = frame
    q, c, (hm, wm) = cls.shape[1], cls.shape[2] - 1, masks.shape[2:]
    expected = _transformers_post_process(cls, masks, threshold, image)
    m = _manifest(q, c, (hm * 4, wm * 4), "transformers")
    decoder = QueryDecoder(m, "numpy")
    opts = dataclasses.replace(FAMILY.options(m), score_threshold=threshold)
    r = decoder({"c": cls, "m": masks}, LetterboxInfo.stretch(image, (hm * 4, wm * 4)), opts)
    got = [(int(k), float(s), mk) for k, s, mk in zip(r.class_ids, r.scores, r.masks, strict=True) if mk.bitmap.any()]
    assert len(got) == len(expected)
    for label, score, mask in sorted(expected, key=lambda e: -e[1]):
        j = min((j for j in range(len(got)) if got[j][0] == label), key=lambda j: abs(got[j][1] - score))
        k, s, mk = got.pop(j)
        assert abs(s - score) <= 1e-4
        full = mk.full()
        union = np.logical_or(full, mask).sum()
        assert union == 0 or np.logical_and(full, mask).sum() / union >= 0.99


def test_hand_cases():
    # softmax without the no-object column; top pairs best first, ties by flat index, pruned by the threshold
    probs = queries.class_probabilities(np.log(np.array([[1, 2, 1], [2, 1, 1]], np.float32)))
    np.testing.assert_allclose(probs, [[0.25, 0.5], [0.5, 0.25]], rtol=1e-6)
    query, cls, p = queries.top_pairs(probs, 2, 0.3)
    assert query.tolist() == [0, 1] and cls.tolist() == [1, 0] and p.tolist() == [0.5, 0.5]
    assert queries.top_pairs(probs, 2, 0.6)[0].size == 0
    # a constant logit map of 2: every grid cell inside, mean sigmoid = sigmoid(2); all negative: 0
    maps = np.stack([np.full((4, 4), 2.0, np.float32), np.full((4, 4), -1.0, np.float32)])
    np.testing.assert_allclose(queries.mask_scores(maps), [1 / (1 + np.exp(-2.0)) * 147456 / (147456 + 1e-6), 0.0],
                               rtol=1e-6)
    # library masks: a positive left half of an 8x8 map -> the left half of a 10x30 image, nearest rule
    half = np.where(np.arange(8) < 4, 3.0, -3.0).astype(np.float32)[None, None, :].repeat(8, 1)
    boxes, masks = tighten_all(queries.library_masks(half, (10, 30)))
    assert boxes.tolist() == [[0, 0, 15, 10]] and masks[0].bitmap.all()
    with pytest.raises(ValueError, match="score_grid"):
        dataclasses.replace(FAMILY.options(_manifest(2, 2, (32, 32), "exact")), score_grid=(0, 5))
