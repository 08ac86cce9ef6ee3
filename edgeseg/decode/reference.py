"""Numpy reference decoder for the ``proto`` family: the semantics the C path matches.

Every step is written so that another implementation can reproduce it bit for
bit: the order of floating-point operations is spelled out, float32 where the
data is float32, float64 for coordinate maps and IoU. A C port must compile
without floating-point contraction (``-ffp-contract=off``).

Steps, per frame:

1. **Candidates.** With an objectness output (YOLOv5-seg), every raw class
   score is first multiplied by its anchor's objectness (float32). Per
   anchor, the best class is the first maximum of the raw score tensor; an
   anchor is kept when that raw value is >= the score threshold mapped into
   raw space (``logit(t)`` for sigmoid outputs), or > it with
   ``score_strict``. With a labels output (end-to-end models: one detection
   per row, a single score channel), the class is the label truncated to an
   integer, and rows whose label is not a finite number in ``[0, classes)``
   are dropped. The kept anchors are ordered by raw value, descending, ties
   by anchor index, and cut to ``pre_nms_topk``. Reported scores are
   ``1 / (1 + exp(-x))`` in float32 (sigmoid outputs) or the raw value.
2. **Boxes** (input pixels, float32): ``ltrb``: ``(cx - l*s, cy - t*s,
   cx + r*s, cy + b*s)`` with anchor centre ``((j + offset) * s, ...)``;
   ``xyxy`` as is; ``cxcywh``: ``(cx - w/2, cy - h/2, cx + w/2, cy + h/2)``.
   Boxes normalized to the input size (``xyxy``/``cxcywh`` only) are first
   multiplied by the input width (x, w) and height (y, h), float32.
3. **NMS**, greedy in candidate order: a box is dropped when its IoU (float64)
   with an already kept box of the same class (any class if class-agnostic)
   is > the IoU threshold; at most ``max_detections`` are kept. Without NMS
   (``nms=False``, end-to-end models) the first ``max_detections`` candidates
   are kept.
4. **Letterbox undo** (float32): ``(u - pad) / scale``, clipped to the image.
5. **Masks**, only for kept instances, at the original resolution and only
   inside the box: the pixels ``x`` with ``x1 <= x < x2`` (``ceil(x1) ..
   ceil(x2) - 1``, clipped), the crop rule of the public YOLO-seg decoders,
   so masks agree with theirs pixel for pixel at box edges. Pixel centre ``x + 0.5``
   maps to input ``u = (x + 0.5) * scale_x + pad_left`` and to prototype
   coordinate ``p = u * (Wp / W_in) - 0.5``, clamped to ``[0, Wp - 1]``
   (float64). The mask logit at prototype pixels is ``sum_k c[k] * P[k]``
   accumulated in float32 in order ``k = 0..K-1``; it is interpolated
   bilinearly (``top = L00 * (1 - fx) + L01 * fx``, the same for the bottom
   row, ``v = top * (1 - fy) + bottom * fy``, float32) and the mask is
   ``v > 0`` (sigmoid > 0.5 without the sigmoid; NaN is background). A box
   with a NaN coordinate (possible only from NaN raw boxes) gets an empty
   mask at ``(0, 0)`` on that axis.

The ``roi`` family shares step 5's resampling with its own coordinate map:
see :mod:`edgeseg.decode.reference_roi`.
"""

from __future__ import annotations

import math

import numpy as np

from edgeseg.decode.options import ProtoOptions
from edgeseg.decode.tensors import ProtoTensors
from edgeseg.preprocess import LetterboxInfo
from edgeseg.result import CroppedMask, Result


def anchor_grid(input_size: tuple[int, int], strides: tuple[int, ...], offset: float) -> tuple[np.ndarray, np.ndarray]:
    """Anchor centres ``(A, 2)`` float32 (x, y input pixels) and strides ``(A,)`` float32.

    Anchors run stride by stride, rows then columns within each stride.
    """
    h, w = input_size
    centres, stride_col = [], []
    for s in strides:
        gy, gx = np.meshgrid(np.arange(h // s, dtype=np.float32), np.arange(w // s, dtype=np.float32), indexing="ij")
        c = np.stack([(gx.ravel() + np.float32(offset)) * np.float32(s), (gy.ravel() + np.float32(offset)) * np.float32(s)], 1)
        centres.append(c)
        stride_col.append(np.full(c.shape[0], s, np.float32))
    return np.concatenate(centres).astype(np.float32), np.concatenate(stride_col)


def raw_score_threshold(threshold: float, activation: str | None) -> float:
    """The score threshold mapped into the raw output's space."""
    if activation == "sigmoid":
        if threshold <= 0.0:
            return -math.inf
        if threshold >= 1.0:
            return math.inf
        return math.log(threshold / (1.0 - threshold))
    return threshold


def scores_from_raw(raw: np.ndarray, activation: str) -> np.ndarray:
    """Reported ``(N,)`` float32 scores of kept raw values: ``1 / (1 + exp(-x))`` for sigmoid outputs."""
    raw = raw.astype(np.float32)
    if activation == "sigmoid":
        return (np.float32(1) / (np.float32(1) + np.exp(-raw))).astype(np.float32)
    return raw


def select_candidates(
    scores: np.ndarray, raw_threshold: float, topk: int, *, strict: bool = False, labels: np.ndarray | None = None,
    num_classes: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns ``(anchor_idx, class_id, raw_value)`` of candidates, best first.

    Args:
        scores: ``(A, C)`` float32 raw scores (``(A, 1)`` with ``labels``).
        raw_threshold: Keep anchors whose best raw value is >= this (> when ``strict``).
        topk: Keep at most this many.
        strict: Strict comparison with the threshold.
        labels: ``(A,)`` float32 class ids of per-detection rows, or ``None``.
        num_classes: Valid labels lie in ``[0, num_classes)``.
    """
    if labels is None:
        cls = np.argmax(scores, axis=1) if scores.shape[0] else np.zeros(0, np.int64)
        best = scores[np.arange(scores.shape[0]), cls]
        valid = np.ones(len(best), bool)
    else:
        best = scores[:, 0]
        with np.errstate(invalid="ignore"):
            valid = (labels >= 0) & (labels < num_classes)
        cls = np.where(valid, labels, 0).astype(np.int64)
    thr = np.float32(raw_threshold) if math.isfinite(raw_threshold) else raw_threshold
    passed = best > thr if strict else best >= thr
    keep = np.flatnonzero(passed & valid)
    order = np.argsort(-best[keep], kind="stable")[:topk]
    idx = keep[order]
    return idx, cls[idx].astype(np.int32), best[idx]


def effective_scores(t: ProtoTensors) -> np.ndarray:
    """``(A, C)`` float32 raw scores, multiplied by the objectness where the model has one."""
    scores = t.scores.dequantize()
    if t.objectness is not None:
        scores = scores * t.objectness.dequantize()[:, :1]
    return scores


def class_names_for(names: tuple[str, ...] | None, t: ProtoTensors, cls: np.ndarray) -> tuple[str, ...]:
    """``names``, or the class indices as strings when a low-level caller passes none."""
    if names is not None:
        return tuple(names)
    n = t.scores.data.shape[1] if t.labels is None else int(cls.max(initial=-1)) + 1
    return tuple(str(i) for i in range(max(n, 1)))


def decode_boxes(
    raw: np.ndarray, encoding: str, centres: np.ndarray | None, strides: np.ndarray | None,
    scale: tuple[float, float] = (1.0, 1.0),
) -> np.ndarray:
    """Decodes ``(N, 4)`` raw box values to XYXY input pixels (float32).

    Args:
        scale: ``(sx, sy)`` multiplying raw x/w and y/h values of ``xyxy`` and
            ``cxcywh`` boxes first (input size for normalized boxes, else 1).
    """
    raw = raw.astype(np.float32, copy=False)
    if encoding != "ltrb" and tuple(scale) != (1.0, 1.0):
        raw = raw * np.asarray([scale[0], scale[1], scale[0], scale[1]], np.float32)
    out = np.empty((raw.shape[0], 4), np.float32)
    if encoding == "ltrb":
        if centres is None or strides is None:
            raise ValueError("ltrb boxes need the anchor grid (manifest 'anchors')")
        out[:, 0] = centres[:, 0] - raw[:, 0] * strides
        out[:, 1] = centres[:, 1] - raw[:, 1] * strides
        out[:, 2] = centres[:, 0] + raw[:, 2] * strides
        out[:, 3] = centres[:, 1] + raw[:, 3] * strides
    elif encoding == "xyxy":
        out[...] = raw
    elif encoding == "cxcywh":
        half_w = raw[:, 2] * np.float32(0.5)
        half_h = raw[:, 3] * np.float32(0.5)
        out[:, 0] = raw[:, 0] - half_w
        out[:, 1] = raw[:, 1] - half_h
        out[:, 2] = raw[:, 0] + half_w
        out[:, 3] = raw[:, 1] + half_h
    else:
        raise ValueError(f"unknown box encoding {encoding!r}")
    return out


def nms(boxes: np.ndarray, classes: np.ndarray, iou_threshold: float, max_keep: int, *, class_agnostic: bool = False) -> np.ndarray:
    """Greedy NMS over boxes already in priority order; returns kept indices.

    Args:
        boxes: ``(N, 4)`` float32 XYXY, best first.
        classes: ``(N,)`` class ids.
        iou_threshold: Drop a box whose IoU with a kept one is > this.
        max_keep: Stop after this many.
        class_agnostic: Compare boxes of all classes, not only the same class.
    """
    b = boxes.astype(np.float64)
    area = np.maximum(b[:, 2] - b[:, 0], 0.0) * np.maximum(b[:, 3] - b[:, 1], 0.0)
    suppressed = np.zeros(len(b), bool)
    kept: list[int] = []
    for i in range(len(b)):
        if suppressed[i]:
            continue
        kept.append(i)
        if len(kept) >= max_keep:
            break
        rest = np.arange(i + 1, len(b))
        if not class_agnostic:
            rest = rest[classes[rest] == classes[i]]
        rest = rest[~suppressed[rest]]
        if rest.size == 0:
            continue
        iw = np.maximum(np.minimum(b[i, 2], b[rest, 2]) - np.maximum(b[i, 0], b[rest, 0]), 0.0)
        ih = np.maximum(np.minimum(b[i, 3], b[rest, 3]) - np.maximum(b[i, 1], b[rest, 1]), 0.0)
        inter = iw * ih
        union = area[i] + area[rest] - inter
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = np.where(union > 0.0, inter / union, 0.0)
        suppressed[rest[iou > iou_threshold]] = True
    return np.asarray(kept, np.int64)


def pixel_span(lo: float, hi: float, size: int) -> tuple[int, int]:
    """Pixels ``[start, stop)`` with ``lo <= x < hi``, clipped to ``[0, size)``.

    The bounds are clamped to ``[0, size]`` first (same result for any finite
    box, and defined for infinite ones); a NaN bound gives the empty span
    ``(0, 0)`` (a NaN raw box must not crash the decoder); so does an
    infinite one (only ``roi`` boxes can be: ``proto`` boxes are clipped).
    """
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return 0, 0
    lo, hi = min(max(lo, 0.0), float(size)), min(max(hi, 0.0), float(size))
    start = math.ceil(lo)
    stop = math.ceil(hi)
    return start, max(start, stop)


def sample_positions(p: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear neighbours of float64 sample positions ``p`` on an axis of ``size`` cells.

    Returns:
        ``(i0, i1, f)``: int64 lower/upper cell indices and the float32 weight of
        ``i1``, with ``p`` clamped to ``[0, size - 1]`` first.
    """
    p = np.clip(p, 0.0, size - 1)
    i0 = np.floor(p).astype(np.int64)
    i1 = np.minimum(i0 + 1, size - 1)
    f = (p - i0).astype(np.float32)
    return i0, i1, f


def _sample_axis(start: int, stop: int, scale: float, pad: int, ratio: float, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Prototype sample positions for original pixels ``start..stop-1`` along one axis."""
    x = np.arange(start, stop, dtype=np.float64)
    return sample_positions(((x + 0.5) * scale + pad) * ratio - 0.5, size)


def resample_positive(
    logits: np.ndarray, rows: tuple[np.ndarray, np.ndarray, np.ndarray], cols: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> np.ndarray:
    """Bilinear interpolation of ``logits`` at the sample grid, thresholded at 0.

    Args:
        logits: ``(h, w)`` float32 window of the logit map.
        rows: ``(i0, i1, f)`` per output row, indices into ``logits``' rows.
        cols: ``(i0, i1, f)`` per output column, indices into ``logits``' columns.

    Returns:
        ``(len(rows[0]), len(cols[0]))`` bool, ``v > 0`` with ``v`` evaluated in
        float32 as ``top * (1 - fy) + bottom * fy`` (module docstring, step 5).
    """
    yi0, yi1, fy = rows
    xi0, xi1, fx = cols
    one = np.float32(1)
    with np.errstate(invalid="ignore", over="ignore"):  # NaN/Inf logits are valid input
        return _bilinear(logits, yi0, yi1, xi0, xi1, one - fx, fx, one - fy, fy) > 0


def _bilinear(logits, yi0, yi1, xi0, xi1, omfx, fx, omfy, fy) -> np.ndarray:
    top = logits[yi0[:, None], xi0[None, :]] * omfx[None, :] + logits[yi0[:, None], xi1[None, :]] * fx[None, :]
    bottom = logits[yi1[:, None], xi0[None, :]] * omfx[None, :] + logits[yi1[:, None], xi1[None, :]] * fx[None, :]
    return top * omfy[:, None] + bottom * fy[:, None]


def mask_in_box(coeffs: np.ndarray, protos: np.ndarray, box: np.ndarray, lb: LetterboxInfo) -> CroppedMask:
    """The cropped mask of one instance (step 5 of the module docstring).

    Args:
        coeffs: ``(K,)`` float32 coefficients.
        protos: ``(K, Hp, Wp)`` float32 prototypes.
        box: ``(4,)`` float32 XYXY in original pixels.
        lb: Letterbox geometry of the frame.
    """
    k, hp, wp = protos.shape
    ih, iw = lb.input_size
    oh, ow = lb.orig_size
    x_start, x_stop = pixel_span(box[0], box[2], ow)
    y_start, y_stop = pixel_span(box[1], box[3], oh)
    if x_stop <= x_start or y_stop <= y_start:
        return CroppedMask(x_start, y_start, np.zeros((y_stop - y_start, x_stop - x_start), bool), lb.orig_size)
    xi0, xi1, fx = _sample_axis(x_start, x_stop, lb.scale_x, lb.pad_left, wp / iw, wp)
    yi0, yi1, fy = _sample_axis(y_start, y_stop, lb.scale_y, lb.pad_top, hp / ih, hp)
    # Logits only over the prototype window the samples touch.
    px0, px1 = int(xi0[0]), int(xi1[-1]) + 1
    py0, py1 = int(yi0[0]), int(yi1[-1]) + 1
    window = protos[:, py0:py1, px0:px1]
    logits = np.zeros(window.shape[1:], np.float32)
    with np.errstate(invalid="ignore", over="ignore"):  # NaN/Inf logits are valid input
        for j in range(k):
            logits += coeffs[j] * window[j]
    bitmap = resample_positive(logits, (yi0 - py0, yi1 - py0, fy), (xi0 - px0, xi1 - px0, fx))
    return CroppedMask(x_start, y_start, bitmap, lb.orig_size)


def decode_proto(
    t: ProtoTensors,
    lb: LetterboxInfo,
    opts: ProtoOptions,
    grid: tuple[np.ndarray, np.ndarray] | None,
    *,
    class_names: tuple[str, ...] | None = None,
    mask_letterbox: LetterboxInfo | None = None,
) -> Result:
    """Decodes one frame of ``proto`` family outputs (numpy reference).

    Args:
        t: Canonical tensors (see :mod:`edgeseg.decode.tensors`).
        lb: Letterbox geometry of the frame.
        opts: Thresholds and box/score conventions.
        grid: ``(centres, strides)`` from :func:`anchor_grid` for ``ltrb`` boxes.
        class_names: Names of the class ids (the manifest's); ``None``: the ids as strings.
        mask_letterbox: Geometry mapping original pixels onto the prototype map
            when it differs from ``lb`` (a cropped map, :mod:`edgeseg.decode.sampling`).

    Returns:
        The frame's instances, box-cropped masks (no timings).
    """
    scores = effective_scores(t)
    labels = None if t.labels is None else t.labels.dequantize()[:, 0]
    num_classes = len(class_names) if class_names is not None else scores.shape[1]
    idx, cls, raw = select_candidates(
        scores, raw_score_threshold(opts.score_threshold, opts.score_activation), opts.pre_nms_topk,
        strict=opts.score_strict, labels=labels, num_classes=num_classes,
    )
    centres = grid[0][idx] if grid is not None else None
    strides = grid[1][idx] if grid is not None else None
    boxes_in = decode_boxes(t.boxes.rows(idx), opts.box_encoding, centres, strides, opts.box_scale)
    finite, nonfinite = finite_candidates(boxes_in, raw, scores)
    idx, cls, raw, boxes_in = idx[finite], cls[finite], raw[finite], boxes_in[finite]
    if opts.nms:
        keep = nms(boxes_in, cls, opts.iou_threshold, opts.max_detections, class_agnostic=opts.class_agnostic)
    else:
        keep = np.arange(min(len(idx), opts.max_detections))
    idx, cls, raw, boxes_in = idx[keep], cls[keep], raw[keep], boxes_in[keep]
    score = scores_from_raw(raw, opts.score_activation)
    boxes = lb.boxes_to_original(boxes_in)
    masks: tuple[CroppedMask, ...] = ()
    if opts.with_masks:
        coeffs = t.coeffs.rows(idx)
        protos = t.protos.dequantize()
        mlb = mask_letterbox or lb
        masks = tuple(mask_in_box(coeffs[i], protos, boxes[i], mlb) for i in range(len(idx)))
    return Result(
        boxes=boxes, scores=score, class_ids=cls.astype(np.int32), masks=masks,
        class_names=class_names_for(class_names, t, cls), image_size=lb.orig_size, nonfinite=nonfinite,
    )


def finite_candidates(boxes: np.ndarray, raw: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, int]:
    """Which candidates may enter NMS, and how many rows and candidates a NaN/Inf put out.

    A NaN box never overlaps anything, so it would pass NMS and take a slot;
    an infinite score would outrank every real one.

    Args:
        boxes: ``(N, 4)`` float32 decoded candidate boxes (input pixels).
        raw: ``(N,)`` float32 candidate raw scores.
        scores: ``(A, C)`` all raw scores (rows with a NaN were never candidates: counted too).

    Returns:
        ``(N,)`` bool keep mask, and the count of NaN score rows plus dropped candidates.
    """
    keep = np.isfinite(boxes).all(axis=1) & np.isfinite(raw)
    nan_rows = int(np.isnan(scores).any(axis=1).sum()) if scores.size else 0
    return keep, nan_rows + int(len(keep) - keep.sum())

