"""PyTorch -> ONNX (fp32) with the dynamo exporter at a pinned opset."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import torch

from edgeseg.bundle import Bundle
from edgeseg.families import get_family
from export.bundler import build_manifest, bundle_model_file
from export.spec import ModelSpec

log = logging.getLogger(__name__)

#: The ONNX opset every export targets; checked on the exported file.
OPSET = 18
INPUT_NAME = "images"


def export_onnx(model: torch.nn.Module, spec: ModelSpec, path: str | Path, *, opset: int = OPSET) -> Path:
    """Exports ``model`` to an ONNX file with fixed batch 1 and ``spec.imgsz``.

    The dynamo exporter can return a model at another opset than asked (it
    converts when its own default differs); the result is checked and an
    error raised rather than shipping a file that boards' runtimes may reject.

    Args:
        model: Module in eval mode, BN folded; forward(x (1,3,H,W)) returns the
            outputs in ``spec.output_names`` order.
        spec: Model description.
        path: Destination ``.onnx`` file.
        opset: ONNX opset to target.
    """
    path = Path(path)
    h, w = spec.imgsz
    example = torch.rand(1, 3, h, w)
    model.eval()
    with torch.no_grad():
        outs = model(example)
    check_outputs(outs, spec)
    own = getattr(model, "export_onnx", None)  # a model that exports itself (export.torchvision_rcnn.RoiCut)
    if own is not None:
        own(path, opset)
        _check_opset(path, opset)
        return path
    program = torch.onnx.export(
        model,
        (example,),
        dynamo=True,
        opset_version=opset,
        input_names=[INPUT_NAME],
        output_names=list(spec.output_names),
        external_data=False,
        verbose=False,
    )
    program.optimize()
    program.save(str(path))
    _check_opset(path, opset)
    return path


def _check_opset(path: Path, opset: int) -> None:
    import onnx

    proto = onnx.load(str(path))
    got = {op.domain or "ai.onnx": op.version for op in proto.opset_import}
    if got.get("ai.onnx") != opset:
        raise RuntimeError(f"exported ONNX has opset {got.get('ai.onnx')}, expected {opset} ({path})")
    onnx.checker.check_model(proto)


def check_outputs(outs: object, spec: ModelSpec) -> None:
    """Raises ValueError unless ``outs`` is a tuple of tensors matching ``spec``."""
    if not isinstance(outs, (tuple, list)) or len(outs) != len(spec.output_names):
        got = type(outs).__name__ if not isinstance(outs, (tuple, list)) else f"{len(outs)} outputs"
        raise ValueError(
            f"model forward must return {len(spec.output_names)} tensors {list(spec.output_names)} "
            f"(roles {list(spec.output_roles)}), got {got}"
        )
    for name, t in zip(spec.output_names, outs, strict=True):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"model output {name!r} must be a tensor, got {type(t).__name__}")
    manifest = build_manifest(spec, fmt="onnx", precision="fp32", model_file="model.onnx", input_name=INPUT_NAME)
    get_family(spec.family).check_output_shapes(
        manifest, {name: tuple(t.shape) for name, t in zip(spec.output_names, outs, strict=True)}
    )


def export_onnx_bundle(model: torch.nn.Module, spec: ModelSpec, out_dir: str | Path, *, force: bool = False) -> Bundle:
    """Exports ``model`` to ONNX fp32 and writes a verified bundle in ``out_dir``."""
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = export_onnx(model, spec, Path(tmp) / "model.onnx")
        manifest = build_manifest(spec, fmt="onnx", precision="fp32", model_file="model.onnx", input_name=INPUT_NAME)
        return bundle_model_file(Path(out_dir), manifest, onnx_path, force=force)
