"""Mask forms a caller can ask a Segmenter for: ``cropped``, ``rle`` or ``full``.

* ``cropped`` (default): box-cropped bitmaps in ``Result.masks``, what grasp
  planning, overlays and metrics read;
* ``rle``: COCO RLE straight from the decoder (``Result.mask_rles``), no
  bitmaps kept: the C core encodes each mask as it renders it;
* ``full``: ``(N, H, W)`` bool frames written into the caller's reused
  buffer ``out`` (``Result.mask_frames`` is ``out[:N]``), every byte written
  once with streaming stores.

A registry maps (decoding path, form) to one function; the numpy path gives
the same results by converting its cropped masks (:func:`edgeseg.result.rle_masks`,
:meth:`~edgeseg.result.CroppedMask.full`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from edgeseg.decode import cpath, reference
from edgeseg.decode.options import DecodeOptions, Detections
from edgeseg.preprocess import LetterboxInfo
from edgeseg.result import rle_masks

MASK_FORMS = ("cropped", "rle", "full")

# (detections, RLE dicts or (), full frames or None)
Decoded = tuple[Detections, tuple[dict, ...], "np.ndarray | None"]


def check_form(masks: str, out: np.ndarray | None) -> None:
    """Raises ValueError unless ``masks`` names a form and ``out`` is given exactly for ``full``."""
    if masks not in MASK_FORMS:
        raise ValueError(f"masks must be one of {MASK_FORMS}, got {masks!r}")
    if masks == "full" and out is None:
        raise ValueError("masks='full' needs out=: a (>= max_detections, H, W) bool buffer you reuse across frames")
    if masks != "full" and out is not None:
        raise ValueError(f"out= is only for masks='full', got masks={masks!r}")


def _no_masks(det: Detections) -> Detections:
    return Detections(det.boxes, det.scores, det.class_ids, ())


def _c_rle(t, lb, opts, grid, out) -> Decoded:
    det, rles = cpath.decode_proto_rle(t, lb, opts, grid)
    return det, tuple(rles), None


def _c_full(t, lb, opts, grid, out) -> Decoded:
    det, frames = cpath.decode_proto_full(t, lb, opts, grid, out)
    return det, (), frames


def _numpy_rle(t, lb, opts, grid, out) -> Decoded:
    det = reference.decode_proto(t, lb, opts, grid)
    return _no_masks(det), tuple(rle_masks(det.masks, lb.orig_size)), None


def _numpy_full(t, lb, opts, grid, out) -> Decoded:
    cpath._check_frames(out, opts.max_detections, lb.orig_size)
    det = reference.decode_proto(t, lb, opts, grid)
    frames = out[: len(det.scores)]
    for i, m in enumerate(det.masks):
        m.full(frames[i])
    return _no_masks(det), (), frames


FORMS: dict[tuple[str, str], Callable[..., Decoded]] = {
    ("c", "rle"): _c_rle,
    ("c", "full"): _c_full,
    ("numpy", "rle"): _numpy_rle,
    ("numpy", "full"): _numpy_full,
}


def decode_form(path: str, masks: str, tensors, lb: LetterboxInfo, opts: DecodeOptions, grid,
                out: np.ndarray | None) -> Decoded:
    """Decodes one frame with masks in the form ``masks`` (``rle`` or ``full``; see module doc).

    Args:
        path: ``"c"`` or ``"numpy"`` (the Decoder's path).
        masks: The form.
        tensors: Canonical ``proto`` tensors.
        lb: Letterbox of the frame.
        opts: Decode options.
        grid: Anchor grid or ``None``.
        out: ``(>= max_detections, H, W)`` bool, C-contiguous, for ``full``.
    """
    check_form(masks, out)
    return FORMS[(path, masks)](tensors, lb, opts, grid, out)
