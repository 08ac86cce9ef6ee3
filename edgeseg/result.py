"""The one result type of the runtime: instances as columns, masks kept cropped.

Everything downstream (grasp planning, hooks, overlays, metrics, COCO export)
consumes :class:`Result`. Masks stay as box-cropped bitmaps (a few KB each)
and become full frames or COCO RLE only when asked, because N full frames at
1280x720 cost more memory traffic than the whole decode.

Conventions: boxes are XYXY float32 in original-image pixels (pixel ``i``
covers ``[i, i+1)``); a cropped mask is a ``(h, w)`` bool bitmap whose top-left
pixel sits at integer image coordinates ``(x0, y0)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from edgeseg import rle as _rle


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
        return _rle.encode_cropped(self.bitmap, self.x0, self.y0, self.image_size)


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
        return dataclasses.replace(
            self, boxes=self.boxes[idx], scores=self.scores[idx], class_ids=self.class_ids[idx],
            masks=tuple(self.masks[i] for i in idx.tolist()) if self.masks else (),
        )

    def __iter__(self) -> Iterator[Instance]:
        return iter(self.instances)

    @property
    def instances(self) -> list[Instance]:
        """The instances as row objects, best score first."""
        return [
            Instance(
                class_id=int(self.class_ids[i]),
                class_name=self.class_names[int(self.class_ids[i])],
                score=float(self.scores[i]),
                box=tuple(float(v) for v in self.boxes[i]),
                mask=self.masks[i] if self.masks else None,
                track_id=int(self.track_ids[i]) if self.track_ids is not None else None,
            )
            for i in range(len(self))
        ]

    def full_masks(self) -> np.ndarray:
        """Returns ``(N, H, W)`` bool full-frame masks (allocates N frames)."""
        h, w = self.image_size
        out = np.zeros((len(self.masks), h, w), dtype=np.bool_)
        for i, m in enumerate(self.masks):
            m.full(out[i])
        return out

    def to_dict(self) -> dict:
        """JSON-ready summary: one dict per instance, masks as COCO RLE."""
        return {
            "frame_id": self.frame_id,
            "image_size": list(self.image_size),
            "timings_ms": {
                "preprocess": round(self.timings.preprocess_ms, 3),
                "infer": round(self.timings.infer_ms, 3),
                "decode": round(self.timings.decode_ms, 3),
            },
            "instances": [
                {
                    "class_id": inst.class_id,
                    "class_name": inst.class_name,
                    "score": round(inst.score, 5),
                    "box_xyxy": [round(v, 2) for v in inst.box],
                    "mask_rle": inst.mask.rle() if inst.mask is not None else None,
                    **({"track_id": inst.track_id} if inst.track_id is not None else {}),
                }
                for inst in self.instances
            ],
        }
