"""OpenVINO IR bundles (``model.xml`` + ``model.bin``): fp32, and int8 through NNCF.

fp32: ``openvino.convert_model`` of the float ONNX model, saved without
fp16 weight compression (the tensors keep their ONNX names, so the
manifest's outputs stay as they are). int8: NNCF's post-training
quantization (``nncf.quantize``) of that model with the calibration
images fed through the runtime's preprocessor; int8 weights, int8
activations at the inputs of convolutions and matrix products, float32
inputs and outputs. Outputs that share one tensor in the ONNX model are
split first (:func:`export.formats.from_onnx.onnx_to_convert`). Nodes kept
in float by the mixed-precision search go to NNCF's ``IgnoredScope`` by
their ONNX node names (OpenVINO keeps them as friendly names).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from edgeseg.bundle import Bundle
from export.formats import ExportJob
from export.formats.from_onnx import (
    check_conversion,
    check_source,
    converted_manifest,
    export_via_onnx,
    needs_calibration,
    onnx_to_convert,
    write_converted,
)

log = logging.getLogger(__name__)

MODEL_FILE = "model.xml"
WEIGHTS_FILE = "model.bin"


def convert(src: Bundle, precision: str, out_dir: Path, *, calibration=None, float_nodes: tuple[str, ...] = ()) -> Bundle:
    """Writes the OpenVINO bundle of the float ONNX bundle ``src`` to ``out_dir``.

    Args:
        src: Float32 ONNX bundle (exported or imported).
        precision: ``fp32`` or ``int8``.
        out_dir: Bundle directory to write.
        calibration: :class:`~export.calibration.CalibrationSet` (int8).
        float_nodes: ONNX node names NNCF leaves in float (int8).
    """
    import openvino as ov

    if precision not in ("fp32", "int8"):
        raise ValueError(f"export.formats.openvino writes fp32 or int8, got {precision!r}")
    check_source(src, f"openvino ({precision})")
    with tempfile.TemporaryDirectory(prefix="edgeseg-openvino-") as tmp:
        tmp = Path(tmp)
        onnx_path, outputs = onnx_to_convert(src, tmp, split=precision == "int8")
        model = ov.convert_model(str(onnx_path))
        details = None
        if precision == "int8":
            model, details = _quantize(model, needs_calibration(calibration, "openvino-int8"), float_nodes)
        ov.save_model(model, str(tmp / MODEL_FILE), compress_to_fp16=False)
        manifest = converted_manifest(
            src, fmt="openvino", precision="mixed" if float_nodes and precision == "int8" else precision,
            model=MODEL_FILE, outputs=outputs, tools=("openvino", "nncf"), details=details,
        )
        bundle = write_converted(out_dir, manifest, {MODEL_FILE: tmp / MODEL_FILE, WEIGHTS_FILE: tmp / WEIGHTS_FILE})
    if precision == "fp32":  # int8 is measured by the accuracy gate, not by output differences
        check_conversion(src, bundle, calibration)
    return bundle


def _quantize(model, calibration, float_nodes: tuple[str, ...]):
    """NNCF post-training int8 of an OpenVINO model. Returns (model, provenance details)."""
    import nncf

    scope = None
    if float_nodes:
        ops = {op.get_friendly_name() for op in model.get_ops()}
        # OpenVINO's ONNX frontend keeps node names; a Conv with a bias becomes "<name>/WithoutBiases" + Add "<name>"
        names = [n for node in float_nodes for n in (node, f"{node}/WithoutBiases") if n in ops]
        unmatched = [node for node in float_nodes if node not in ops and f"{node}/WithoutBiases" not in ops]
        if unmatched:
            log.warning("openvino-int8: %d float nodes have no OpenVINO op of that name and stay int8: %s",
                        len(unmatched), unmatched[:5])
        scope = nncf.IgnoredScope(names=names, validate=False)
    quantized = nncf.quantize(model, nncf.Dataset(list(calibration)), subset_size=len(calibration),
                              ignored_scope=scope)
    return quantized, {"calibration": {"method": "nncf-minmax", "images": len(calibration)}, "outputs_split": True,
                       "float_nodes": list(float_nodes)}


def export(job: ExportJob, precision: str, out_dir: Path) -> Bundle:
    """Writes an OpenVINO ``fp32`` / ``int8`` bundle of ``job.model`` to ``out_dir``."""
    return export_via_onnx(job, precision, out_dir, convert)
