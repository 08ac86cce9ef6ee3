"""Mask forms a caller can ask a Segmenter for: ``cropped``, ``rle`` or ``full``.

* ``cropped`` (default): box-cropped bitmaps in ``Result.masks``, what grasp
  planning, overlays and metrics read;
* ``rle``: COCO RLE straight from the decoder (``Result.mask_rles``), no
  bitmaps kept: the C core encodes each mask as it renders it;
* ``full``: ``(N, H, W)`` bool frames written into the caller's reused
  buffer ``out`` (``Result.mask_frames`` is ``out[:N]``), every byte written
  once with streaming stores.

A family decoder may produce the forms natively (``decode_as``, as the
``proto`` family's C path does); otherwise :func:`from_cropped` converts its
cropped masks (:func:`edgeseg.result.rle_masks`, :meth:`~edgeseg.result.CroppedMask.full`),
which is also what the numpy path does. Both give the same masks.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edgeseg.result import Result, rle_masks

MASK_FORMS = ("cropped", "rle", "full")


def check_form(masks: str, out: np.ndarray | None) -> None:
    """Raises ValueError unless ``masks`` names a form and ``out`` is given exactly for ``full``."""
    if masks not in MASK_FORMS:
        raise ValueError(f"masks must be one of {MASK_FORMS}, got {masks!r}")
    if masks == "full" and out is None:
        raise ValueError("masks='full' needs out=: a (>= max_detections, H, W) bool buffer you reuse across frames")
    if masks != "full" and out is not None:
        raise ValueError(f"out= is only for masks='full', got masks={masks!r}")


def check_frames(out: object, n: int, image_size: tuple[int, int]) -> None:
    """Raises ValueError unless ``out`` is a writable C-contiguous ``(>= n, H, W)`` bool buffer."""
    h, w = image_size
    ok = isinstance(out, np.ndarray) and out.dtype == np.bool_ and out.ndim == 3 and out.shape[1:] == (h, w)
    if not (ok and out.shape[0] >= n and out.flags.c_contiguous and out.flags.writeable):
        found = f"{out.dtype} {out.shape}" if isinstance(out, np.ndarray) else type(out).__name__
        raise ValueError(f"out must be a writable C-contiguous bool array of shape (>= {n}, {h}, {w}), got {found}")


def from_cropped(result: Result, masks: str, out: np.ndarray | None) -> Result:
    """``result`` (cropped masks) with its masks in the form ``masks``."""
    if masks == "cropped":
        return result
    if masks == "rle":
        return dataclasses.replace(result, masks=(), mask_rles=tuple(rle_masks(result.masks, result.image_size)))
    check_frames(out, len(result), result.image_size)
    frames = out[: len(result)]
    for i, m in enumerate(result.masks):
        m.full(frames[i])
    return dataclasses.replace(result, masks=(), mask_frames=frames)


def keep_scores(result: Result, min_score: float | None) -> Result:
    """``result`` without the instances scoring below ``min_score`` (all kept for ``None``).

    Full frames stay in the caller's buffer: the kept ones move to its first
    rows, so ``mask_frames`` is still ``out[:N]``.
    """
    if min_score is None:
        return result
    keep = np.flatnonzero(result.scores >= np.float32(min_score))
    if len(keep) == len(result):
        return result
    kept = result.select(keep)
    if result.mask_frames is None:
        return kept
    frames = result.mask_frames
    frames[: len(keep)] = frames[keep]
    return dataclasses.replace(kept, mask_frames=frames[: len(keep)])
