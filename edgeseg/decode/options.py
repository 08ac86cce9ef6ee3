"""Decoder settings and the decoder's raw output (before timings are attached)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeseg.manifest import BOX_ENCODINGS, SCORE_ACTIVATIONS, Manifest
from edgeseg.result import CroppedMask


@dataclass(frozen=True)
class DecodeOptions:
    """Everything a decoder needs besides the tensors and the letterbox.

    Built from the manifest's defaults by :meth:`from_manifest`; a caller
    overrides single fields with ``dataclasses.replace``.
    """

    score_threshold: float = 0.25
    iou_threshold: float = 0.5
    max_detections: int = 100
    pre_nms_topk: int = 1000
    class_agnostic: bool = False
    with_masks: bool = True
    box_encoding: str = "ltrb"
    score_activation: str = "sigmoid"

    @classmethod
    def from_manifest(cls, manifest: Manifest) -> DecodeOptions:
        th = manifest.thresholds
        boxes = manifest.output("boxes")
        scores = manifest.output("scores")
        return cls(
            score_threshold=th.score,
            iou_threshold=th.iou,
            max_detections=th.max_detections,
            pre_nms_topk=th.pre_nms_topk,
            class_agnostic=th.class_agnostic,
            box_encoding=boxes.encoding or "xyxy",
            score_activation=scores.activation or "none",
        )

    def __post_init__(self) -> None:
        """Validated once, on construction (``dataclasses.replace`` validates again)."""
        if self.box_encoding not in BOX_ENCODINGS:
            raise ValueError(f"unknown box encoding {self.box_encoding!r}, expected one of {BOX_ENCODINGS}")
        if self.score_activation not in SCORE_ACTIVATIONS:
            raise ValueError(f"score_activation must be one of {SCORE_ACTIVATIONS}, got {self.score_activation!r}")
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {self.score_threshold}")
        if not 0.0 < self.iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {self.iou_threshold}")
        if self.max_detections < 1 or self.pre_nms_topk < 1:
            raise ValueError(
                f"max_detections and pre_nms_topk must be >= 1, got {self.max_detections}, {self.pre_nms_topk}"
            )


@dataclass(frozen=True)
class Detections:
    """Decoded instances of one frame, original-image pixels (see :class:`edgeseg.Result`)."""

    boxes: np.ndarray  # (N, 4) float32 XYXY
    scores: np.ndarray  # (N,) float32
    class_ids: np.ndarray  # (N,) int32
    masks: tuple[CroppedMask, ...]
