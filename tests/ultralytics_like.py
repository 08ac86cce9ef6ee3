"""Small ONNX files with Ultralytics' export layouts and metadata, built with onnx.helper.

For the import source's refusals and edge cases (task, batch, dynamic sizes,
missing metadata). Parity with Ultralytics itself is tested on the committed
fixtures that Ultralytics made (tests/fixtures/ultralytics).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def make_model(
    path: Path,
    *,
    nc: int = 2,
    nm: int = 4,
    size: tuple[int, int] = (64, 64),
    metadata: dict[str, str] | None = None,
    layout: str = "anchors",
    dynamic: bool = False,
    protos: bool = True,
    seed: int = 0,
) -> Path:
    """Writes a model whose outputs are constants (plus 0 x the input) in the given layout.

    Args:
        layout: ``anchors`` ``(1, 4+nc+nm, A)``, ``end2end`` ``(1, 20, 6+nm)`` or
            ``yolov5`` ``(1, 3A, 5+nc+nm)``.
        dynamic: Input height and width dynamic.
        protos: Add the prototype output (``False``: a detection-only model).
    """
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    h, w = size
    a = sum((h // s) * (w // s) for s in (8, 16, 32))
    shape = {"anchors": (1, 4 + nc + nm, a), "end2end": (1, 20, 6 + nm), "yolov5": (1, 3 * a, 5 + nc + nm)}[layout]
    det = rng.uniform(0, 1, shape).astype(np.float32)
    outputs = [("output0", det)]
    if protos:
        outputs.append(("output1", rng.normal(size=(1, nm, h // 4, w // 4)).astype(np.float32)))
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
    ]
    inits = [numpy_helper.from_array(np.zeros((1,), np.float32), "zero")]
    for name, value in outputs:
        inits.append(numpy_helper.from_array(value, f"{name}_value"))
        nodes.append(helper.make_node("Add", [f"{name}_value", "nothing"], [name]))
    in_shape = [1, 3, "height" if dynamic else h, "width" if dynamic else w]
    graph = helper.make_graph(
        nodes, "ultralytics-like", [helper.make_tensor_value_info("images", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, list(v.shape)) for name, v in outputs],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    meta = {
        "author": "Ultralytics", "task": "segment", "stride": "32", "batch": "1",
        "imgsz": str([h, w]), "names": str({i: f"c{i}" for i in range(nc)}), "channels": "3",
        "end2end": str(layout == "end2end"), "license": "AGPL-3.0 License (https://ultralytics.com/license)",
    }
    meta.update(metadata or {})
    for k, v in meta.items():
        if v is not None:
            model.metadata_props.append(onnx.StringStringEntryProto(key=k, value=v))
    onnx.save(model, str(path))
    return path
