"""Import source for Mask2Former exported from Hugging Face transformers to ONNX, without transformers.

What such an export looks like (``export/transformers_onnx.py`` writes it;
other exporters that keep transformers' output names fit too):

* outputs named as the model's output fields: ``class_queries_logits``
  ``(1, Q, C + 1)`` (the last column is "no object") and
  ``masks_queries_logits`` ``(1, Q, H/4, W/4)``; one input
  ``pixel_values`` ``(1, 3, H, W)``;
* optional metadata (ONNX ``metadata_props``, JSON values):
  ``transformers_model`` (the class name), ``id2label`` (``{"0": "cat", ...}``),
  ``image_size`` (``[H, W]``), ``image_mean`` / ``image_std``, ``licence``.

The bundle reproduces ``Mask2FormerImageProcessor`` with ``size={"height": H,
"width": W}`` and ``post_process_instance_segmentation`` defaults: RGB, the
whole image stretched to ``H x W`` (no aspect kept, no padding when ``H`` and
``W`` are multiples of 32) with torchvision's antialiased uint8 bilinear (``torchvision-bilinear``, :mod:`edgeseg.resample`), scaled by 1/255
and normalized with ImageNet's mean and std; instance threshold 0.5
(``score >= 0.5``), up to ``Q`` instances, no NMS, empty masks dropped, and
the library's masks (``sampling: transformers`` of the ``mask_logits``
output; set it to ``exact`` in the manifest for masks rendered from the
logits at the original resolution, see README).
"""

from __future__ import annotations

import json

from edgeseg.imports.base import ImportOptions, provenance, query_manifest
from edgeseg.imports.model_file import ImportFailed, ModelFile
from edgeseg.manifest import Manifest, OutputSpec

CLASS_OUTPUT, MASK_OUTPUT = "class_queries_logits", "masks_queries_logits"
#: ``IMAGENET_DEFAULT_MEAN`` / ``_STD`` of transformers, in 0..1 units.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
#: ``post_process_instance_segmentation``'s default threshold.
DEFAULT_THRESHOLD = 0.5


def _json(meta: dict, key: str):
    text = meta.get(key)
    if text is None:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ImportFailed(f"metadata {key!r} is not JSON: {text[:80]!r}") from exc


class TransformersSource:
    """Turns a transformers Mask2Former ONNX export into a ``query`` manifest."""

    name = "transformers"
    licence_default = "Apache-2.0"

    def detect(self, model: ModelFile) -> bool:
        return {CLASS_OUTPUT, MASK_OUTPUT} <= {o.name for o in model.outputs}

    def manifest(self, model: ModelFile, opts: ImportOptions) -> Manifest:
        meta = model.metadata
        outs = {o.name: o for o in model.outputs}
        if not self.detect(model):
            raise ImportFailed(f"{model.path}: expected outputs {CLASS_OUTPUT!r} and {MASK_OUTPUT!r}, found {sorted(outs)}")
        if len(model.inputs) != 1:
            raise ImportFailed(f"{model.path} has {len(model.inputs)} inputs {[i.name for i in model.inputs]}; export "
                               "Mask2Former with pixel_values only (no pixel_mask)")
        inp = model.inputs[0]
        if len(inp.shape) != 4 or inp.shape[1] not in (3, None):
            raise ImportFailed(f"{model.path}: input {inp.name!r} has shape {list(inp.shape)}, expected (1, 3, H, W)")
        size = opts.imgsz or _json(meta, "image_size")
        declared = tuple(inp.shape[2:])
        if all(declared):
            if size is not None and tuple(size) != declared:
                raise ImportFailed(f"{model.path}: input is fixed at {declared[0]}x{declared[1]} but image_size says {size}")
            size = declared
        if size is None:
            raise ImportFailed(f"{model.path}: input {inp.name!r} has a dynamic size and no image_size metadata; pass --imgsz H,W")
        cls_out, mask_out = outs[CLASS_OUTPUT], outs[MASK_OUTPUT]
        if len(cls_out.shape) != 3 or len(mask_out.shape) != 4:
            raise ImportFailed(f"{model.path}: expected {CLASS_OUTPUT} (1, Q, C + 1) and {MASK_OUTPUT} (1, Q, h, w), got "
                               f"{list(cls_out.shape)} and {list(mask_out.shape)}")
        names = _names(meta, opts, cls_out.shape[2], model)
        queries = cls_out.shape[1] or 100
        mean = tuple(_json(meta, "image_mean") or IMAGENET_MEAN)
        std = tuple(_json(meta, "image_std") or IMAGENET_STD)
        return query_manifest(
            model, opts, size=size, names=names, queries=queries, mean=mean, std=std, resample="torchvision-bilinear",
            outputs=(OutputSpec(name=CLASS_OUTPUT, role="class_logits", layout="BAC"),
                     OutputSpec(name=MASK_OUTPUT, role="mask_logits", layout="NCHW", sampling="transformers")),
            thresholds={"score": DEFAULT_THRESHOLD, "score_strict": False, "drop_empty_masks": True},
            provenance=provenance(self.name, model, str(meta.get("licence") or self.licence_default),
                                  {k: v for k, v in meta.items() if k in ("transformers_model", "transformers_version")}),
        )


def _names(meta: dict, opts: ImportOptions, columns: int | None, model: ModelFile) -> tuple[str, ...]:
    if opts.names is not None:
        names = tuple(opts.names)
    else:
        id2label = _json(meta, "id2label")
        if id2label is None:
            if columns is None:
                raise ImportFailed(f"{model.path}: no id2label metadata and a dynamic class count; pass --names")
            names = tuple(str(i) for i in range(columns - 1))
        else:
            keys = sorted(int(k) for k in id2label)
            if keys != list(range(len(keys))):
                raise ImportFailed(f"{model.path}: id2label has ids {keys[:10]}, expected 0..{len(keys) - 1}; pass --names")
            names = tuple(str(id2label[str(k)]) for k in keys)
    if columns is not None and len(names) != columns - 1:
        raise ImportFailed(f"{model.path}: {CLASS_OUTPUT} has {columns} columns (classes + no object) but "
                           f"{len(names)} class names were given")
    return names


SOURCE = TransformersSource()
