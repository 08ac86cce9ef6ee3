"""Import source for models exported by Ultralytics (YOLOv5/v8/11-seg, YOLO26-seg), without Ultralytics.

What Ultralytics writes, learned from its exports (AGPL-3.0: nothing of its
code is here):

* metadata: ONNX ``metadata_props`` / a zip with ``metadata.json`` appended to
  a ``.tflite`` file; values are Python-literal strings (``"{0: 'box'}"``,
  ``"[320, 320]"``, ``"True"``), parsed with :func:`ast.literal_eval` (literals
  only, size-limited) or JSON. Keys read: ``task``, ``names``, ``imgsz``,
  ``stride``, ``batch``, ``channels``, ``end2end``, ``args``, ``license``,
  ``version``, ``author``, ``description``.
* segmentation outputs: a prototype map ``(1, nm, H/4, W/4)`` (``NCHW`` in
  8.4's LiteRT exports too; ``NHWC`` in older onnx2tf ones) and one detection tensor, either per anchor ``(1, 4 + nc + nm, A)``
  with ``cx, cy, w, h`` (input pixels; fractions of the input in TFLite),
  sigmoid class probabilities and ``nm`` mask coefficients, or, end-to-end
  (YOLO26, ``nms=True`` exports), per detection ``(1, D, 6 + nm)``: ``x1, y1,
  x2, y2, score, class, coefficients``. YOLOv5-seg (the ``yolov5`` repository)
  has rows ``(1, 3A, 5 + nc + nm)`` with an objectness column after the box.
* ``retina_masks`` sampling: prototypes upsampled until the letterbox crop
  falls on whole pixels, then one interpolation of the content: the bundle's
  prototype output says ``sampling: ultralytics`` (:mod:`edgeseg.decode.sampling`).
* ``predict`` defaults, which the bundle's thresholds reproduce: score
  ``> 0.25``, class-aware NMS at IoU 0.7, up to 300 detections, 30000
  candidates into NMS, letterbox padded with 114, RGB scaled to 0..1, and a
  detection whose mask ends empty is dropped. YOLOv5's ``segment/predict.py``
  uses IoU 0.45 and up to 1000 detections.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from edgeseg.imports.base import ImportOptions, bundle_name, precision_of, provenance
from edgeseg.imports.model_file import ImportFailed, ModelFile, TensorInfo
from edgeseg.manifest import SCHEMA_VERSION, InputSpec, Letterbox, Manifest, OutputSpec, Thresholds

#: Longest metadata value parsed (a class list of thousands of names fits easily).
_MAX_VALUE = 1 << 18
_PREDICT = Thresholds(score=0.25, iou=0.7, max_detections=300, pre_nms_topk=30000, class_agnostic=False,
                      score_strict=True, nms=True, drop_empty_masks=True)
_PREDICT_V5 = Thresholds(score=0.25, iou=0.45, max_detections=1000, pre_nms_topk=30000, class_agnostic=False,
                         score_strict=True, nms=True, drop_empty_masks=True)
_TASK_FLAGS = {"detect": "a detection-only model (no masks)", "pose": "a pose model", "obb": "an oriented-box model",
               "classify": "a classifier", "semantic": "a semantic segmentation model"}


def parse_value(key: str, text: str):
    """One metadata value: a Python literal or JSON, never evaluated as code."""
    if not isinstance(text, str):
        return text
    if len(text) > _MAX_VALUE:
        raise ImportFailed(f"metadata {key!r} is {len(text)} characters long; refusing to parse it")
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        pass
    import json

    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text


@dataclass(frozen=True)
class Layout:
    """How the detection tensor of one model is laid out (see the module docstring)."""

    kind: str  # "anchors" (v8/11), "end2end" (YOLO26 / nms=True), "yolov5" (objectness)
    rows_first: bool  # (1, rows, C) rather than (1, C, rows)
    nc: int
    nm: int


class UltralyticsSource:
    """Turns an Ultralytics-exported ``.onnx`` / ``.tflite`` into a ``proto`` manifest."""

    name = "ultralytics"
    licence_default = "AGPL-3.0"

    def detect(self, model: ModelFile) -> bool:
        meta = model.metadata
        return "ultralytics" in meta.get("author", "").lower() or {"names", "stride"} <= set(meta)

    def metadata(self, model: ModelFile) -> dict:
        return {k: parse_value(k, v) for k, v in model.metadata.items()}

    def manifest(self, model: ModelFile, opts: ImportOptions) -> Manifest:
        meta = self.metadata(model)
        task = opts.task or meta.get("task")
        if task is None and "names" not in meta:
            raise ImportFailed(f"{model.path}: no Ultralytics metadata (task, names, imgsz); pass --task segment "
                               "--names a,b,... --imgsz H,W")
        if task not in (None, "segment"):
            what = _TASK_FLAGS.get(str(task), f"task {task!r}")
            raise ImportFailed(f"{model.path} is {what} (metadata task {task!r}); edgeseg imports instance "
                               "segmentation models (task 'segment') only")
        if len(model.inputs) != 1:
            raise ImportFailed(f"{model.path} has {len(model.inputs)} inputs {[i.name for i in model.inputs]}, expected one image")
        batch = meta.get("batch", 1)
        if batch not in (1, None):
            raise ImportFailed(f"{model.path} was exported with batch {batch}; export it with batch=1")
        channels = meta.get("channels", 3)
        if channels != 3:
            raise ImportFailed(f"{model.path} takes {channels}-channel images; edgeseg feeds 3-channel colour images")
        inp = model.inputs[0]
        layout = _input_layout(inp, model.format)
        height, width = _input_size(model, inp, layout, meta, opts)
        protos, det = _split_outputs(model)
        names = _names(meta, opts, model)
        lay = _layout(model, det, protos, (height, width), names, meta, opts)
        if names is None:
            names = tuple(str(i) for i in range(lay.nc))
        if len(names) != lay.nc:
            raise ImportFailed(f"{model.path}: the output has {lay.nc} class channels but {len(names)} class names were given")
        outputs = _outputs(model, det, protos, lay)
        shape = (1, 3, height, width) if layout == "NCHW" else (1, height, width, 3)
        if inp.dtype not in ("float32", "float16", "uint8", "int8"):
            raise ImportFailed(f"{model.path}: input {inp.name!r} is {inp.dtype}; expected float32, float16, uint8 or int8")
        return Manifest(
            name=bundle_name(model.path, opts),
            family="proto",
            format=model.format,
            precision=opts.precision or precision_of(model),
            model=model.path.name,
            input=InputSpec(name=inp.name, shape=shape, layout=layout, dtype=inp.dtype, color="RGB",
                            scale=1.0 / 255.0, letterbox=Letterbox(pad_value=114, center=True), quant=inp.quant),
            outputs=outputs,
            classes=names,
            anchors=None,
            thresholds=_PREDICT_V5 if lay.kind == "yolov5" else
            Thresholds(**{**_PREDICT.__dict__, "nms": lay.kind != "end2end"}),
            provenance=provenance(
                self.name, model,
                # SPDX id first ("AGPL-3.0 License (https://...)" -> "AGPL-3.0"); the full text stays in upstream
                str(meta.get("license") or self.licence_default).split()[0],
                {k: v for k, v in meta.items() if k in
                 ("author", "version", "date", "description", "docs", "license", "task", "stride", "end2end")},
                layout=lay.kind),
            schema_version=SCHEMA_VERSION,
        )


def _input_layout(inp: TensorInfo, fmt: str) -> str:
    """``NCHW`` or ``NHWC`` from where the 3 colour channels sit (LiteRT exports of 8.4 keep NCHW)."""
    s = inp.shape
    if len(s) == 4 and s[1] == 3 and s[3] != 3:
        return "NCHW"
    if len(s) == 4 and s[3] == 3 and s[1] != 3:
        return "NHWC"
    return "NHWC" if fmt == "tflite" else "NCHW"


def _input_size(model: ModelFile, inp: TensorInfo, layout: str, meta: dict, opts: ImportOptions) -> tuple[int, int]:
    if len(inp.shape) != 4:
        raise ImportFailed(f"{model.path}: input {inp.name!r} has shape {list(inp.shape)}, expected 4-D {layout}")
    c_axis, hw = (1, (2, 3)) if layout == "NCHW" else (3, (1, 2))
    if inp.shape[c_axis] not in (3, None):
        raise ImportFailed(f"{model.path}: input {inp.name!r} shape {list(inp.shape)} is not {layout} with 3 channels")
    declared = tuple(inp.shape[a] for a in hw)
    size = opts.imgsz or _pair(meta.get("imgsz"))
    if all(declared):
        if size is not None and tuple(size) != declared:
            raise ImportFailed(f"{model.path}: input is fixed at {declared[0]}x{declared[1]} (HxW) but imgsz says "
                               f"{size[0]}x{size[1]}")
        return declared  # type: ignore[return-value]
    if size is None:
        raise ImportFailed(f"{model.path}: input {inp.name!r} has a dynamic size {list(inp.shape)} and no imgsz "
                           "metadata; pass --imgsz H,W")
    return int(size[0]), int(size[1])


def _pair(value) -> tuple[int, int] | None:
    if isinstance(value, int):
        return value, value
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) and v > 0 for v in value):
        return int(value[0]), int(value[1])
    return None


def _names(meta: dict, opts: ImportOptions, model: ModelFile) -> tuple[str, ...] | None:
    if opts.names is not None:
        return tuple(opts.names)
    names = meta.get("names")
    if names is None:
        return None
    if isinstance(names, dict):
        if all(isinstance(k, str) and k.isdigit() for k in names):  # JSON metadata (TFLite): "0", "1", ...
            names = {int(k): v for k, v in names.items()}
        keys = sorted(names)
        if keys != list(range(len(keys))):
            raise ImportFailed(f"{model.path}: metadata names have ids {keys[:10]}..., expected 0..{len(keys) - 1}; pass --names")
        names = [names[k] for k in keys]
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) and n for n in names):
        raise ImportFailed(f"{model.path}: metadata names {str(names)[:80]!r} are not a list of class names; pass --names")
    return tuple(names)


def _split_outputs(model: ModelFile) -> tuple[TensorInfo, TensorInfo]:
    four = [o for o in model.outputs if len(o.shape) == 4]
    three = [o for o in model.outputs if len(o.shape) == 3]
    if len(model.outputs) == 1 and three:
        raise ImportFailed(f"{model.path} has one output {model.outputs[0].name!r} {list(model.outputs[0].shape)} and "
                           "no prototype map: a detection-only model; edgeseg imports segmentation models")
    if len(four) != 1 or len(three) != 1 or len(model.outputs) != 2:
        found = [(o.name, list(o.shape)) for o in model.outputs]
        raise ImportFailed(f"{model.path}: expected a detection tensor (3-D) and a prototype map (4-D), found {found}")
    return four[0], three[0]


def _proto_geometry(protos: TensorInfo, size: tuple[int, int], fmt: str) -> tuple[int, str]:
    """``(nm, layout)`` of the prototype map, from where its spatial dims sit."""
    s = protos.shape
    if fmt == "tflite" and s[3] is not None and (s[1] is None or s[1] * 4 == size[0]):
        return int(s[3]), "NHWC"
    if s[1] is not None and (s[2] is None or s[2] * 4 == size[0]):
        return int(s[1]), "NCHW"
    if s[3] is not None:
        return int(s[3]), "NHWC"
    raise ImportFailed(f"prototype map {protos.name!r} {list(s)}: cannot tell its channel count")


def _anchor_count(size: tuple[int, int], strides: tuple[int, ...]) -> int:
    return sum((size[0] // s) * (size[1] // s) for s in strides)


def _layout(model: ModelFile, det: TensorInfo, protos: TensorInfo, size: tuple[int, int], names, meta: dict,
            opts: ImportOptions) -> Layout:
    nm, _ = _proto_geometry(protos, size, model.format)
    _, d1, d2 = det.shape
    max_stride = meta.get("stride", 32)
    max_stride = int(max(max_stride) if isinstance(max_stride, (list, tuple)) else max_stride)
    strides = tuple(s for s in (8, 16, 32, 64) if s <= max_stride)
    anchors = _anchor_count(size, strides)
    end2end = opts.end2end if opts.end2end is not None else bool(meta.get("end2end", False)) or bool(
        isinstance(meta.get("args"), dict) and meta["args"].get("nms"))
    nc_known = None if names is None else len(names)
    if end2end or (d2 == 6 + nm and d1 not in (None, anchors, 3 * anchors)):
        if d2 != 6 + nm:
            raise ImportFailed(f"{model.path}: end-to-end output {det.name!r} {list(det.shape)} should have 6 + {nm} "
                               "columns (x1 y1 x2 y2 score class + coefficients)")
        if names is None:
            raise ImportFailed(f"{model.path}: an end-to-end output does not say how many classes there are; pass --names")
        return Layout("end2end", True, nc_known, nm)
    if d2 == 3 * anchors or d1 == 3 * anchors:  # YOLOv5: three anchor boxes per cell, rows first
        rows_first = d1 == 3 * anchors
        c = d2 if rows_first else d1
        nc = c - 5 - nm
        if nc < 1 or (nc_known is not None and nc != nc_known):
            raise ImportFailed(f"{model.path}: YOLOv5-style output {list(det.shape)} does not fit 5 + classes + {nm}")
        return Layout("yolov5", rows_first, nc, nm)
    if d2 == anchors or d1 == anchors:
        rows_first = d1 == anchors and d2 != anchors
        c = d2 if rows_first else d1
        nc = c - 4 - nm
        if nc < 1 or (nc_known is not None and nc != nc_known):
            raise ImportFailed(f"{model.path}: output {det.name!r} {list(det.shape)} does not fit 4 box + "
                               f"{nc_known if nc_known is not None else 'nc'} class + {nm} coefficient channels")
        return Layout("anchors", rows_first, nc, nm)
    raise ImportFailed(f"{model.path}: output {det.name!r} {list(det.shape)} has neither {anchors} anchors (strides "
                       f"{list(strides)} at {size[0]}x{size[1]}) nor end-to-end rows of 6 + {nm}; pass --imgsz or "
                       "--end2end if the metadata is wrong")


def _outputs(model: ModelFile, det: TensorInfo, protos: TensorInfo, lay: Layout) -> tuple[OutputSpec, ...]:
    layout = "BAC" if lay.rows_first else "BCA"
    normalized = model.format == "tflite" or None
    q = det.quant
    if lay.kind == "end2end":
        cols = {"boxes": (0, 4), "scores": (4, 5), "labels": (5, 6), "coeffs": (6, 6 + lay.nm)}
        extra = {"boxes": {"encoding": "xyxy", "normalized": normalized}, "scores": {"activation": "none"}}
    elif lay.kind == "yolov5":
        cols = {"boxes": (0, 4), "objectness": (4, 5), "scores": (5, 5 + lay.nc),
                "coeffs": (5 + lay.nc, 5 + lay.nc + lay.nm)}
        extra = {"boxes": {"encoding": "cxcywh", "normalized": normalized}, "scores": {"activation": "none"}}
    else:
        cols = {"boxes": (0, 4), "scores": (4, 4 + lay.nc), "coeffs": (4 + lay.nc, 4 + lay.nc + lay.nm)}
        extra = {"boxes": {"encoding": "cxcywh", "normalized": normalized}, "scores": {"activation": "none"}}
    outs = [OutputSpec(name=det.name, role=role, layout=layout, channels=ch, quant=q, **extra.get(role, {}))
            for role, ch in cols.items()]
    outs.append(OutputSpec(name=protos.name, role="protos", layout=_proto_layout(protos, model.format, lay.nm),
                           quant=protos.quant, sampling="ultralytics"))
    return tuple(outs)


def _proto_layout(protos: TensorInfo, fmt: str, nm: int) -> str:
    s = protos.shape
    if s[1] == nm and (fmt != "tflite" or s[3] != nm):
        return "NCHW"
    return "NHWC"


SOURCE = UltralyticsSource()
