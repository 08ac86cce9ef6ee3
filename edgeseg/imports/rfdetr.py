"""Import source for RF-DETR-Seg exported by rfdetr to ONNX (``RFDETRSeg*.export()``), without rfdetr.

What rfdetr 1.11's ONNX export of a segmentation model looks like (read in
``rfdetr/export/prepare.py`` and checked on the committed fixture):

* one input ``input`` ``(1, 3, R, R)`` at the model's square resolution
  (a static graph unless exported with ``dynamic_batch``);
* outputs ``dets`` ``(1, Q, 4)`` (boxes ``cx, cy, w, h`` as fractions of the
  input), ``labels`` ``(1, Q, K)`` (class logits, ``K = num_classes + 1``
  columns, scored by a sigmoid: no "no object" column) and ``masks`` ``(1, Q,
  R/4, R/4)`` (mask logits over the whole input);
* no class names in the file (rfdetr keeps them in its checkpoint): they come
  from ``--names`` (``K`` names, or ``K - 1`` and the extra slot that rfdetr's
  builder adds is named ``class<K-1>``), else the column numbers.

The bundle reproduces ``RFDETR.predict``: RGB scaled to 0..1, the whole
image stretched to ``R x R`` with torch's bilinear on float pixels without
antialiasing (``torch-bilinear``, :mod:`edgeseg.preprocess`), ImageNet mean
and std; then rfdetr's ``PostProcess`` (:mod:`edgeseg.decode.detr_queries`):
the top ``Q`` (query, class) pairs by sigmoid (``num_select`` equals ``Q``
in every RF-DETR-Seg config), kept when ``score > 0.5`` (``predict``'s
default threshold, strict), the model's boxes, masks rendered from the
logits at the original resolution (bilinear, ``> 0``; what rfdetr does with
``F.interpolate``), no NMS, empty masks kept.
"""

from __future__ import annotations

from edgeseg.imports.base import ImportOptions, provenance, query_manifest
from edgeseg.imports.model_file import ImportFailed, ModelFile
from edgeseg.manifest import Manifest, OutputSpec

BOX_OUTPUT, CLASS_OUTPUT, MASK_OUTPUT = "dets", "labels", "masks"
#: ``RFDETR.means`` / ``RFDETR.stds``, in 0..1 units.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
#: ``RFDETR.predict``'s default threshold (kept when ``score > threshold``).
DEFAULT_THRESHOLD = 0.5


class RFDETRSource:
    """Turns an rfdetr RF-DETR-Seg ONNX export into a ``query`` manifest with sigmoid scoring."""

    name = "rfdetr"
    licence_default = "Apache-2.0"

    def detect(self, model: ModelFile) -> bool:
        return {BOX_OUTPUT, CLASS_OUTPUT, MASK_OUTPUT} <= {o.name for o in model.outputs}

    def manifest(self, model: ModelFile, opts: ImportOptions) -> Manifest:
        outs = {o.name: o for o in model.outputs}
        if not self.detect(model):
            raise ImportFailed(f"{model.path}: expected outputs {[BOX_OUTPUT, CLASS_OUTPUT, MASK_OUTPUT]} (an rfdetr "
                               f"segmentation export), found {sorted(outs)}")
        if len(model.inputs) != 1:
            raise ImportFailed(f"{model.path} has {len(model.inputs)} inputs {[i.name for i in model.inputs]}, expected one")
        inp = model.inputs[0]
        if len(inp.shape) != 4 or inp.shape[1] not in (3, None):
            raise ImportFailed(f"{model.path}: input {inp.name!r} has shape {list(inp.shape)}, expected (1, 3, R, R)")
        size = tuple(inp.shape[2:]) if all(inp.shape[2:]) else opts.imgsz
        if size is None:
            raise ImportFailed(f"{model.path}: input {inp.name!r} has a dynamic size; pass --imgsz H,W")
        boxes, logits, masks = outs[BOX_OUTPUT], outs[CLASS_OUTPUT], outs[MASK_OUTPUT]
        if len(boxes.shape) != 3 or boxes.shape[2] not in (4, None) or len(logits.shape) != 3 or len(masks.shape) != 4:
            raise ImportFailed(f"{model.path}: expected {BOX_OUTPUT} (1, Q, 4), {CLASS_OUTPUT} (1, Q, K) and "
                               f"{MASK_OUTPUT} (1, Q, h, w), got {list(boxes.shape)}, {list(logits.shape)} and "
                               f"{list(masks.shape)}")
        names = _names(opts, logits.shape[2], model)
        queries = logits.shape[1] or 100
        return query_manifest(
            model, opts, size=size, names=names, queries=queries, mean=IMAGENET_MEAN, std=IMAGENET_STD,
            resample="torch-bilinear",
            outputs=(OutputSpec(name=CLASS_OUTPUT, role="class_logits", layout="BAC", activation="sigmoid"),
                     OutputSpec(name=MASK_OUTPUT, role="mask_logits", layout="NCHW", sampling="exact"),
                     OutputSpec(name=BOX_OUTPUT, role="boxes", layout="BAC", encoding="cxcywh", normalized=True)),
            thresholds={"score": DEFAULT_THRESHOLD, "score_strict": True, "drop_empty_masks": False},
            provenance=provenance(self.name, model, self.licence_default,
                                  {k: v for k, v in model.metadata.items() if k.startswith("rfdetr")}),
        )


def _names(opts: ImportOptions, columns: int | None, model: ModelFile) -> tuple[str, ...]:
    """One name per logit column: ``--names`` (``K`` or ``K - 1`` of them) or the column numbers."""
    if columns is None:
        if opts.names is None:
            raise ImportFailed(f"{model.path}: {CLASS_OUTPUT} has a dynamic class count; pass --names")
        return tuple(opts.names)
    if opts.names is None:
        return tuple(str(i) for i in range(columns))
    names = tuple(opts.names)
    if len(names) == columns - 1:  # rfdetr's builder adds one slot beyond num_classes
        return (*names, f"class{columns - 1}")
    if len(names) != columns:
        raise ImportFailed(f"{model.path}: {CLASS_OUTPUT} has {columns} columns (num_classes + 1) but {len(names)} "
                           f"class names were given; pass {columns - 1} or {columns}")
    return names


SOURCE = RFDETRSource()
