"""The C post-processing core (es_runs.c, es_grasp.c, es_rle_runs) against its references.

Hypothesis draws masks (ragged, holed, one pixel, empty, touching the image
border) and checks the C shapes, extents and sweep clearance against
:mod:`edgeseg.grasp.reference` (area exact, the rest within 1e-9) and the C
RLE against pycocotools; malformed layouts are refused before any read.
Also run under AddressSanitizer + UBSan by tests/test_cdecode_asan.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeseg.grasp import GripperSpec
from edgeseg.grasp import shape as gs
from edgeseg.result import CroppedMask, Result, masks_in_buffer, pack_masks, rle_masks

mask_api = pytest.importorskip("pycocotools.mask")
pytestmark = pytest.mark.skipif(gs._cdecode is None, reason="C extension not built")
GRIPPER = GripperSpec(max_opening=80, finger_width=10, finger_thickness=5, finger_depth=10, margin=3, unit="px")


@st.composite
def frames(draw):
    ih, iw = draw(st.integers(1, 60)), draw(st.integers(1, 60))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    masks = []
    for _ in range(draw(st.integers(0, 6))):
        x0, y0 = draw(st.integers(0, iw - 1)), draw(st.integers(0, ih - 1))
        w, h = draw(st.integers(0, iw - x0)), draw(st.integers(0, ih - y0))
        bm = rng.random((h, w)) < draw(st.sampled_from([0.0, 0.3, 0.9, 1.0]))
        masks.append(CroppedMask(x0, y0, bm, (ih, iw)))
    n = len(masks)
    boxes = np.array([(m.x0, m.y0, m.x0 + m.bitmap.shape[1], m.y0 + m.bitmap.shape[0]) for m in masks],
                     np.float32).reshape(-1, 4)
    return Result(boxes, np.full(n, 0.9, np.float32), np.zeros(n, np.int32), tuple(masks), ("o",), (ih, iw))


@settings(max_examples=80, deadline=None)
@given(r=frames(), band=st.sampled_from([float("nan"), 0.5, 2.0, 7.5]), scale=st.sampled_from([0.1, 0.5, 1.5, 3.0]))
def test_shapes_extents_clearance_match_reference(r, band, scale):
    c, ref = gs.shapes(r, c=True), gs.shapes(r, c=False)
    np.testing.assert_array_equal(c.area, ref.area)
    for a, b in ((c.centroid, ref.centroid), (c.angle, ref.angle), (c.solidity, ref.solidity)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)
    rows = np.flatnonzero(ref.area > 0)
    if not len(rows):
        return
    cen, ang = ref.centroid[rows], ref.angle[rows]
    closing = np.array([(math.cos(a), math.sin(a)) for a in ang.tolist()]).reshape(-1, 2)
    half = np.full(len(rows), band)
    e_c = gs.extents(r, rows, cen, ang, closing, half, c=True)
    e_r = gs.extents(r, rows, cen, ang, closing, half, c=False)
    np.testing.assert_allclose(e_c, e_r, rtol=0, atol=1e-9)
    extent = e_r[:, 3] - e_r[:, 2] + 1
    scale = np.full(len(rows), scale)  # 0.1: the two fingers' quads touch or overlap; 3.0: past the image
    width = extent + 2 * GRIPPER.margin * scale
    others = [np.array([j for j in range(len(r)) if j != i], np.int64) for i in rows.tolist()]
    k_c = gs.clearances(r, cen, ang, closing, extent, width, scale, GRIPPER, others, c=True)
    k_r = gs.clearances(r, cen, ang, closing, extent, width, scale, GRIPPER, others, c=False)
    np.testing.assert_allclose(k_c, k_r, rtol=0, atol=1e-12)
    huge = np.full(len(rows), 3e6)  # finger corners past what es_sweep_quads takes: the reference answers
    np.testing.assert_array_equal(gs.clearances(r, cen, ang, closing, extent, width, huge, GRIPPER, others, c=True),
                                  gs.clearances(r, cen, ang, closing, extent, width, huge, GRIPPER, others, c=False))


@settings(max_examples=80, deadline=None)
@given(r=frames())
def test_runs_rebuild_the_bitmaps(r):
    first_row, row_start, runs = r.packed_masks.runs
    assert row_start[0] == 0 and row_start[-1] == len(runs)
    for i, m in enumerate(r.masks):
        h, w = m.bitmap.shape
        rebuilt = np.zeros((h, w), bool)
        for y in range(h):
            row = int(first_row[i]) + y
            for a, b in runs[row_start[row]:row_start[row + 1]].tolist():
                assert 0 <= a < b <= w and not rebuilt[y, a:b].any()
                rebuilt[y, a:b] = True
        np.testing.assert_array_equal(rebuilt, m.bitmap)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), w=st.integers(1, 80), h=st.integers(1, 6),
       fill=st.sampled_from([0.02, 0.5, 0.98]), value=st.sampled_from([1, 2, 255]))
def test_runs_of_any_nonzero_bytes(seed, w, h, fill, value):
    """uint8 masks: any nonzero byte is foreground (long runs take the 16- and 8-byte steps)."""
    rng = np.random.default_rng(seed)
    bits = np.where(rng.random(h * w) < fill, value, 0).astype(np.uint8)
    first, starts, runs = gs._cdecode.runs(bits, np.array([0], np.int64), np.array([[0, 0, w, h]], np.int32))
    for y in range(h):
        row = np.concatenate(([0], bits[y * w : (y + 1) * w] != 0, [0])).astype(np.int8)
        edges = np.flatnonzero(np.diff(row))
        assert runs[starts[y]:starts[y + 1]].ravel().tolist() == edges.tolist()


@settings(max_examples=80, deadline=None)
@given(r=frames())
def test_rle_of_many_masks_equals_pycocotools(r):
    rles = rle_masks(r.masks, r.image_size)
    assert r.rles() == (rles if r.masks else None)
    for m, got in zip(r.masks, rles, strict=True):
        ref = mask_api.encode(np.asfortranarray(m.full().astype(np.uint8)))
        assert got == {"size": list(r.image_size), "counts": ref["counts"].decode()}


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), ih=st.integers(1, 12), iw=st.integers(1, 12),
       density=st.sampled_from([0.3, 0.7, 1.0]))
def test_rle_from_runs_of_full_height_strips(seed, ih, iw, density):
    """Strips as tall as the image: a column's stream continues from the previous column's last pixel."""
    rng = np.random.default_rng(seed)
    x0 = int(rng.integers(0, iw))
    w = int(rng.integers(1, iw - x0 + 1))
    mask = CroppedMask(x0, 0, rng.random((ih, w)) < density, (ih, iw))
    got = rle_masks((mask,), (ih, iw))[0]
    ref = mask_api.encode(np.asfortranarray(mask.full().astype(np.uint8)))
    assert got == {"size": [ih, iw], "counts": ref["counts"].decode()}


def test_packed_masks_share_the_decoder_buffer():
    bits = np.zeros(40, bool)
    masks = (CroppedMask(0, 0, bits[0:12].reshape(3, 4), (10, 10)), CroppedMask(2, 1, bits[20:36].reshape(4, 4), (10, 10)))
    p = pack_masks(masks)
    assert p.bits is bits and p.offsets.tolist() == [0, 20] and p.spans.tolist() == [[0, 0, 4, 3], [2, 1, 4, 4]]


def test_bad_layouts_are_refused():
    cd = gs._cdecode
    bits = np.zeros(10, np.uint8)
    with pytest.raises(RuntimeError, match="layout"):  # a mask running past the buffer
        cd.runs(bits, np.array([4], np.int64), np.array([[0, 0, 3, 3]], np.int32))
    with pytest.raises(ValueError, match="layout"):  # negative size
        cd.runs(bits, np.array([0], np.int64), np.array([[0, 0, -1, 3]], np.int32))
    with pytest.raises(ValueError, match="spans must be"):
        cd.runs(bits, np.array([0, 1], np.int64), np.array([[0, 0, 1, 1]], np.int32))
    with pytest.raises(TypeError, match="bits"):
        cd.runs(np.zeros((2, 5), np.uint8), np.array([0], np.int64), np.array([[0, 0, 1, 1]], np.int32))
    spans = np.array([[0, 0, 4, 2]], np.int32)
    first, starts, runs = cd.runs(np.array([0, 1, 1, 0, 1, 0, 1, 1], np.uint8), np.array([0], np.int64), spans)
    assert first.tolist() == [0] and starts.tolist() == [0, 1, 3] and runs.tolist() == [[1, 3], [0, 1], [2, 4]]
    with pytest.raises(ValueError, match="params"):
        cd.extents(runs, starts, first, spans, np.zeros((1, 4)))
    bad_tables = {
        "run past its span": (np.array([[1, 3], [0, 1], [2, 5]], np.int32), starts, first, spans),
        "runs out of order": (np.array([[1, 3], [2, 4], [0, 1]], np.int32), starts, first, spans),
        "empty run": (np.array([[1, 1], [0, 1], [2, 4]], np.int32), starts, first, spans),
        "rows past the table": (runs, starts, np.array([1], np.int64), spans),
        "row starts past the runs": (runs, np.array([0, 1, 4], np.int64), first, spans),
        "row starts decreasing": (runs, np.array([0, 2, 1], np.int64), first, spans),
    }
    for table in bad_tables.values():
        with pytest.raises(ValueError, match="run table"):
            cd.shapes(*table)
        with pytest.raises(ValueError, match="run table"):
            cd.extents(*table, np.zeros((1, 5)))
    with pytest.raises(ValueError, match="run table is"):
        cd.shapes(runs, starts, first, np.zeros((2, 4), np.int32))
    with pytest.raises(ValueError, match="RLE"):  # mask outside the image
        cd.rle_runs(runs, starts, first, np.array([[3, 0, 4, 2]], np.int32), 4, 4)
    with pytest.raises(ValueError, match="run table"):
        cd.rle_runs(*bad_tables["run past its span"], 4, 4)
    with pytest.raises(ValueError, match="es_runs_sweeps"):  # neighbour index out of range
        cd.sweeps(runs, starts, first, spans, np.ones(8, np.uint8), np.array([0, 4], np.int64),
                  np.array([[0, 0, 2, 2], [2, 0, 2, 2]], np.int32), np.array([3], np.int64), np.array([0, 1], np.int64))
    with pytest.raises(ValueError, match="es_runs_sweeps"):  # window past the swept bytes
        cd.sweeps(runs, starts, first, spans, np.ones(7, np.uint8), np.array([0, 4], np.int64),
                  np.array([[0, 0, 2, 2], [2, 0, 2, 2]], np.int32), np.array([0], np.int64), np.array([0, 1], np.int64))
    with pytest.raises(ValueError, match="es_runs_sweeps"):  # neighbour bounds past the list
        cd.sweeps(runs, starts, first, spans, np.ones(8, np.uint8), np.array([0, 4], np.int64),
                  np.array([[0, 0, 2, 2], [2, 0, 2, 2]], np.int32), np.array([0], np.int64), np.array([0, 2], np.int64))
    with pytest.raises(ValueError, match="windows"):  # one window per finger, two per sweep
        cd.sweeps(runs, starts, first, spans, np.ones(4, np.uint8), np.array([0], np.int64),
                  np.array([[0, 0, 2, 2]], np.int32), np.array([0], np.int64), np.array([0, 1], np.int64))
    # mask rows .XX. / X.XX; sweep 0: fingers over columns 0-1 and 1-2 (column 1 swept by both, counted once)
    area_hit = cd.sweeps(runs, starts, first, spans, np.array([1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1], np.uint8),
                         np.array([0, 4, 8, 8], np.int64),
                         np.array([[0, 0, 2, 2], [1, 0, 2, 2], [2, 0, 2, 2], [0, 0, 0, 0]], np.int32),
                         np.array([0, 0], np.int64), np.array([0, 1, 2], np.int64))
    assert area_hit.tolist() == [[5, 3], [4, 3]]
    quad = [10.0, 10.0, 1.0, 0.0, 4.0, 8.0, 1.0]  # centre, closing, extent, opening, scale
    windows, pts = cd.sweep_quads(np.array([quad]), 2.0, 1.0, 20, 20)
    assert windows.shape == (2, 4) and pts.shape == (2, 4, 2) and (windows[:, 2:] > 0).all()
    far = cd.sweep_quads(np.array([[500.0, 10.0, 1.0, 0.0, 4.0, 8.0, 1.0]]), 2.0, 1.0, 20, 20)[0]
    assert (far[:, 2:] == 0).all()  # outside the image: nothing to rasterize
    for bad in (float("nan"), float("inf"), 1e12):
        with pytest.raises(ValueError, match="es_sweep_quads"):
            cd.sweep_quads(np.array([[bad, 10.0, 1.0, 0.0, 4.0, 8.0, 1.0]]), 2.0, 1.0, 20, 20)
    with pytest.raises(ValueError, match=r"\(m, 7\)"):
        cd.sweep_quads(np.zeros((1, 6)), 2.0, 1.0, 20, 20)


def test_decoder_masks_keep_their_layout():
    """Masks made from a decoder's buffer hand pack_masks their layout; a new tuple of them finds the same one."""
    bits = np.zeros(40, bool)
    spans, offsets = np.array([[0, 0, 4, 3], [2, 1, 4, 4]], np.int32), np.array([0, 20], np.int64)
    masks = masks_in_buffer(bits, spans, offsets, (10, 10))
    assert pack_masks(masks) is masks.packed and masks[1].bitmap.shape == (4, 4) and (masks[1].x0, masks[1].y0) == (2, 1)
    plain = pack_masks(tuple(masks))
    assert plain.bits is bits and plain.offsets.tolist() == [0, 20] and plain.spans.tolist() == spans.tolist()
    r = Result(np.zeros((2, 4), np.float32), np.ones(2, np.float32), np.zeros(2, np.int32), masks, ("o",), (10, 10))
    assert r.select([1]).packed_masks.offsets.tolist() == [20]
