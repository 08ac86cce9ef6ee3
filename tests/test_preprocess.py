"""Letterbox geometry and input tensors."""

from __future__ import annotations

import numpy as np
import pytest

from edgeseg.manifest import InputSpec, Quant
from edgeseg.preprocess import LetterboxInfo, Preprocessor


@pytest.mark.parametrize("orig", [(720, 1280), (1280, 720), (320, 320), (37, 501), (480, 640)])
def test_letterbox_roundtrip_boxes(orig):
    lb = LetterboxInfo.fit(orig, (320, 320))
    h, w = orig
    boxes = np.array([[0, 0, w, h], [w * 0.25, h * 0.1, w * 0.5, h * 0.9]], np.float32)
    back = lb.boxes_to_original(lb.boxes_to_input(boxes))
    np.testing.assert_allclose(back, boxes, atol=1e-3 * max(orig))
    # The image content lands inside the input, centred.
    inp = lb.boxes_to_input(boxes[:1])[0]
    assert inp[0] >= 0 and inp[1] >= 0 and inp[2] <= 320 + 1e-3 and inp[3] <= 320 + 1e-3
    assert abs(inp[0] - (320 - inp[2])) <= 1.0 and abs(inp[1] - (320 - inp[3])) <= 1.0


def test_letterbox_places_pixels_where_the_geometry_says(scene):
    spec = InputSpec(name="images", shape=(1, 3, 320, 320))
    pre = Preprocessor(spec)
    canvas, lb = pre.letterbox(scene)
    assert lb.pad_left == 0 and lb.pad_top == 40  # 480x360 -> 320x240, 40 rows pad each side
    assert (canvas[:40] == 114).all() and (canvas[-40:] == 114).all()
    # Centre of the red rectangle (100, 95) in the original maps to the input.
    u, v = 100.5 * lb.scale_x + lb.pad_left, 95.5 * lb.scale_y + lb.pad_top
    assert tuple(canvas[int(v), int(u)]) == (30, 30, 200)


def test_tensor_layout_dtype_and_normalization(scene):
    spec = InputSpec(name="x", shape=(1, 320, 320, 3), layout="NHWC", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    x, lb = Preprocessor(spec)(scene)
    assert x.shape == (1, 320, 320, 3) and x.dtype == np.float32 and x.flags.c_contiguous
    # pad pixel 114 -> (114/255 - 0.5) / 0.25 in every channel
    np.testing.assert_allclose(x[0, 0, 0], (114 / 255 - 0.5) / 0.25, rtol=1e-5)
    # RGB order: red rectangle's B=30,G=30,R=200 -> channel 0 is R
    v, u = int(95.5 * lb.scale_y + lb.pad_top), int(100.5 * lb.scale_x + lb.pad_left)
    np.testing.assert_allclose(x[0, v, u, 0], (200 / 255 - 0.5) / 0.25, rtol=1e-5)


def test_int8_input_quantized():
    spec = InputSpec(name="x", shape=(1, 3, 64, 64), dtype="int8", quant=Quant(scale=1 / 255, zero_point=-128))
    img = np.full((64, 64, 3), 255, np.uint8)
    img[0, 0] = 0
    x, _ = Preprocessor(spec)(img)
    assert x.dtype == np.int8
    assert x[0, 0, 1, 1] == 127 and x[0, 0, 0, 0] == -128


@pytest.mark.parametrize("bad", [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.float32), np.zeros((0, 5, 3), np.uint8), "img"])
def test_bad_images_rejected(bad):
    pre = Preprocessor(InputSpec(name="x", shape=(1, 3, 32, 32)))
    with pytest.raises((ValueError, TypeError), match="expected"):
        pre(bad)


@pytest.mark.parametrize("color", ["RGB", "BGR"])
@pytest.mark.parametrize("norm", [((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)), ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
                                  ((-0.0, 0.5, 1.0), (-0.5, 2.0, 1e-3))])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_tensor_bit_identical_to_converting_first(color, norm, layout):
    """The fused paths give the tensor of the pre-issue-21 path (convert to float, normalize, then reorder), bit for bit."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    baseline = pytest.importorskip("frame_baseline")
    mean, std = norm
    shape = (1, 3, 96, 128) if layout == "NCHW" else (1, 96, 128, 3)
    spec = InputSpec(name="x", shape=shape, layout=layout, color=color, mean=mean, std=std)
    rng = np.random.default_rng(len(color) + len(layout))
    for size in [(96, 128), (240, 320), (77, 301)]:
        img = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        new, lb_new = Preprocessor(spec)(img)
        old, lb_old = baseline.preprocess_v0(Preprocessor(spec), img)
        assert lb_new == lb_old and new.shape == old.shape and new.dtype == old.dtype
        assert new.tobytes() == old.tobytes()  # bit for bit, signed zeros included
