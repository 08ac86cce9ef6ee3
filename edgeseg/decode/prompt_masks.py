"""Prompt masks at the original resolution: low-res logits upsampled only inside each mask's region.

A promptable model (SAM) gives per prompt ``(h, w)`` mask logits (256x256)
over the whole padded encoder input. ``SamPredictor.postprocess_masks``
upsamples them to the input size (1024x1024), crops the padding and resizes
to the original image: two bilinear passes over every pixel of the frame.
Both passes are kept here (one bilinear pass straight from the low-res map
to the image differs visibly on ragged masks: IoU 0.86-0.98 against the
reference on the random-weight fixture), but only where the mask can be.

Only the mask's region is rendered: the cells with a logit above the
threshold, grown by one cell (a pixel whose four neighbours are all at or
below it cannot come out above it), mapped to original pixels. The first
pass (x4, OpenCV) runs on the window under the region only; the second is
the C core's ``roi`` paste restricted to the region (``regions`` of
``_cdecode.masks``; the numpy path is its reference). A mask whose region
covers more than :data:`FULL_FRAME_SHARE` of the frame is cheaper through
the reference's two full-frame OpenCV passes (measured), and takes them.
Hand-written: no library resamples a map inside a region at an offset.
"""

from __future__ import annotations

import cv2
import numpy as np

from edgeseg.decode import cpath
from edgeseg.decode.reference import pixel_span, resample_positive
from edgeseg.decode.reference_roi import _roi_axis
from edgeseg.decode.tensors import QTensor
from edgeseg.longest_side import PromptFrame
from edgeseg.result import CroppedMask

#: A mask whose region covers more than this share of the frame takes the reference's two full-frame
#: OpenCV passes instead (faster there: benchmarks/prompt_bench.py, size sweep); same values either way.
FULL_FRAME_SHARE = 0.1


def mask_regions(logits: np.ndarray, map_box: np.ndarray, image_size: tuple[int, int], threshold: float = 0.0) -> np.ndarray:
    """Where each mask can be positive, in original pixels.

    Args:
        logits: ``(N, h, w)`` float32 low-res logits over the padded input.
        map_box: ``(4,)`` XYXY original pixels the logits cover (``x0 = y0 = 0``).
        image_size: ``(H, W)``.
        threshold: Mask pixels are ``logit > threshold``.

    Returns:
        ``(N, 4)`` float32 XYXY regions clipped to the image (an empty region
        for a mask without a positive cell).
    """
    n, mh, mw = logits.shape
    regions = np.zeros((n, 4), np.float32)
    if n == 0:
        return regions
    pos = logits > threshold
    rows, cols = pos.any(axis=2), pos.any(axis=1)
    sy, sx = map_box[3] / mh, map_box[2] / mw  # original pixels per cell
    for i in range(n):
        r, c = np.flatnonzero(rows[i]), np.flatnonzero(cols[i])
        if r.size == 0:
            continue
        # cell j influences pixels whose sample position lies in (j - 1, j + 1): centres in ((j - .5) s, (j + 1.5) s)
        regions[i] = (max((c[0] - 0.5) * sx - 1, 0), max((r[0] - 0.5) * sy - 1, 0),
                      min((c[-1] + 1.5) * sx + 1, image_size[1]), min((r[-1] + 1.5) * sy + 1, image_size[0]))
    return regions


def _shift(logits: np.ndarray, threshold: float) -> np.ndarray:
    return logits if threshold == 0.0 else logits - np.float32(threshold)


def _window(lo: float, hi: float, content: int, cells: int) -> tuple[int, int, int, int]:
    """Input-resolution indices ``[a, b)`` that pixels sampling ``[lo, hi]`` read, and low-res cells ``[c0, c1)`` behind them.

    ``[a, b)`` is clipped to the content (``[0, content)``); ``[c0, c1)`` has one
    cell of margin so that the x4 upsample of the window equals the whole
    map's upsample on ``[a, b)`` (clamped at the map's edges as the reference).
    """
    a = max(int(np.floor(lo)), 0)
    b = min(int(np.floor(hi)) + 2, content)
    c0 = max(int(np.floor((a + 0.5) / 4 - 0.5)) - 1, 0)
    c1 = min(int(np.floor((b - 0.5) / 4 - 0.5)) + 3, cells)
    return a, b, c0, c1


def _stage_one(logits: np.ndarray, frame: PromptFrame, span_x: tuple[int, int], span_y: tuple[int, int]):
    """The reference's first pass (x4 bilinear to the input size) on the window the span reads.

    Returns:
        ``(window (h, w) float32 at input resolution, its box XYXY in original pixels)``.
    """
    (oh, ow), (rh, rw) = frame.orig_size, frame.resized
    mh, mw = logits.shape
    sx, sy = rw / ow, rh / oh  # stage two: v = (x + 0.5) * s - 0.5 on the content crop
    ax, bx, cx0, cx1 = _window((span_x[0] + 0.5) * sx - 0.5, (span_x[1] - 0.5) * sx - 0.5, rw, mw)
    ay, by, cy0, cy1 = _window((span_y[0] + 0.5) * sy - 0.5, (span_y[1] - 0.5) * sy - 0.5, rh, mh)
    cells = np.ascontiguousarray(logits[cy0:cy1, cx0:cx1])
    up = cv2.resize(cells, ((cx1 - cx0) * 4, (cy1 - cy0) * 4), interpolation=cv2.INTER_LINEAR)
    win = np.ascontiguousarray(up[ay - 4 * cy0 : by - 4 * cy0, ax - 4 * cx0 : bx - 4 * cx0])
    return win, np.array([ax / sx, ay / sy, bx / sx, by / sy], np.float32)


def upsample(logits: np.ndarray, frame: PromptFrame, threshold: float = 0.0, *, path: str = "c") -> tuple[CroppedMask, ...]:
    """Low-res logits -> cropped masks at the original resolution, only inside each mask's region.

    Args:
        logits: ``(N, h, w)`` float32 over the padded input (``h = input / 4``).
        frame: The frame's geometry.
        threshold: Mask pixels are ``logit > threshold``.
        path: ``"c"`` (the C paste) or ``"numpy"`` (its reference).
    """
    logits = _shift(np.asarray(logits, np.float32), threshold)
    image_size = frame.orig_size
    regions = mask_regions(logits, frame.map_box(), image_size)
    out = []
    for i in range(len(logits)):
        xs = pixel_span(regions[i, 0], regions[i, 2], image_size[1])
        ys = pixel_span(regions[i, 1], regions[i, 3], image_size[0])
        if xs[1] <= xs[0] or ys[1] <= ys[0]:
            out.append(CroppedMask(xs[0], ys[0], np.zeros((ys[1] - ys[0], xs[1] - xs[0]), bool), image_size))
            continue
        if (xs[1] - xs[0]) * (ys[1] - ys[0]) > FULL_FRAME_SHARE * image_size[0] * image_size[1]:
            full = reference_postprocess(logits[i : i + 1], frame.input_size, frame.resized, image_size)[0]
            out.append(CroppedMask(xs[0], ys[0], np.ascontiguousarray(full[ys[0] : ys[1], xs[0] : xs[1]]), image_size))
            continue
        win, box = _stage_one(logits[i], frame, xs, ys)
        out.append(_paste(win, box, regions[i], image_size, path))
    return tuple(out)


def _paste(win: np.ndarray, box: np.ndarray, region: np.ndarray, image_size: tuple[int, int], path: str) -> CroppedMask:
    """Second pass: the window (covering ``box``) resampled at the region's pixels, thresholded at 0."""
    if path == "c":
        return cpath.paste_roi(QTensor(win[None]), box[None], image_size, regions=region[None])[0]
    xs = pixel_span(region[0], region[2], image_size[1])
    ys = pixel_span(region[1], region[3], image_size[0])
    cols = _roi_axis(xs[0], xs[1], box[0], box[2], win.shape[1])
    rows = _roi_axis(ys[0], ys[1], box[1], box[3], win.shape[0])
    return CroppedMask(xs[0], ys[0], resample_positive(win, rows, cols), image_size)


def reference_postprocess(logits: np.ndarray, input_size: tuple[int, int], resized: tuple[int, int],
                          image_size: tuple[int, int], threshold: float = 0.0) -> np.ndarray:
    """``SamPredictor.postprocess_masks`` in OpenCV (bilinear, half-pixel): full ``(N, H, W)`` bool frames.

    What the runtime avoids (the benchmark's baseline): upsample to the input
    size, crop the padding, resize to the original size, threshold.
    """
    import cv2

    out = np.empty((len(logits), *image_size), bool)
    for i, m in enumerate(logits):
        up = cv2.resize(m, (input_size[1], input_size[0]), interpolation=cv2.INTER_LINEAR)
        crop = np.ascontiguousarray(up[: resized[0], : resized[1]])
        out[i] = cv2.resize(crop, (image_size[1], image_size[0]), interpolation=cv2.INTER_LINEAR) > threshold
    return out


def tight_boxes(masks: tuple[CroppedMask, ...]) -> np.ndarray:
    """``(N, 4)`` float32 XYXY boxes around each mask's pixels (zeros for an empty mask)."""
    boxes = np.zeros((len(masks), 4), np.float32)
    for i, m in enumerate(masks):
        b = m.bitmap
        rows, cols = np.flatnonzero(b.any(axis=1)), np.flatnonzero(b.any(axis=0))
        if rows.size:
            boxes[i] = (m.x0 + cols[0], m.y0 + rows[0], m.x0 + cols[-1] + 1, m.y0 + rows[-1] + 1)
    return boxes
