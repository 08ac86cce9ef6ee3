"""Decoder settings: the ones every family shares, and the ``proto`` family's conventions.

Each family's :meth:`~edgeseg.families.base.Family.options` builds its options
from the manifest's defaults; a caller overrides single fields with
``dataclasses.replace`` (which validates again).
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeseg.manifest import Thresholds

BOX_ENCODINGS = ("ltrb", "xyxy", "cxcywh")
SCORE_ACTIVATIONS = ("sigmoid", "none")


@dataclass(frozen=True)
class DecodeOptions:
    """Thresholds every family honours.

    Attributes:
        score_threshold: Keep instances scoring ``>=`` this (``>`` when ``score_strict``).
        iou_threshold: NMS drops a box whose IoU with a kept one is ``>`` this.
        max_detections: At most this many instances per frame.
        pre_nms_topk: Candidates entering NMS, best first.
        class_agnostic: NMS across classes.
        with_masks: Decode masks (``False``: boxes only).
        score_strict: Strict score comparison (Ultralytics' ``conf``).
        nms: Suppress overlaps; ``False`` for end-to-end models.
        drop_empty_masks: Drop instances whose decoded mask has no pixel.
        min_score: Drop instances whose *reported* score is below this (``None``:
            no floor). For ``proto`` and ``roi`` the reported score is the one
            ``score_threshold`` tests; for families that score after their
            candidates (``kernel``: maskness and Matrix NMS decay; ``query``:
            mask scores) it is the only floor on what a caller sees.
    """

    score_threshold: float = 0.25
    iou_threshold: float = 0.5
    max_detections: int = 100
    pre_nms_topk: int = 1000
    class_agnostic: bool = False
    with_masks: bool = True
    score_strict: bool = False
    nms: bool = True
    drop_empty_masks: bool = False
    min_score: float | None = None

    @classmethod
    def thresholds(cls, th: Thresholds, **extra) -> dict:
        """Keyword arguments of the shared fields from a manifest's :class:`Thresholds`."""
        return dict(
            score_threshold=th.score,
            iou_threshold=th.iou,
            max_detections=th.max_detections,
            pre_nms_topk=th.pre_nms_topk,
            class_agnostic=th.class_agnostic,
            score_strict=th.score_strict,
            nms=th.nms,
            drop_empty_masks=th.drop_empty_masks,
            **extra,
        )

    def __post_init__(self) -> None:
        """Validated once, on construction (``dataclasses.replace`` validates again)."""
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {self.score_threshold}")
        if self.min_score is not None and not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"min_score must be in [0, 1], got {self.min_score}")
        if not 0.0 < self.iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {self.iou_threshold}")
        if self.max_detections < 1 or self.pre_nms_topk < 1:
            raise ValueError(
                f"max_detections and pre_nms_topk must be >= 1, got {self.max_detections}, {self.pre_nms_topk}"
            )


@dataclass(frozen=True)
class ProtoOptions(DecodeOptions):
    """``proto`` family options: the shared thresholds plus the model's output conventions.

    Attributes:
        box_encoding: ``ltrb`` (distances from anchor points, in strides),
            ``xyxy`` or ``cxcywh`` (input pixels).
        score_activation: ``sigmoid`` (raw logits) or ``none`` (probabilities).
        box_scale: ``(sx, sy)`` multiplying raw ``xyxy``/``cxcywh`` values:
            the input size for boxes normalized to it, else ``(1, 1)``.
        mask_sampling: ``exact`` or ``ultralytics`` (:mod:`edgeseg.decode.sampling`).
    """

    box_encoding: str = "ltrb"
    score_activation: str = "sigmoid"
    box_scale: tuple[float, float] = (1.0, 1.0)
    mask_sampling: str = "exact"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.box_encoding not in BOX_ENCODINGS:
            raise ValueError(f"unknown box encoding {self.box_encoding!r}, expected one of {BOX_ENCODINGS}")
        if self.score_activation not in SCORE_ACTIVATIONS:
            raise ValueError(f"score_activation must be one of {SCORE_ACTIVATIONS}, got {self.score_activation!r}")
        if self.mask_sampling not in ("exact", "ultralytics"):
            raise ValueError(f"mask_sampling must be 'exact' or 'ultralytics', got {self.mask_sampling!r}")
