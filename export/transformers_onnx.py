"""Hugging Face transformers Mask2Former module -> ONNX that ``edgeseg import`` reads (``query`` family).

``export_mask2former(model, "m2f.onnx", (384, 384))`` traces
``Mask2FormerForUniversalSegmentation`` with one ``pixel_values`` input at a
fixed size and keeps the two outputs the runtime decodes under transformers'
own names (``class_queries_logits``, ``masks_queries_logits``), then writes
the facts the importer reads as ONNX metadata (:mod:`edgeseg.imports.transformers`):
``transformers_model``, ``id2label``, ``image_size``, ``image_mean``,
``image_std``. transformers itself is not a dependency of this module: the
caller builds or loads the model (the fixture script
``scripts/mask2former_fixtures.py`` does it from a config in a throwaway venv).

The wrapper handed to ``torch.onnx.export`` is in eval mode: the exporter
restores the training flag of the module it was given, recursively, and a
wrapper left in training mode would switch the model's dropout on after the
export (that, not the ONNX file, once made the two disagree by 1 %). Every
export is checked on a random input it was not traced on (:func:`check_parity`:
2e-7 on the fixture model).

One fix-up is hand-written: the multi-scale deformable attention of the pixel
decoder traces its sampling grid as float64, and onnxruntime's CPU
``GridSample`` has no float64 kernel ("Could not find an implementation for
GridSample"), so a ``Cast`` to float32 is inserted before each such grid
(the model computes in float32 anyway).
"""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import torch
from onnx import TensorProto, helper

#: Opset with ``GridSample`` (16+) that onnxruntime and the TFLite converters read.
OPSET = 17


class _Outputs(torch.nn.Module):
    """The model with ``pixel_values`` in and ``(class logits, mask logits)`` out."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(pixel_values=pixel_values)
        return out.class_queries_logits, out.masks_queries_logits


def cast_float64_grids(model: onnx.ModelProto) -> int:
    """Inserts a float32 ``Cast`` before every float64 ``GridSample`` grid; returns how many."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in (*inferred.graph.value_info, *inferred.graph.input)}
    nodes, fixed = [], 0
    for node in model.graph.node:
        if node.op_type == "GridSample" and types.get(node.input[1]) == TensorProto.DOUBLE:
            grid = node.input[1] + "_f32"
            nodes.append(helper.make_node("Cast", [node.input[1]], [grid], to=TensorProto.FLOAT, name=node.name + "_grid_f32"))
            node.input[1] = grid
            fixed += 1
        nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return fixed


def export_mask2former(
    model: torch.nn.Module,
    path: str | Path,
    image_size: tuple[int, int],
    *,
    image_mean: tuple[float, float, float] = (0.485, 0.456, 0.406),
    image_std: tuple[float, float, float] = (0.229, 0.224, 0.225),
    licence: str = "Apache-2.0",
) -> Path:
    """Exports a ``Mask2FormerForUniversalSegmentation`` to ONNX at a fixed input size.

    Args:
        model: The transformers module (eval mode is set here).
        path: The ``.onnx`` file to write.
        image_size: ``(H, W)`` the image processor resizes to (multiples of 32).
        image_mean: The processor's ``image_mean`` (0..1 units, RGB).
        image_std: The processor's ``image_std``.
        licence: SPDX id of the weights' licence.

    Returns:
        ``path``, a checked ONNX model.

    Raises:
        ValueError: ``image_size`` is not two positive multiples of 32.
    """
    h, w = (int(v) for v in image_size)
    if h <= 0 or w <= 0 or h % 32 or w % 32:
        raise ValueError(f"image_size must be (H, W) positive multiples of 32 (Swin's and the processor's divisor), got {image_size}")
    path = Path(path)
    model = model.eval()
    example = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.onnx.export(_Outputs(model).eval(), (example,), str(path), input_names=["pixel_values"],
                          output_names=["class_queries_logits", "masks_queries_logits"], opset_version=OPSET,
                          dynamo=False)
    proto = onnx.load(str(path))
    cast_float64_grids(proto)
    config = model.config
    meta = {
        "transformers_model": type(model).__name__,
        "transformers_version": str(getattr(config, "transformers_version", "") or ""),
        "id2label": json.dumps({str(k): v for k, v in config.id2label.items()}),
        "image_size": json.dumps([h, w]),
        "image_mean": json.dumps(list(image_mean)),
        "image_std": json.dumps(list(image_std)),
        "licence": licence,
    }
    del proto.metadata_props[:]
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    check_parity(model, path, (h, w))
    return path


def check_parity(model: torch.nn.Module, path: str | Path, image_size: tuple[int, int], *, seed: int = 1,
                 tolerance: float = 1e-4) -> dict[str, float]:
    """Runs the ONNX file (onnxruntime, CPU) and the module on one random input that was not traced.

    Returns:
        ``{output name: max |ONNX - torch|}``.

    Raises:
        ValueError: an output differs by more than ``tolerance`` x max(1, its largest magnitude).
    """
    import onnxruntime as ort

    x = torch.randn(1, 3, *image_size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        expected = _Outputs(model.eval())(x)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"pixel_values": x.numpy()})
    gaps = {}
    for name, ref, out in zip(("class_queries_logits", "masks_queries_logits"), expected, got, strict=True):
        ref = ref.numpy()
        gaps[name] = float(abs(out - ref).max())
        if gaps[name] > tolerance * max(1.0, float(abs(ref).max())):
            raise ValueError(f"{path}: ONNX {name} differs from the torch module by {gaps[name]:.3g} on a random input "
                             f"(largest value {float(abs(ref).max()):.3g}); the export is not faithful")
    return gaps
