"""The ``roi`` family: detections after the model's own NMS, each with a small mask logit map.

Mask R-CNN style models (torchvision, TAO, Detectron2 heads) emit per
detection: a box (``xyxy`` input pixels), a score, a class label and an
``(M, M)`` map of mask logits covering the box (28x28 in torchvision). The
runtime filters by score (and runs NMS only when the manifest asks), maps the
boxes back through the letterbox and pastes each map into its box at the
original resolution (:mod:`edgeseg.decode.reference_roi`, C: ``cpath.paste_roi``).
A masks output with ``sampling: "torchvision"`` is pasted the way torchvision's
``paste_masks_in_image`` does (sigmoid, one-cell zero border, grown integer
box; :func:`~edgeseg.decode.reference_roi.torchvision_paste_inputs`).

Tensor shapes: boxes ``(N, 4)`` or ``(1, N, 4)``; scores and labels ``(N,)``,
``(N, 1)`` or ``(1, N)``; masks ``(N, 1, M, M)`` / ``(N, M, M)`` (``NCHW``) or
``(N, M, M, 1)`` (``NHWC``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edgeseg.decode import cpath, reference, reference_roi
from edgeseg.decode.options import SCORE_ACTIVATIONS, DecodeOptions
from edgeseg.decode.tensors import QTensor, output_array, row_view
from edgeseg.families.base import MAP_LAYOUTS, ROW_LAYOUTS, Family, Role
from edgeseg.manifest import Manifest, OutputSpec
from edgeseg.preprocess import LetterboxInfo
from edgeseg.result import Result


@dataclasses.dataclass(frozen=True)
class RoiOptions(DecodeOptions):
    """``roi`` options: the shared thresholds plus the score convention.

    Attributes:
        score_activation: ``none`` (probabilities, torchvision) or ``sigmoid``.
    """

    score_activation: str = "none"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.score_activation not in SCORE_ACTIVATIONS:
            raise ValueError(f"score_activation must be one of {SCORE_ACTIVATIONS}, got {self.score_activation!r}")


class RoiFamily(Family):
    name = "roi"
    roles = {
        "boxes": Role(ROW_LAYOUTS, keys={"encoding": ("xyxy",)}),
        "scores": Role(ROW_LAYOUTS, keys={"activation": ("none", "sigmoid")}),
        "labels": Role(ROW_LAYOUTS),
        "masks": Role(MAP_LAYOUTS, keys={"sampling": ("exact", "torchvision")}),
    }

    def options(self, manifest: Manifest) -> RoiOptions:
        return RoiOptions(
            **DecodeOptions.thresholds(manifest.thresholds),
            score_activation=manifest.output("scores").activation or "none",
        )

    def decoder(self, manifest: Manifest, path: str) -> RoiDecoder:
        return RoiDecoder(manifest, path)


def _column(raw: dict[str, np.ndarray], spec: OutputSpec) -> QTensor:
    """``(N,)`` view of a per-detection scalar output."""
    arr = output_array(raw, spec)
    if arr.ndim == 1 or (arr.ndim == 2 and 1 in arr.shape) or (arr.ndim == 3 and arr.shape[0] == 1 and 1 in arr.shape[1:]):
        return QTensor(arr.reshape(-1), spec.quant)
    raise ValueError(f"output {spec.name!r} (role {spec.role}) must hold one value per detection, got shape {arr.shape}")


def _mask_maps(raw: dict[str, np.ndarray], spec: OutputSpec) -> QTensor:
    """``(N, M, M)`` view of the per-ROI mask logits."""
    arr = output_array(raw, spec)
    if arr.ndim == 4:
        axis = 1 if spec.layout == "NCHW" else 3
        if arr.shape[axis] != 1:
            raise ValueError(f"output {spec.name!r} (masks) must have 1 channel, got shape {arr.shape} ({spec.layout})")
        arr = arr[:, 0] if axis == 1 else arr[..., 0]
    if arr.ndim != 3:
        raise ValueError(f"output {spec.name!r} (masks) must be (N, 1, M, M) or (N, M, M), got shape {arr.shape}")
    return QTensor(arr, spec.quant)


class RoiDecoder:
    """Per-bundle ``roi`` decoder.

    Args:
        manifest: The bundle's manifest.
        path: ``"c"`` or ``"numpy"`` (the mask paste).
    """

    def __init__(self, manifest: Manifest, path: str) -> None:
        self.manifest = manifest
        self.path = path
        self._specs = {o.role: o for o in manifest.outputs}

    def __call__(self, raw: dict[str, np.ndarray], letterbox: LetterboxInfo, options: RoiOptions) -> Result:
        boxes = QTensor(row_view(raw, self._specs["boxes"], 4), self._specs["boxes"].quant).dequantize()
        scores = _column(raw, self._specs["scores"]).dequantize()
        labels = _column(raw, self._specs["labels"]).dequantize()
        n = len(boxes)
        if len(scores) != n or len(labels) != n:
            raise ValueError(f"roi outputs disagree on the detection count: boxes {n}, scores {len(scores)}, labels {len(labels)}")
        nc = len(self.manifest.classes)
        idx, cls, raw_kept = reference.select_candidates(
            scores[:, None], reference.raw_score_threshold(options.score_threshold, options.score_activation),
            options.pre_nms_topk, strict=options.score_strict, labels=labels, num_classes=nc,
        )
        kept_boxes = boxes[idx]
        finite, nonfinite = reference.finite_candidates(kept_boxes, raw_kept, scores[:, None])
        idx, cls, raw_kept, kept_boxes = idx[finite], cls[finite], raw_kept[finite], kept_boxes[finite]
        if options.nms:
            keep = reference.nms(kept_boxes, cls, options.iou_threshold, options.max_detections,
                                 class_agnostic=options.class_agnostic)
        else:
            keep = np.arange(min(len(idx), options.max_detections))
        idx, cls, raw_kept = idx[keep], cls[keep], raw_kept[keep]
        kept_boxes = kept_boxes[keep]
        orig = letterbox.boxes_to_original(kept_boxes)
        masks: tuple = ()
        if options.with_masks:
            maps = _mask_maps(raw, self._specs["masks"])
            if maps.data.shape[0] != n:
                raise ValueError(f"roi masks hold {maps.data.shape[0]} maps for {n} detections")
            rows = QTensor(maps.data[idx], maps.quant)
            # each map covers the model's box: paste with the box mapped back unclipped
            paste_boxes = letterbox.boxes_to_original(kept_boxes, clip=False)
            if self._specs["masks"].sampling == "torchvision":
                centred, paste_boxes = reference_roi.torchvision_paste_inputs(rows.dequantize(), paste_boxes)
                rows = QTensor(centred, None)
            paste = cpath.paste_roi if self.path == "c" else reference_roi.paste_masks
            masks = tuple(paste(rows, paste_boxes, letterbox.orig_size))
        return Result(
            boxes=orig, scores=reference.scores_from_raw(raw_kept, options.score_activation), class_ids=cls,
            masks=masks, class_names=self.manifest.classes, image_size=letterbox.orig_size, nonfinite=nonfinite,
        )


FAMILY = RoiFamily()
