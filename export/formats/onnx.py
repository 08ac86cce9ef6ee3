"""ONNX fp32 and fp16 bundles.

fp32 is the dynamo export at the pinned opset (:mod:`export.onnx_export`,
simplified by onnxscript's optimizer: constant folding, dead code removal).
fp16 converts weights and activations with onnxruntime's own float16 tool,
keeping float32 inputs and outputs so that the preprocessor, the manifest and
the decoder are the same as for fp32.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from edgeseg.bundle import Bundle
from export.bundler import build_manifest, bundle_model_file
from export.formats import ExportJob
from export.onnx_export import INPUT_NAME, export_onnx

MODEL_FILE = "model.onnx"


def to_fp16(src: Path, dst: Path) -> Path:
    """Converts an fp32 ONNX file to fp16 weights/activations with float32 I/O."""
    import onnx
    import onnx_ir as ir
    from onnxruntime.transformers.float16 import convert_float_to_float16

    converted = ir.from_proto(convert_float_to_float16(onnx.load(str(src)), keep_io_types=True))
    # The converter appends the input casts at the end of the node list; sort for the checker.
    converted.graph.sort()
    model = ir.to_proto(converted)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    return dst


def export(job: ExportJob, precision: str, out_dir: Path) -> Bundle:
    """Writes an ONNX ``fp32`` or ``fp16`` bundle of ``job.model`` to ``out_dir``."""
    if precision not in ("fp32", "fp16"):
        raise ValueError(f"export.formats.onnx writes fp32 or fp16, got {precision!r}")
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(job.model, job.spec, Path(tmp) / "fp32.onnx")
        if precision == "fp16":
            path = to_fp16(path, Path(tmp) / "fp16.onnx")
        manifest = build_manifest(job.spec, fmt="onnx", precision=precision, model_file=MODEL_FILE, input_name=INPUT_NAME)
        return bundle_model_file(out_dir, manifest, path, force=True)
