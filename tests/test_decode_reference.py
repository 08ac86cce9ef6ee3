"""The numpy reference decoder against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgeseg.decode import Decoder, ProtoOptions
from edgeseg.decode.reference import (
    anchor_grid,
    decode_boxes,
    mask_in_box,
    nms,
    pixel_span,
    raw_score_threshold,
    select_candidates,
)
from edgeseg.manifest import Anchors, InputSpec, Manifest, OutputSpec, Quant
from edgeseg.preprocess import LetterboxInfo


def test_nms_hand_cases():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9]], np.float32)
    # IoU(0,1) = 81 / 119 = 0.68; IoU(0,3) = 90 / 100 = 0.9 but box 3 has another class
    classes = np.array([0, 0, 0, 1])
    assert nms(boxes, classes, 0.5, 100).tolist() == [0, 2, 3]
    assert nms(boxes, classes, 0.7, 100).tolist() == [0, 1, 2, 3]
    assert nms(boxes, classes, 0.5, 100, class_agnostic=True).tolist() == [0, 2]
    assert nms(boxes, classes, 0.5, 2).tolist() == [0, 2]
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0, int), 0.5, 10).tolist() == []
    # Degenerate (zero-area) boxes never suppress anything.
    deg = np.array([[5, 5, 5, 5], [5, 5, 5, 5]], np.float32)
    assert nms(deg, np.array([0, 0]), 0.5, 10).tolist() == [0, 1]


def test_candidates_threshold_order_and_topk():
    logit = lambda p: math.log(p / (1 - p))  # noqa: E731
    scores = np.array([[logit(0.2), logit(0.6)], [logit(0.9), logit(0.1)], [logit(0.3), logit(0.3)], [np.nan, np.nan]], np.float32)
    thr = raw_score_threshold(0.25, "sigmoid")
    idx, cls, raw = select_candidates(scores, thr, 10)
    assert idx.tolist() == [1, 0, 2]  # by score: 0.9, 0.6, 0.3 ; NaN dropped
    assert cls.tolist() == [0, 1, 0]  # first maximum wins the tie in row 2
    idx, _, _ = select_candidates(scores, thr, 2)
    assert idx.tolist() == [1, 0]
    assert raw_score_threshold(0.0, "sigmoid") == -math.inf


def test_ltrb_box_decode():
    centres, strides = anchor_grid((32, 64), (8, 16), 0.5)
    assert centres.shape == (4 * 8 + 2 * 4, 2)
    assert centres[0].tolist() == [4.0, 4.0] and centres[1].tolist() == [12.0, 4.0] and centres[8].tolist() == [4.0, 12.0]
    assert centres[32].tolist() == [8.0, 8.0] and strides[32] == 16
    raw = np.array([[1, 2, 3, 4]], np.float32)
    out = decode_boxes(raw, "ltrb", centres[32:33], strides[32:33])
    assert out.tolist() == [[8 - 16, 8 - 32, 8 + 48, 8 + 64]]
    assert decode_boxes(np.array([[10, 20, 4, 6]], np.float32), "cxcywh", None, None).tolist() == [[8, 17, 12, 23]]


def test_pixel_span():
    assert pixel_span(4.2, 20.0, 32) == (5, 20)  # 4.2 <= x < 20
    assert pixel_span(4.0, 20.5, 32) == (4, 21)
    assert pixel_span(-3, 50, 32) == (0, 32)
    assert pixel_span(10.6, 10.9, 32) == (11, 11)  # no pixel index inside: empty


def test_mask_hand_case_identity_letterbox():
    # One prototype, positive on its left half: L = +1 for columns < 4, -1 after.
    protos = np.where(np.arange(8)[None, None, :] < 4, 1.0, -1.0).astype(np.float32) * np.ones((1, 8, 8), np.float32)
    lb = LetterboxInfo.fit((32, 32), (32, 32))
    m = mask_in_box(np.array([1.0], np.float32), protos, np.array([0, 0, 32, 32], np.float32), lb)
    # p = (x + 0.5) / 4 - 0.5 ; value = 1 - 2 * frac > 0  <=>  x <= 15
    assert m.x0 == 0 and m.y0 == 0 and m.bitmap.shape == (32, 32)
    assert m.bitmap[:, :16].all() and not m.bitmap[:, 16:].any()
    crop = mask_in_box(np.array([-2.0], np.float32), protos, np.array([4.2, 0, 20, 8], np.float32), lb)
    assert (crop.x0, crop.y0, crop.bitmap.shape) == (5, 0, (8, 15))
    assert not crop.bitmap[:, : 16 - 5].any() and crop.bitmap[:, 16 - 5 :].all()
    nan = mask_in_box(np.array([np.nan], np.float32), protos, np.array([0, 0, 32, 32], np.float32), lb)
    assert not nan.bitmap.any()


def _manifest(quant: Quant | None = None) -> Manifest:
    return Manifest(
        name="t", family="proto", format="onnx", precision="fp32", model="m.onnx",
        input=InputSpec(name="images", shape=(1, 3, 32, 32)),
        outputs=(
            OutputSpec("b", "boxes", "BAC", encoding="ltrb"),
            OutputSpec("s", "scores", "BCA", activation="sigmoid", quant=quant),
            OutputSpec("c", "coeffs", "BAC"),
            OutputSpec("p", "protos", "NHWC"),
        ),
        classes=("a", "b"),
        anchors=Anchors(strides=(8, 16)),
    )


def test_decoder_end_to_end_on_constructed_outputs():
    dec = Decoder(_manifest())
    a = 16 + 4
    boxes = np.ones((1, a, 4), np.float32)  # each box: one stride around its centre
    scores = np.full((1, 2, a), -10.0, np.float32)  # BCA layout
    scores[0, 1, 5] = 3.0  # anchor 5 (row 1, col 1 at stride 8: centre (12, 12)) class 1
    scores[0, 0, 6] = 1.0  # anchor 6, centre (20, 12): overlaps 5 but another class
    coeffs = np.ones((1, a, 1), np.float32)
    protos = np.ones((1, 8, 8, 1), np.float32)  # NHWC, all positive
    lb = LetterboxInfo.fit((16, 32), (32, 32))  # 32x16 image -> pad 8 rows top
    det = dec({"b": boxes, "s": scores, "c": coeffs, "p": protos}, lb)
    assert det.class_ids.tolist() == [1, 0]
    np.testing.assert_allclose(det.scores, [1 / (1 + math.exp(-3)), 1 / (1 + math.exp(-1))], rtol=1e-6)
    # centre (12, 12) +- 8 in input px; minus 8 rows of padding, clipped to the 32x16 image
    np.testing.assert_allclose(det.boxes[0], [4, 0, 20, 12])
    m = det.masks[0]
    assert (m.x0, m.y0, m.bitmap.shape) == (4, 0, (12, 16)) and m.bitmap.all()
    agn = dec({"b": boxes, "s": scores, "c": coeffs, "p": protos}, lb, ProtoOptions(class_agnostic=True, iou_threshold=0.3))
    assert agn.class_ids.tolist() == [1]


def test_decoder_dequantizes_and_rejects_bad_shapes():
    dec = Decoder(_manifest(Quant(scale=0.5, zero_point=10)))
    a = 20
    scores = np.full((1, 2, a), -128, np.int8)
    scores[0, 0, 0] = 20  # (20 - 10) * 0.5 = 5.0
    raw = {"b": np.ones((1, a, 4), np.float32), "s": scores, "c": np.ones((1, a, 1), np.float32), "p": np.ones((1, 8, 8, 1), np.float32)}
    det = dec(raw, LetterboxInfo.fit((32, 32), (32, 32)))
    assert det.class_ids.tolist() == [0]
    np.testing.assert_allclose(det.scores, [1 / (1 + math.exp(-5))], rtol=1e-6)
    bad = dict(raw, b=np.ones((1, a, 5), np.float32))
    with pytest.raises(ValueError, match="must have 4 channels"):
        dec(bad, LetterboxInfo.fit((32, 32), (32, 32)))
    bad = dict(raw, b=np.ones((1, a + 1, 4), np.float32))
    with pytest.raises(ValueError, match="disagree on anchor count"):
        dec(bad, LetterboxInfo.fit((32, 32), (32, 32)))
    bad = dict(raw, c=np.ones((1, a, 3), np.float32))
    with pytest.raises(ValueError, match="coeffs have 3 channels but protos have 1"):
        dec(bad, LetterboxInfo.fit((32, 32), (32, 32)))
    with pytest.raises(ValueError, match="no output 's'"):
        dec({k: v for k, v in raw.items() if k != "s"}, LetterboxInfo.fit((32, 32), (32, 32)))


def test_decode_options_are_validated_on_construction():
    with pytest.raises(ValueError, match="unknown box encoding 'xywh'"):
        ProtoOptions(box_encoding="xywh")
    with pytest.raises(ValueError, match="score_activation must be one of"):
        ProtoOptions(score_activation="softmax")
    with pytest.raises(ValueError, match=r"iou_threshold must be in \(0, 1\], got 0.0"):
        ProtoOptions(iou_threshold=0.0)
