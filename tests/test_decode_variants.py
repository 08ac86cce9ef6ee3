"""The C path against the public YOLO-seg mask decoders (benchmarks/decode_variants.py).

Variant B upsamples the logits to the original image first: the same
semantics and crop rule as edgeseg's decoder, up to summation order and
image-border clamping.
Variant A thresholds at input resolution and resizes a binary mask, so it
agrees less, by design.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from edgeseg.decode import cpath

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
dv = pytest.importorskip("decode_variants")

pytestmark = pytest.mark.skipif(not cpath.available(), reason="C decoder extension not built")


def test_masks_agree_with_variant_b_and_less_with_a():
    scene = dv.make_scene(12, seed=7)
    boxes_in, boxes_orig, coeffs = dv.kept_instances(scene)
    protos = scene.tensors.protos.data
    det, full = cpath.decode_proto_full(
        scene.tensors, scene.letterbox, scene.options, scene.grid, np.zeros((12, 720, 1280), bool)
    )
    np.testing.assert_array_equal(det.boxes, boxes_orig)
    iou_b = dv.mask_iou(full, dv.variant_b(protos, coeffs, boxes_orig, scene.letterbox))
    iou_a = dv.mask_iou(full, dv.variant_a(protos, coeffs, boxes_in, scene.letterbox))
    assert iou_b.mean() >= 0.999, iou_b
    assert iou_a.mean() < iou_b.mean()
    assert full.reshape(12, -1).any(1).all()  # every instance has a mask: the comparison is not vacuous
