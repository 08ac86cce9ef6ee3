"""The compiled decoding path: same semantics as :mod:`edgeseg.decode.reference`, in C.

The C core (``edgeseg/_c/es_*.c``) runs candidate selection, box decode, NMS,
letterbox undo and mask resampling with the GIL released; this module only
maps canonical tensors to its arguments and its outputs back to
:class:`~edgeseg.result.Result`. Scores are turned into probabilities
here with the reference's own numpy expression (N values), so they match it
exactly.

Three mask outputs share one renderer:

* ``decode_proto``: box-cropped bitmaps (views into one buffer), what
  :class:`~edgeseg.Result` holds;
* ``decode_proto_full``: ``(N, H, W)`` bool frames written into a caller's
  reused buffer (every byte written, with streaming stores);
* ``decode_proto_rle``: COCO RLE dicts, equal to ``edgeseg.rle`` / pycocotools.

:func:`paste_roi` is the ``roi`` family's mask step (:mod:`reference_roi`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edgeseg.decode.options import ProtoOptions
from edgeseg.decode.reference import class_names_for, raw_score_threshold, scores_from_raw
from edgeseg.decode.tensors import ProtoTensors, QTensor
from edgeseg.maskforms import check_frames
from edgeseg.preprocess import LetterboxInfo
from edgeseg.result import CroppedMask, Result, masks_in_buffer

try:
    from edgeseg._c import _cdecode
except ImportError:  # not built (no compiler on this board): edgeseg.decode falls back to numpy
    _cdecode = None

_C_DTYPES = (np.dtype(np.float32), np.dtype(np.int8), np.dtype(np.uint8))
_ENCODINGS = ("ltrb", "xyxy", "cxcywh")  # index = ES_LTRB, ES_XYXY, ES_CXCYWH


def available() -> bool:
    """Whether the compiled extension is importable."""
    return _cdecode is not None


def _require() -> None:
    if _cdecode is None:
        raise RuntimeError("edgeseg's C decoder is not built; reinstall with a C compiler (pip install -e .)")


def _c_tensor(q: QTensor) -> tuple[np.ndarray, float, float]:
    """``(array, scale, zero_point)`` the C core reads directly (dequantizing on the fly)."""
    data = q.data
    if data.dtype in _C_DTYPES and data.dtype.isnative and data.flags.aligned:
        if q.quant is None:
            return data, 1.0, 0.0
        return data, float(q.quant.scale), float(q.quant.zero_point)
    return q.dequantize(), 1.0, 0.0  # e.g. float16 outputs: one conversion, still exact


def _letterbox(lb: LetterboxInfo) -> tuple:
    oh, ow = lb.orig_size
    ih, iw = lb.input_size
    return (int(oh), int(ow), int(ih), int(iw), int(lb.pad_left), int(lb.pad_top), float(lb.scale_x), float(lb.scale_y))


def _optional(q: QTensor | None) -> tuple:
    return (None, 1.0, 0.0) if q is None else _c_tensor(q)


def _detect(t: ProtoTensors, lb: LetterboxInfo, opts: ProtoOptions, grid, names) -> tuple[np.ndarray, Result]:
    """Steps 1-4 in C; returns the kept anchors and the result without masks."""
    _require()
    if opts.box_encoding == "ltrb" and grid is None:
        raise ValueError("ltrb boxes need the anchor grid (manifest 'anchors')")
    centres, strides = grid if grid is not None and opts.box_encoding == "ltrb" else (None, None)
    threshold = raw_score_threshold(opts.score_threshold, opts.score_activation)
    num_classes = len(names) if names is not None else int(t.scores.data.shape[1])
    anchor, cls, raw, boxes, n, nonfinite = _cdecode.detect(
        *_c_tensor(t.boxes), *_c_tensor(t.scores), *_optional(t.objectness), *_optional(t.labels), centres, strides,
        threshold, float(opts.iou_threshold), int(opts.pre_nms_topk), int(opts.max_detections),
        _ENCODINGS.index(opts.box_encoding), bool(opts.class_agnostic), bool(opts.score_strict), bool(opts.nms),
        num_classes, float(opts.box_scale[0]), float(opts.box_scale[1]), _letterbox(lb),
    )
    score = scores_from_raw(raw[:n], opts.score_activation)
    result = Result(
        boxes=boxes[:n], scores=score, class_ids=cls[:n], masks=(),
        class_names=class_names_for(names, t, cls[:n]), image_size=lb.orig_size, nonfinite=nonfinite,
    )
    return anchor[:n], result


def _cropped(bits: np.ndarray, spans: np.ndarray, offsets: np.ndarray, image_size: tuple[int, int]) -> tuple[CroppedMask, ...]:
    return masks_in_buffer(bits, spans, offsets, image_size)


def _rle(strings: list[str], image_size: tuple[int, int]) -> list[dict]:
    size = [int(image_size[0]), int(image_size[1])]
    return [{"size": list(size), "counts": s} for s in strings]


def _proto_masks(t: ProtoTensors, anchor: np.ndarray, det: Result, lb: LetterboxInfo, kind: int, out, threads: int, flags: int):
    maps, scale, zp = _c_tensor(t.protos)
    coeffs = np.ascontiguousarray(t.coeffs.rows(anchor), dtype=np.float32)
    return _cdecode.masks(kind, _cdecode.PROTO, coeffs, maps, scale, zp, det.boxes, _letterbox(lb), out, int(threads), int(flags))


def decode_proto(
    t: ProtoTensors, lb: LetterboxInfo, opts: ProtoOptions, grid, *, class_names: tuple[str, ...] | None = None,
    mask_letterbox: LetterboxInfo | None = None, threads: int = 1, flags: int = 0,
) -> Result:
    """Decodes one frame of ``proto`` outputs in C; same contract as ``reference.decode_proto``.

    Args:
        t: Canonical tensors (float32, or int8/uint8 with their quantization).
        lb: Letterbox geometry of the frame.
        opts: Thresholds and box/score conventions.
        grid: ``(centres (A, 2), strides (A,))`` float32 for ``ltrb`` boxes, else ``None``.
        class_names: The manifest's class names (``None``: the ids as strings).
        mask_letterbox: Geometry mapping original pixels onto the prototype map
            when it differs from ``lb`` (a cropped map, :mod:`edgeseg.decode.sampling`).
        threads: Worker threads for the masks (1: the calling thread only).
        flags: ``_cdecode.NO_*`` bits that switch single speed tricks off (benchmarks).

    Returns:
        The frame's instances with box-cropped bitmaps (views into one buffer).
    """
    anchor, det = _detect(t, lb, opts, grid, class_names)
    if not opts.with_masks:
        return det
    bits, spans, offsets = _proto_masks(t, anchor, det, mask_letterbox or lb, _cdecode.CROPPED, None, threads, flags)
    return dataclasses.replace(det, masks=_cropped(bits, spans, offsets, lb.orig_size))


def decode_proto_full(
    t: ProtoTensors, lb: LetterboxInfo, opts: ProtoOptions, grid, out: np.ndarray, *,
    class_names: tuple[str, ...] | None = None, mask_letterbox: LetterboxInfo | None = None, threads: int = 1,
    flags: int = 0,
) -> tuple[Result, np.ndarray]:
    """Like :func:`decode_proto`, masks as full frames written into ``out``.

    Args:
        out: ``(>= max_detections, H, W)`` bool, C-contiguous; reuse it across
            frames (a fresh 90 MB array costs more in page faults than the decode).

    Returns:
        ``(result without masks, out[:N])``.
    """
    anchor, det = _detect(t, lb, opts, grid, class_names)
    check_frames(out, len(det.scores), lb.orig_size)
    _proto_masks(t, anchor, det, mask_letterbox or lb, _cdecode.FULL, out, threads, flags)
    return det, out[: len(det.scores)]


def decode_proto_rle(
    t: ProtoTensors, lb: LetterboxInfo, opts: ProtoOptions, grid, *, class_names: tuple[str, ...] | None = None,
    mask_letterbox: LetterboxInfo | None = None, flags: int = 0,
) -> tuple[Result, list[dict]]:
    """Like :func:`decode_proto`, masks as COCO RLE ``{"size": [H, W], "counts": str}``."""
    anchor, det = _detect(t, lb, opts, grid, class_names)
    strings, _ = _proto_masks(t, anchor, det, mask_letterbox or lb, _cdecode.RLE, None, 1, flags)
    return det, _rle(strings, lb.orig_size)


def paste_roi(
    logits: QTensor,
    boxes: np.ndarray,
    image_size: tuple[int, int],
    *,
    output: str = "cropped",
    out: np.ndarray | None = None,
    threads: int = 1,
    flags: int = 0,
    regions: np.ndarray | None = None,
):
    """Pastes ``roi`` family mask logits into their boxes (C version of ``reference_roi.paste_masks``).

    Args:
        logits: ``(N, Mh, Mw)`` mask logits, float32 or quantized.
        boxes: ``(N, 4)`` float32 XYXY in original pixels.
        image_size: ``(H, W)`` of the original image.
        output: ``"cropped"`` (tuple of CroppedMask), ``"full"`` (writes ``out``,
            ``(>= N, H, W)`` bool, returns ``out[:N]``) or ``"rle"`` (list of dicts).
        out: The reused frame buffer for ``output="full"``.
        threads: Worker threads (cropped and full).
        flags: ``_cdecode.NO_*`` bits (benchmarks).
        regions: ``(N, 4)`` float32 XYXY: render only these pixels (not the
            boxes'), sampling each map as its box says (prompt masks,
            :mod:`edgeseg.decode.prompt_masks`); ``None``: the boxes.
    """
    _require()
    kinds = {"cropped": _cdecode.CROPPED, "full": _cdecode.FULL, "rle": _cdecode.RLE}
    if output not in kinds:
        raise ValueError(f"output must be one of {sorted(kinds)}, got {output!r}")
    maps, scale, zp = _c_tensor(logits)
    boxes = np.ascontiguousarray(boxes, dtype=np.float32)
    if maps.ndim != 3 or boxes.shape != (maps.shape[0], 4):
        raise ValueError(f"expected logits (N, Mh, Mw) and boxes (N, 4), got {maps.shape} and {boxes.shape}")
    h, w = image_size
    if output == "full":
        check_frames(out, len(boxes), (int(h), int(w)))
    lb = (int(h), int(w), 1, 1, 0, 0, 1.0, 1.0)
    extra = () if regions is None else (np.ascontiguousarray(regions, dtype=np.float32),)
    res = _cdecode.masks(kinds[output], _cdecode.ROI, None, maps, scale, zp, boxes, lb, out, int(threads), int(flags),
                         *extra)
    if output == "cropped":
        return _cropped(*res, (int(h), int(w)))
    if output == "full":
        return out[: len(boxes)]
    return _rle(res[0], (int(h), int(w)))
