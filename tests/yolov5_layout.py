"""A YOLOv5-seg-layout model made from a YOLOv8-seg export by graph surgery (onnx.helper).

The Ultralytics package no longer builds YOLOv5-seg (anchor-based, with an
objectness column); its export layout is documented by the ``yolov5``
repository: ``output0`` (1, 3A, 5 + nc + nm) rows of ``cx cy w h``, objectness,
class probabilities, mask coefficients, plus the prototype map, and metadata
with only ``stride`` and ``names``. This re-expresses a YOLOv8-seg model in
that layout without changing what it detects:

* objectness = the row's best class probability, class probabilities
  divided by it, so objectness x class probability is the YOLOv8 score
  (up to float rounding);
* three rows per anchor, as YOLOv5 has three anchor boxes per cell: the
  original and two copies of its box with 0.6x and 0.3x the objectness,
  which class-aware NMS must suppress (IoU 1 with the original, or with
  whatever suppressed the original).

So the decoded detections must equal Ultralytics' ``predict`` of the YOLOv8
file at the same thresholds: the fixture's own truth.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def make_yolov5_layout(v8_path: Path, out_path: Path, nc: int) -> Path:
    """Writes the YOLOv5-layout model of the YOLOv8-seg ONNX ``v8_path`` (``nc`` classes)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(v8_path))
    g = model.graph
    det = next(o for o in g.output if len(o.type.tensor_type.shape.dim) == 3)
    c = det.type.tensor_type.shape.dim[1].dim_value
    a = det.type.tensor_type.shape.dim[2].dim_value
    old = det.name
    # the v8 tensor is renamed; the new output0 takes its place
    for node in g.node:
        node.output[:] = [f"{old}_v8" if o == old else o for o in node.output]

    def const(name, value):
        g.initializer.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(op, inputs, name, **attrs):
        g.node.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    t = node("Transpose", [f"{old}_v8"], "v5_rows", perm=[0, 2, 1])
    ax = const("v5_axis2", np.array([2], np.int64))
    box = node("Slice", [t, const("v5_s0", np.array([0], np.int64)), const("v5_e4", np.array([4], np.int64)), ax], "v5_box")
    cls = node("Slice", [t, const("v5_s4", np.array([4], np.int64)), const("v5_ec", np.array([4 + nc], np.int64)), ax],
               "v5_cls")
    mc = node("Slice", [t, const("v5_sc", np.array([4 + nc], np.int64)), const("v5_em", np.array([c], np.int64)), ax],
              "v5_mc")
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset >= 18:  # ReduceMax takes its axes as an input from opset 18 on
        obj = node("ReduceMax", [cls, const("v5_rax", np.array([2], np.int64))], "v5_obj", keepdims=1)
    else:
        obj = node("ReduceMax", [cls], "v5_obj", axes=[2], keepdims=1)
    safe = node("Max", [obj, const("v5_eps", np.array(1e-12, np.float32))], "v5_obj_safe")
    clsn = node("Div", [cls, safe], "v5_clsn")
    copies = []
    for k, objk in enumerate((1.0, 0.6, 0.3)):
        o = node("Mul", [obj, const(f"v5_os{k}", np.array(objk, np.float32))], f"v5_o{k}")
        copies.append(node("Concat", [box, o, clsn, mc], f"v5_row{k}", axis=2))
    node("Concat", copies, old, axis=1)
    kept = [o for o in g.output if o.name != old]
    del g.output[:]
    g.output.extend([helper.make_tensor_value_info(old, TensorProto.FLOAT, [1, 3 * a, c + 1]), *kept])
    meta = {p.key: p.value for p in model.metadata_props}
    del model.metadata_props[:]
    for key in ("stride", "names"):  # what YOLOv5's export stores
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=meta[key]))
    onnx.checker.check_model(model)
    onnx.save(model, str(out_path))
    return out_path
