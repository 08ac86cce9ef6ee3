"""The C ``roi`` paste rendered only inside given regions (prompt masks) equals its numpy reference.

Hypothesis draws maps, the boxes they cover and regions anywhere (inside,
across or outside the image, empty, NaN): the C path must give the numpy
path's bitmaps and never read or write out of bounds (this file also runs
under AddressSanitizer + UBSan, tests/test_cdecode_asan.py).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeseg.decode import cpath
from edgeseg.decode.prompt_masks import _paste

pytestmark = pytest.mark.skipif(not cpath.available(), reason="C extension not built")


@st.composite
def region_cases(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    mh, mw = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    h, w = draw(st.integers(1, 90)), draw(st.integers(1, 90))
    win = rng.normal(draw(st.sampled_from([-1.0, 0.0, 1.0])), 2.0, (mh, mw)).astype(np.float32)
    x0, y0 = rng.uniform(-30, w + 10), rng.uniform(-30, h + 10)
    box = np.array([x0, y0, x0 + rng.uniform(0, 2 * w), y0 + rng.uniform(0, 2 * h)], np.float32)
    r0 = rng.uniform(-20, max(h, w) + 20, 2)
    region = np.concatenate([r0, r0 + rng.uniform(0, max(h, w), 2)]).astype(np.float32)
    if draw(st.booleans()):
        region[draw(st.integers(0, 3))] = draw(st.sampled_from([np.nan, np.inf, -np.inf, -5.0]))
    return win, box, region, (h, w)


@settings(max_examples=200, deadline=None)
@given(case=region_cases())
def test_region_paste_equals_numpy(case):
    win, box, region, size = case
    c = _paste(win, box, region, size, "c")
    ref = _paste(win, box, region, size, "numpy")
    assert (c.x0, c.y0) == (ref.x0, ref.y0) or c.bitmap.size == ref.bitmap.size == 0
    np.testing.assert_array_equal(c.bitmap, ref.bitmap)


def test_regions_must_match_the_boxes():
    with pytest.raises(ValueError, match="regions must hold 2 x 4"):
        cpath._cdecode.masks(cpath._cdecode.CROPPED, cpath._cdecode.ROI, None, np.zeros((2, 4, 4), np.float32), 1.0,
                             0.0, np.zeros((2, 4), np.float32), (8, 8, 1, 1, 0, 0, 1.0, 1.0), None, 1, 0,
                             np.zeros((1, 4), np.float32))
