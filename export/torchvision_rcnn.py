"""torchvision Mask R-CNN -> an exportable ``roi`` model: the graph cut after ``roi_heads``.

:class:`RoiCut` runs a user's ``torchvision.models.detection.MaskRCNN``
(ResNet-50-FPN v1/v2, MobileNetV3-FPN, any backbone) from its resized,
normalized image to what an edge runtime wants, calling torchvision's own
modules in their eval order: ``transform.batch_images`` (zero padding to
``size_divisible``), ``backbone``, ``rpn``, the box branch with
``roi_heads.postprocess_detections`` (box decoding, score threshold, per-class
NMS, top ``detections_per_img``) and the mask branch's ``(N, C, M, M)`` logits,
of which the detected class's map is kept. torchvision's ``maskrcnn_inference``
sigmoid and ``paste_masks_in_image`` are left to the runtime (C paste,
``sampling: "torchvision"``); the resize and normalization of its
``GeneralizedRCNNTransform`` go into the manifest (``input.shortest_edge``,
``mean``, ``std``) and run in the runtime's preprocessor.

Outputs (``N`` varies per image): ``boxes`` ``(N, 4)`` float32 XYXY in input
pixels, ``scores`` ``(N,)`` float32 probabilities, ``labels`` ``(N,)`` int64
zero-based classes (torchvision's label minus one: its 0 is background),
``mask_logits`` ``(N, 1, M, M)`` float32.

ONNX pitfalls of torchvision detection models, and what is done here:

* Input size. torchvision pads each image to a multiple of 32 and clips
  proposals and boxes to the *unpadded* resized size; a fixed-size input
  (padding to one canvas) changes anchors, proposal clipping and border
  features, so outputs drift from torchvision's. The ONNX input therefore has
  dynamic height and width (the resized image, at most ``max_size`` per side),
  the padding happens in the graph and the clip size is the input's shape.
* The dynamo exporter cannot trace the data-dependent detection count (NMS,
  ``torch.where``); the TorchScript exporter (``dynamo=False``) is used, where
  torchvision has ONNX-specific code paths (``_onnx_batch_images``,
  ``_onnx_clip_boxes_to_image``, ``batched_nms`` as ``NonMaxSuppression``).
* ``RoIAlign`` exports with ``aligned=False`` semantics (``output_half_pixel``),
  which needs opset >= 16; the pinned opset is 18.
* TFLite: litert-torch converts through ``torch.export``, which refuses the
  data-dependent detection count (``GuardOnDataDependentSymNode`` in
  ``batched_nms``, torchvision 0.29.1 / litert-torch 0.10, tried on this
  model); ``tflite*`` formats are refused before any work
  (:attr:`RoiCut.unsupported_converters`).
* int8: ``onnx-int8`` fails in onnxruntime's ``quant_pre_process`` (symbolic
  shape inference cannot finish the graph; tried on this model, 9 minutes to
  fail on this machine), so it is refused up front too and the model stays
  float.
* Untrained (randomly initialised) models give nearly tied scores: NMS and
  top-k orders then differ between libraries at float rounding. Parity is
  checked on a trained model (scores apart).

The exporter's ``module:function`` may return a bare torchvision ``MaskRCNN``
(``--weights`` then loads its state dict); :func:`maskrcnn_spec` writes the
manifest side.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from edgeseg.manifest import ShortestEdge, Thresholds
from export.spec import ModelSpec

log = logging.getLogger(__name__)

OUTPUT_NAMES = ("boxes", "scores", "labels", "mask_logits")
OUTPUT_ROLES = ("boxes", "scores", "labels", "masks")


class RoiCut(nn.Module):
    """A torchvision ``MaskRCNN`` from resized normalized image to detections + per-ROI mask logits.

    Args:
        model: ``torchvision.models.detection.MaskRCNN`` (any backbone), put in eval mode.
    """

    #: Converter module -> why it cannot convert this model (asked by the exporter's preflight).
    unsupported_converters = {
        "export.formats.tflite": "litert-torch converts through torch.export, which cannot trace Mask R-CNN's "
        "data-dependent detection count (GuardOnDataDependentSymNode in torchvision's batched_nms); "
        "export onnx",
        "export.formats.onnx_int8": "onnxruntime's quantization pre-processing gives up on Mask R-CNN's graph "
        "('Incomplete symbolic shape inference' in quant_pre_process, onnxruntime 1.32, after minutes; the dynamic "
        "detection count defeats it); the model stays float: export onnx",
    }

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.eval()  # the wrapper too: exporters restore the wrapper's mode, recursively

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``images`` ``(1, 3, h, w)`` float32, normalized and resized as torchvision's transform does."""
        from torchvision.models.detection.image_list import ImageList

        m, heads = self.model, self.model.roi_heads
        sizes = [(images.shape[-2], images.shape[-1])]
        batched = m.transform.batch_images([images[0]], size_divisible=m.transform.size_divisible)
        image_list = ImageList(batched, sizes)
        features = m.backbone(batched)
        proposals, _ = m.rpn(image_list, features)
        box_features = heads.box_head(heads.box_roi_pool(features, proposals, sizes))
        class_logits, box_regression = heads.box_predictor(box_features)
        boxes, scores, labels = heads.postprocess_detections(class_logits, box_regression, proposals, sizes)
        mask_features = heads.mask_head(heads.mask_roi_pool(features, boxes, sizes))
        mask_logits = heads.mask_predictor(mask_features)
        picked = mask_logits[torch.arange(labels[0].shape[0]), labels[0]][:, None]
        return boxes[0], scores[0], labels[0] - 1, picked

    def export_onnx(self, path: Path, opset: int) -> None:
        """Writes the ONNX file: TorchScript exporter, dynamic input size and detection count."""
        side = int(self.model.transform.max_size)
        example = torch.rand(1, 3, side, side)
        dynamic = {"images": {2: "height", 3: "width"}} | {name: {0: "detections"} for name in OUTPUT_NAMES}
        torch.onnx.export(self, (example,), str(path), dynamo=False, opset_version=opset, input_names=["images"],
                          output_names=list(OUTPUT_NAMES), dynamic_axes=dynamic, do_constant_folding=True)


def maskrcnn_spec(model: nn.Module, class_names: tuple[str, ...], *, name: str = "maskrcnn",
                  source: str = "") -> ModelSpec:
    """The :class:`ModelSpec` of a torchvision ``MaskRCNN``: its transform and thresholds in manifest terms.

    Args:
        model: The torchvision model (its ``transform`` and ``roi_heads`` settings are read).
        class_names: Names of classes 1..C-1 (torchvision's class 0 is background).
        name: Model name in the manifest.
        source: Provenance (weights file).
    """
    t, heads = model.transform, model.roi_heads
    num_classes = heads.box_predictor.cls_score.out_features
    if len(class_names) != num_classes - 1:
        raise ValueError(f"the model has {num_classes} classes with background, so {num_classes - 1} names are "
                         f"needed, got {len(class_names)}: {list(class_names)}")
    if getattr(t, "fixed_size", None) is not None:
        raise ValueError(f"models with transform.fixed_size {t.fixed_size} are not supported (min/max size resize only)")
    min_size, max_size = int(t.min_size[-1]), int(t.max_size)
    return ModelSpec(
        name=name,
        family="roi",
        imgsz=(max_size, max_size),
        class_names=tuple(class_names),
        output_names=OUTPUT_NAMES,
        output_roles=OUTPUT_ROLES,
        box_encoding="xyxy",
        score_activation="none",
        mean=tuple(float(v) for v in t.image_mean),
        std=tuple(float(v) for v in t.image_std),
        thresholds=Thresholds(score=float(heads.score_thresh), score_strict=True, nms=False,
                              max_detections=int(heads.detections_per_img)),
        source=source,
        shortest_edge=ShortestEdge(min_size=min_size, max_size=max_size, size_divisible=int(t.size_divisible)),
        mask_sampling="torchvision",
    )


def is_maskrcnn(model: object) -> bool:
    """Whether ``model`` is a torchvision ``MaskRCNN`` (imports torchvision only when it is a module)."""
    if not isinstance(model, nn.Module):
        return False
    from torchvision.models.detection import MaskRCNN

    return isinstance(model, MaskRCNN)


def load_weights(model: nn.Module, weights: str | Path) -> None:
    """Loads a state dict (``.safetensors``, or a ``torch.save`` file read with ``weights_only=True``)."""
    path = Path(weights)
    if not path.is_file():
        raise ValueError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
        state = state.get("model", state) if isinstance(state, dict) else state
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"weights {path} do not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}")


def wrap(model: nn.Module, *, weights: str | Path | None, class_names: tuple[str, ...] | None,
         name: str) -> tuple[RoiCut, ModelSpec]:
    """``(RoiCut, ModelSpec)`` of a user's torchvision ``MaskRCNN``, weights loaded."""
    if weights is not None:
        load_weights(model, weights)
    else:
        log.warning("no --weights given: exporting the model's weights as its function built them")
    if class_names is None:
        n = model.roi_heads.box_predictor.cls_score.out_features - 1
        class_names = tuple(f"class{i}" for i in range(1, n + 1))
    return RoiCut(model), maskrcnn_spec(model, class_names, name=name, source=str(weights or ""))
