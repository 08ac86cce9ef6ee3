"""The one result type of the runtime: instances as columns, masks kept cropped.

Everything downstream (grasp planning, hooks, overlays, metrics, COCO export)
consumes :class:`Result`. Masks stay as box-cropped bitmaps (a few KB each)
and become full frames or COCO RLE only when asked, because N full frames at
1280x720 cost more memory traffic than the whole decode.

Conventions: boxes are XYXY float32 in original-image pixels (pixel ``i``
covers ``[i, i+1)``); a cropped mask is a ``(h, w)`` bool bitmap whose top-left
pixel sits at integer image coordinates ``(x0, y0)``.

The output path has no per-pixel Python: COCO RLE of all masks is one call
into the C core (``_cdecode.rle_runs``, from :attr:`PackedMasks.runs`, which
:func:`pack_masks` lays out as one buffer; the decoder's masks already are
one, and grasp planning reads the same runs), with
:mod:`edgeseg.rle` as the fallback when the extension is not built. Rows,
RLE and the JSON dict are computed once per Result and kept.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from edgeseg import rle as _rle

try:
    from edgeseg._c import _cdecode
except ImportError:  # not built: the numpy RLE encoder is used
    _cdecode = None


@dataclass(frozen=True)
class CroppedMask:
    """One instance mask as a bitmap placed at ``(x0, y0)`` in the image.

    Attributes:
        x0: Left column of ``bitmap`` in image pixels.
        y0: Top row of ``bitmap`` in image pixels.
        bitmap: ``(h, w)`` bool array, C-contiguous.
        image_size: ``(height, width)`` of the image the mask belongs to.
    """

    x0: int
    y0: int
    bitmap: np.ndarray
    image_size: tuple[int, int]

    def __post_init__(self) -> None:
        if self.bitmap.dtype != np.bool_ or self.bitmap.ndim != 2:
            raise ValueError(
                f"CroppedMask.bitmap must be a 2-D bool array, got {self.bitmap.dtype} "
                f"with shape {self.bitmap.shape}"
            )
        h, w = self.bitmap.shape
        ih, iw = self.image_size
        if self.x0 < 0 or self.y0 < 0 or self.x0 + w > iw or self.y0 + h > ih:
            raise ValueError(
                f"CroppedMask at ({self.x0}, {self.y0}) of size {w}x{h} does not fit in "
                f"a {iw}x{ih} image"
            )

    @property
    def area(self) -> int:
        """Number of foreground pixels."""
        return int(np.count_nonzero(self.bitmap))

    def full(self, out: np.ndarray | None = None) -> np.ndarray:
        """Returns the mask as a full ``(H, W)`` bool frame.

        Args:
            out: Optional ``(H, W)`` bool array to write into (cleared first),
                so a caller can reuse one buffer across frames.
        """
        ih, iw = self.image_size
        if out is None:
            out = np.zeros((ih, iw), dtype=np.bool_)
        else:
            if out.shape != (ih, iw) or out.dtype != np.bool_:
                raise ValueError(
                    f"out must be a bool array of shape {(ih, iw)}, got {out.dtype} {out.shape}"
                )
            out.fill(False)
        h, w = self.bitmap.shape
        out[self.y0 : self.y0 + h, self.x0 : self.x0 + w] = self.bitmap
        return out

    def rle(self) -> dict:
        """Returns the mask as COCO RLE (``{"size": [H, W], "counts": str}``)."""
        return rle_masks((self,), self.image_size)[0]


@dataclass(frozen=True)
class PackedMasks:
    """N cropped masks as one buffer, the form the C core reads.

    Attributes:
        bits: 1-D bool buffer; mask ``i`` is ``bits[offsets[i]:][:h * w]``, row-major.
        offsets: ``(N,)`` int64 start of each mask in ``bits``.
        spans: ``(N, 4)`` int32 ``(x0, y0, w, h)`` in image pixels.
    """

    bits: np.ndarray
    offsets: np.ndarray
    spans: np.ndarray

    def take(self, rows: np.ndarray) -> PackedMasks:
        """The masks at ``rows`` (same buffer)."""
        return PackedMasks(self.bits, self.offsets[rows], self.spans[rows])

    @cached_property
    def runs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The masks as runs of foreground per row, made once by the C core (``es_runs.h``).

        Returns:
            ``(first_row, row_start, runs)``: mask ``i``'s row ``y`` is global
            row ``first_row[i] + y`` (``(N,)`` int64), whose runs are
            ``runs[row_start[row]:row_start[row + 1]]`` (``(rows + 1,)``
            int64; ``(R, 2)`` int32 start, end exclusive, columns inside the span).
        """
        if _cdecode is None:
            raise RuntimeError("runs need edgeseg's C extension (pip install -e . with a compiler)")
        return _cdecode.runs(self.bits, self.offsets, self.spans)


class _BufferMasks(tuple):
    """Cropped masks that are views into one buffer, keeping that layout (``packed``) for :func:`pack_masks`."""

    packed: PackedMasks


def masks_in_buffer(bits: np.ndarray, spans: np.ndarray, offsets: np.ndarray,
                    image_size: tuple[int, int]) -> tuple[CroppedMask, ...]:
    """The cropped masks a decoder wrote into one buffer, as a tuple that remembers the layout.

    Args:
        bits: 1-D bool buffer; spans: ``(N, 4)`` int32 ``(x0, y0, w, h)``;
            offsets: ``(N,)`` int64 start of each mask in ``bits``.
        image_size: ``(H, W)`` of the image.

    Returns:
        N :class:`CroppedMask` views; :func:`pack_masks` of exactly this tuple
        is the given layout (no per-mask work). A new tuple (a selection, a
        replacement) is packed afresh.
    """
    masks = _BufferMasks(
        CroppedMask(x0, y0, bits[o : o + w * h].reshape(h, w), image_size)
        for (x0, y0, w, h), o in zip(spans.tolist(), offsets.tolist(), strict=True)
    )
    masks.packed = PackedMasks(bits, offsets, spans)
    return masks


def pack_masks(masks: Sequence[CroppedMask]) -> PackedMasks:
    """Lays ``masks`` out as one buffer; no copy when they already share one (decoder output).

    Args:
        masks: Cropped masks of one image.
    """
    if isinstance(masks, _BufferMasks):
        return masks.packed
    spans = np.array([(m.x0, m.y0, m.bitmap.shape[1], m.bitmap.shape[0]) for m in masks], np.int32).reshape(-1, 4)
    base = masks[0].bitmap.base if masks else None
    if (
        isinstance(base, np.ndarray) and base.ndim == 1 and base.dtype == np.bool_ and base.flags.c_contiguous
        and all(m.bitmap.base is base and m.bitmap.flags.c_contiguous for m in masks)
    ):
        start = base.ctypes.data
        offsets = np.array([m.bitmap.ctypes.data - start for m in masks], np.int64)
        return PackedMasks(base, offsets, spans)
    sizes = spans[:, 2].astype(np.int64) * spans[:, 3]
    offsets = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64) if masks else np.zeros(0, np.int64)
    bits = np.concatenate([m.bitmap.ravel() for m in masks]) if masks else np.zeros(0, np.bool_)
    return PackedMasks(bits, offsets, spans)


def rle_masks(masks: Sequence[CroppedMask], image_size: tuple[int, int], packed: PackedMasks | None = None) -> list[dict]:
    """COCO RLE of every mask, in one C call (numpy encoder without the extension).

    Args:
        masks: Cropped masks of one ``image_size`` image.
        image_size: ``(H, W)``.
        packed: ``pack_masks(masks)`` when the caller has it already.

    Returns:
        ``[{"size": [H, W], "counts": str}, ...]``, equal to ``pycocotools.mask.encode``.
    """
    h, w = int(image_size[0]), int(image_size[1])
    if _cdecode is None:
        return [_rle.encode_cropped(m.bitmap, m.x0, m.y0, (h, w)) for m in masks]
    p = packed if packed is not None else pack_masks(masks)
    first_row, row_start, runs = p.runs  # shared with grasp planning when it ran on this frame
    return [{"size": [h, w], "counts": c} for c in _cdecode.rle_runs(runs, row_start, first_row, p.spans, h, w)]


@dataclass(frozen=True)
class StageTimings:
    """Wall time per pipeline stage of one frame, in milliseconds."""

    preprocess_ms: float = 0.0
    infer_ms: float = 0.0
    decode_ms: float = 0.0

    @property
    def total_ms(self) -> float:
        return self.preprocess_ms + self.infer_ms + self.decode_ms


@dataclass(frozen=True)
class Instance:
    """A row view of one detected instance (built on demand from a Result)."""

    class_id: int
    class_name: str
    score: float
    box: tuple[float, float, float, float]
    mask: CroppedMask | None
    track_id: int | None = None


@dataclass(frozen=True)
class Result:
    """Instances of one frame, as columns.

    Attributes:
        boxes: ``(N, 4)`` float32 XYXY in original-image pixels.
        scores: ``(N,)`` float32 confidence in [0, 1].
        class_ids: ``(N,)`` int32 indices into ``class_names``.
        masks: N cropped masks (empty tuple when the model has no masks).
        class_names: Names for the class ids (from the bundle manifest).
        image_size: ``(height, width)`` of the original image.
        timings: Per-stage wall times for this frame.
        frame_id: Caller's frame counter (0 for single images).
        track_ids: ``(N,)`` int32 track id per instance (-1 = not tracked), or
            None when no tracker ran (see :mod:`edgeseg.track`).
        mask_rles: COCO RLE per instance when the masks were decoded straight
            to RLE (``masks="rle"``); empty otherwise.
        mask_frames: ``(N, H, W)`` bool full frames when they were decoded
            into a caller's buffer (``masks="full"``: a view of it, valid
            until the buffer is reused); ``None`` otherwise.
        nonfinite: Score rows and candidates the decoder dropped before NMS
            for a NaN/Inf score or box (a model or quantization fault).

    Rows (:attr:`instances`), :meth:`rles` and :meth:`to_dict` are computed
    once and kept: a Result is immutable.
    """

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    masks: tuple[CroppedMask, ...]
    class_names: tuple[str, ...]
    image_size: tuple[int, int]
    timings: StageTimings = field(default_factory=StageTimings)
    frame_id: int = 0
    track_ids: np.ndarray | None = None
    mask_rles: tuple[dict, ...] = ()
    mask_frames: np.ndarray | None = field(default=None, repr=False)
    nonfinite: int = 0

    def __post_init__(self) -> None:
        n = len(self.scores)
        if self.track_ids is not None and (self.track_ids.shape != (n,) or self.track_ids.dtype != np.int32):
            raise ValueError(f"track_ids must be int32 ({n},), got {self.track_ids.dtype} {self.track_ids.shape}")
        if self.boxes.shape != (n, 4) or self.boxes.dtype != np.float32:
            raise ValueError(f"boxes must be float32 ({n}, 4), got {self.boxes.dtype} {self.boxes.shape}")
        if self.scores.shape != (n,) or self.scores.dtype != np.float32:
            raise ValueError(f"scores must be float32 ({n},), got {self.scores.dtype} {self.scores.shape}")
        if self.class_ids.shape != (n,) or self.class_ids.dtype != np.int32:
            raise ValueError(
                f"class_ids must be int32 ({n},), got {self.class_ids.dtype} {self.class_ids.shape}"
            )
        if self.masks and len(self.masks) != n:
            raise ValueError(f"expected {n} masks (one per instance), got {len(self.masks)}")
        if self.mask_rles and len(self.mask_rles) != n:
            raise ValueError(f"expected {n} RLE masks (one per instance), got {len(self.mask_rles)}")
        if self.mask_frames is not None and (
            self.mask_frames.dtype != np.bool_ or self.mask_frames.shape != (n, *self.image_size)
        ):
            raise ValueError(
                f"mask_frames must be bool {(n, *self.image_size)}, got {self.mask_frames.dtype} {self.mask_frames.shape}"
            )
        if n and (self.class_ids.min() < 0 or self.class_ids.max() >= len(self.class_names)):
            raise ValueError(
                f"class ids must lie in [0, {len(self.class_names)}), got "
                f"[{self.class_ids.min()}, {self.class_ids.max()}]"
            )

    @classmethod
    def empty(cls, class_names: tuple[str, ...], image_size: tuple[int, int]) -> Result:
        return cls(
            boxes=np.zeros((0, 4), np.float32),
            scores=np.zeros((0,), np.float32),
            class_ids=np.zeros((0,), np.int32),
            masks=(),
            class_names=class_names,
            image_size=image_size,
        )

    def __len__(self) -> int:
        return len(self.scores)

    def select(self, keep) -> Result:
        """The instances where ``keep`` (``(N,)`` bool, or indices) is set, in their order."""
        idx = np.asarray(keep)
        idx = np.flatnonzero(idx) if idx.dtype == np.bool_ else idx.astype(np.int64)
        if len(idx) == len(self) and np.array_equal(idx, np.arange(len(self))):
            return self
        rows = idx.tolist()
        return dataclasses.replace(
            self, boxes=self.boxes[idx], scores=self.scores[idx], class_ids=self.class_ids[idx],
            masks=tuple(self.masks[i] for i in rows) if self.masks else (),
            track_ids=None if self.track_ids is None else self.track_ids[idx],
            mask_rles=tuple(self.mask_rles[i] for i in rows) if self.mask_rles else (),
            mask_frames=None if self.mask_frames is None else self.mask_frames[idx],
        )

    def __iter__(self) -> Iterator[Instance]:
        return iter(self.instances)

    @cached_property
    def instances(self) -> list[Instance]:
        """The instances as row objects, best score first (built once)."""
        names = self.class_names
        masks = self.masks or (None,) * len(self)
        tracks = self.track_ids.tolist() if self.track_ids is not None else (None,) * len(self)
        return [
            Instance(class_id=c, class_name=names[c], score=s, box=tuple(b), mask=m, track_id=t)
            for c, s, b, m, t in zip(self.class_ids.tolist(), self.scores.tolist(), self.boxes.tolist(), masks,
                                     tracks, strict=True)
        ]

    @cached_property
    def packed_masks(self) -> PackedMasks:
        """The cropped masks as one buffer (see :func:`pack_masks`), built once."""
        return pack_masks(self.masks)

    def rles(self) -> list[dict] | None:
        """COCO RLE per instance (one C call, kept); ``None`` when the Result has no masks."""
        if self.mask_rles:
            return list(self.mask_rles)
        if not self.masks:
            return None
        return list(self._rles)

    @cached_property
    def _rles(self) -> tuple[dict, ...]:
        return tuple(rle_masks(self.masks, self.image_size, self.packed_masks))

    def full_masks(self, out: np.ndarray | None = None) -> np.ndarray:
        """Returns ``(N, H, W)`` bool full-frame masks.

        Args:
            out: Optional ``(>= N, H, W)`` bool buffer to write into and reuse
                across frames (a fresh one is allocated otherwise).

        Returns:
            ``out[:N]`` (or the new array).
        """
        h, w = self.image_size
        n = len(self) if self.masks or self.mask_rles or self.mask_frames is not None else 0
        if out is None:
            out = np.zeros((n, h, w), dtype=np.bool_)
        elif not (isinstance(out, np.ndarray) and out.dtype == np.bool_ and out.ndim == 3 and out.shape[1:] == (h, w)
                  and len(out) >= n):
            found = f"{out.dtype} {out.shape}" if isinstance(out, np.ndarray) else type(out).__name__
            raise ValueError(f"out must be a bool array of shape (>= {n}, {h}, {w}), got {found}")
        if self.mask_frames is not None:
            if out[:n] is not self.mask_frames and not np.shares_memory(out[:n], self.mask_frames):
                out[:n] = self.mask_frames
            return out[:n]
        for i, m in enumerate(self.masks):
            m.full(out[i])
        for i, r in enumerate(self.mask_rles):
            out[i] = _rle.decode(r)
        return out[:n]

    def to_dict(self) -> dict:
        """JSON-ready summary: one dict per instance, masks as COCO RLE (built once, do not modify)."""
        return self._dict

    @cached_property
    def _dict(self) -> dict:
        rles = self.rles() or [None] * len(self)
        names = self.class_names
        tracks = self.track_ids.tolist() if self.track_ids is not None else None
        rows = []  # straight from the columns: no Instance rows needed
        for k, (c, s, b, r) in enumerate(zip(self.class_ids.tolist(), self.scores.tolist(), self.boxes.tolist(), rles,
                                             strict=True)):
            row = {"class_id": c, "class_name": names[c], "score": round(s, 5), "box_xyxy": [round(v, 2) for v in b],
                   "mask_rle": r}
            if tracks is not None:
                row["track_id"] = tracks[k]
            rows.append(row)
        return {
            "frame_id": self.frame_id,
            "image_size": list(self.image_size),
            "timings_ms": {
                "preprocess": round(self.timings.preprocess_ms, 3),
                "infer": round(self.timings.infer_ms, 3),
                "decode": round(self.timings.decode_ms, 3),
            },
            "instances": rows,
            **({"nonfinite_dropped": self.nonfinite} if self.nonfinite else {}),
        }

    def to_json(self) -> str:
        """``json.dumps(self.to_dict())``: the line ``edgeseg run`` writes per frame (always valid JSON)."""
        return json_text(self._dict)


def _finite_or_none(x):
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite_or_none(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite_or_none(v) for v in x]
    return x


def json_text(d) -> str:
    """``json.dumps(d)``, always valid JSON: a NaN or infinity (which JSON lacks) is written as ``null``."""
    try:
        return json.dumps(d, allow_nan=False)
    except ValueError:  # rare: only then walk the value
        return json.dumps(_finite_or_none(d), allow_nan=False)
