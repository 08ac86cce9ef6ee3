"""Mask-first decode: the C renderer (``ES_MODE_MAP``) against the numpy reference, bit for bit.

Hypothesis draws survivors' whole-input logit maps (float32 or int8/uint8,
with NaN/Inf/denormal/huge values), map and input sizes, original sizes and
letterboxes (centred, top-left, stretched without keeping the aspect): the
regions, the rendered bitmaps, the boxes from the masks and every mask form
must equal the reference's. Hand cases pin the semantics: the region rule
(a pixel can be positive only next to a positive cell) against a brute-force
render of the whole image, the letterbox undo and the box from the mask.
``tests/test_cdecode_asan.py`` runs this file again under AddressSanitizer.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeseg.decode import QTensor, reference_maskfirst
from edgeseg.decode.reference import resample_positive
from edgeseg.manifest import Quant
from edgeseg.preprocess import LetterboxInfo
from edgeseg.result import rle_masks

cpath = pytest.importorskip("edgeseg.decode.cpath")
if not cpath.available():
    pytest.skip("C decoder extension not built", allow_module_level=True)
from edgeseg._c import _cdecode  # noqa: E402
from edgeseg.decode import maskfirst  # noqa: E402

SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45, 1e-30, 1e30, 3e38, -3e38], np.float32)
FLAG_SETS = (0, _cdecode.NO_BLOCKFILL, _cdecode.NO_STREAM | _cdecode.FULL_LOGITS)


def _maps(rng: np.random.Generator, shape: tuple, special: float, bias: float, kind: str) -> QTensor:
    x = (rng.normal(bias, 3.0, shape)).astype(np.float32)
    hit = rng.random(shape) < special
    x[hit] = rng.choice(SPECIAL, int(hit.sum()))
    if kind == "f32":
        return QTensor(x)
    dtype = np.int8 if kind == "i8" else np.uint8
    info = np.iinfo(dtype)
    q = rng.integers(info.min, info.max + 1, shape).astype(dtype)
    return QTensor(q, Quant(scale=float(rng.uniform(0.001, 0.2)), zero_point=int(rng.integers(info.min, info.max + 1))))


@st.composite
def cases(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n, hm, wm = draw(st.integers(0, 8)), draw(st.integers(1, 24)), draw(st.integers(1, 24))
    ih, iw = draw(st.integers(1, 96)), draw(st.integers(1, 96))
    oh, ow = draw(st.integers(1, 140)), draw(st.integers(1, 140))
    how = draw(st.sampled_from(["centre", "top-left", "stretch"]))
    if how == "stretch":
        lb = LetterboxInfo((oh, ow), (ih, iw), iw / ow, ih / oh, 0, 0)
    else:
        lb = LetterboxInfo.fit((oh, ow), (ih, iw), center=how == "centre")
    bias = draw(st.sampled_from([-6.0, -2.0, 0.0, 2.0]))  # from mostly empty to mostly full masks
    maps = _maps(rng, (n, hm, wm), draw(st.sampled_from([0.0, 0.1])), bias, draw(st.sampled_from(["f32", "i8", "u8"])))
    return maps, lb


def _same(ref, got):
    assert len(ref) == len(got)
    for r, g in zip(ref, got, strict=True):
        assert (r.x0, r.y0, r.bitmap.shape) == (g.x0, g.y0, g.bitmap.shape)
        np.testing.assert_array_equal(r.bitmap, g.bitmap)


@settings(max_examples=150, deadline=None)
@given(case=cases(), threads=st.sampled_from([1, 2]), flags=st.sampled_from(FLAG_SETS))
def test_c_render_equals_reference_bit_for_bit(case, threads, flags):
    maps, lb = case
    logits = maps.dequantize()
    areas = reference_maskfirst.regions(logits, lb)
    ref = reference_maskfirst.render(maps, areas, lb)
    _same(ref, maskfirst.render_c(maps, areas, lb, threads=threads, flags=flags))
    boxes_c, masks_c = maskfirst.decode_masks(maps, lb, "c", threads=threads, flags=flags)
    boxes_n, masks_n = maskfirst.decode_masks(maps, lb, "numpy")
    np.testing.assert_array_equal(boxes_c, boxes_n)
    _same(masks_n, masks_c)
    assert rle_masks(masks_c, lb.orig_size) == [m.rle() for m in masks_n]


@settings(max_examples=60, deadline=None)
@given(case=cases())
def test_region_holds_every_positive_pixel(case):
    """The region rule loses nothing: a brute-force render of the whole image has no pixel outside it."""
    maps, lb = case
    logits = maps.dequantize()
    rows, cols = reference_maskfirst.map_axes(lb, logits.shape[1:])
    boxes, masks = maskfirst.decode_masks(maps, lb, "numpy")
    for i in range(logits.shape[0]):
        whole = resample_positive(logits[i], rows, cols)
        np.testing.assert_array_equal(masks[i].full(), whole)
        ys, xs = np.nonzero(whole)
        expected = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] if xs.size else [0, 0, 0, 0]
        assert boxes[i].tolist() == expected


def test_hand_case_letterbox_undone_and_box_from_mask():
    # 8x8 input with a 2x2 map (4 input pixels per cell); the original 4x8 image is letterboxed to 8x4 rows 2..5.
    lb = LetterboxInfo.fit((4, 8), (8, 8))
    assert (lb.scale_x, lb.scale_y, lb.pad_left, lb.pad_top) == (1.0, 1.0, 0, 2)
    maps = np.full((1, 2, 2), -1.0, np.float32)
    maps[0, :, 1] = 1.0  # right column of cells positive
    (box,), (m,) = maskfirst.decode_masks(QTensor(maps), lb, "numpy")
    # column x samples p = (x + 0.5) / 4 - 0.5: v = 2p - 1 after clamping, > 0 from x = 4 on
    assert box.tolist() == [4.0, 0.0, 8.0, 4.0]
    assert (m.x0, m.y0, m.bitmap.shape) == (4, 0, (4, 4)) and m.bitmap.all()
    (box_c,), (m_c,) = maskfirst.decode_masks(QTensor(maps), lb, "c")
    assert box_c.tolist() == box.tolist() and m_c.bitmap.all()


def test_empty_and_bad_maps():
    lb = LetterboxInfo.fit((10, 10), (8, 8))
    boxes, masks = maskfirst.decode_masks(QTensor(np.full((2, 3, 3), -1.0, np.float32)), lb, "c")
    assert boxes.tolist() == [[0, 0, 0, 0]] * 2 and all(m.bitmap.shape == (0, 0) for m in masks)
    with pytest.raises(ValueError, match=r"\(N, Hm, Wm\)"):
        maskfirst.decode_masks(QTensor(np.zeros((3, 3), np.float32)), lb, "c")
    with pytest.raises(ValueError, match="regions"):
        maskfirst.render_c(QTensor(np.zeros((2, 3, 3), np.float32)), np.zeros((1, 4), np.float32), lb)
    with pytest.raises(ValueError, match="MAP takes no coefficients"):
        _cdecode.masks(_cdecode.CROPPED, _cdecode.MAP, np.zeros((1, 1), np.float32), np.zeros((1, 3, 3), np.float32),
                       1.0, 0.0, np.zeros((1, 4), np.float32), (8, 8, 8, 8, 0, 0, 1.0, 1.0), None, 1, 0)
