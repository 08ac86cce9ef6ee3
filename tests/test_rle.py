"""COCO RLE without pycocotools, held to pycocotools."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeseg import rle
from edgeseg.result import CroppedMask

mask_api = pytest.importorskip("pycocotools.mask")


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 40), w=st.integers(1, 40), seed=st.integers(0, 2**31 - 1), density=st.floats(0, 1))
def test_encode_matches_pycocotools(h, w, seed, density):
    full = np.random.default_rng(seed).random((h, w)) < density
    ours = rle.encode(full)
    ref = mask_api.encode(np.asfortranarray(full.astype(np.uint8)))
    assert ours["counts"] == ref["counts"].decode()
    assert ours["size"] == [h, w]
    assert (rle.decode(ours) == full).all()
    assert (mask_api.decode({"size": [h, w], "counts": ours["counts"].encode()}) == full).all()


@settings(max_examples=60, deadline=None)
@given(ih=st.integers(1, 30), iw=st.integers(1, 30), data=st.data())
def test_cropped_mask_rle_equals_full_frame_rle(ih, iw, data):
    x0 = data.draw(st.integers(0, iw - 1))
    y0 = data.draw(st.integers(0, ih - 1))
    w = data.draw(st.integers(0, iw - x0))
    h = data.draw(st.integers(0, ih - y0))
    bitmap = np.random.default_rng(data.draw(st.integers(0, 1000))).random((h, w)) < 0.5
    m = CroppedMask(x0, y0, bitmap, (ih, iw))
    ref = mask_api.encode(np.asfortranarray(m.full().astype(np.uint8)))
    assert m.rle()["counts"] == ref["counts"].decode()


def test_cropped_mask_validates_placement():
    with pytest.raises(ValueError, match="does not fit"):
        CroppedMask(5, 0, np.ones((2, 6), bool), (10, 10))
    with pytest.raises(ValueError, match="bool"):
        CroppedMask(0, 0, np.ones((2, 2), np.uint8), (10, 10))
