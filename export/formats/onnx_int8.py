"""ONNX int8: static QDQ quantization with onnxruntime's quantization tools.

Steps: the fp32 dynamo export; ``quant_pre_process`` (shape inference and
graph clean-up so that QDQ pairs land where onnxruntime fuses them);
``quantize_static`` in QDQ format with asymmetric uint8 activations and
per-channel symmetric int8 weights (U8S8: the combination onnxruntime's CPU
kernels run fastest on x86-64 and ARM64; measured here, S8S8 ran 3-6x slower
than U8S8 and slower than fp32), activation ranges fitted on real calibration images
fed through the runtime's preprocessor (MinMax, Entropy or Percentile), and
``nodes_to_exclude`` for the layers the mixed-precision search keeps in
float. Inputs and outputs stay float32 (the QDQ graph quantizes inside), so
the manifest differs from fp32 only in ``precision``.
"""

from __future__ import annotations

import ast
import logging
import tempfile
from collections.abc import Iterable
from pathlib import Path

from edgeseg.bundle import Bundle
from export.bundler import build_manifest, bundle_model_file
from export.formats import ExportJob
from export.onnx_export import INPUT_NAME, export_onnx

log = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
#: Metadata the dynamo exporter writes on every node: the module path stack it came from.
_SCOPES_KEY = "pkg.torch.onnx.name_scopes"


class CalibrationReader:
    """onnxruntime's one-method ``CalibrationDataReader`` over calibration tensors.

    Args:
        tensors: ``(1, 3, H, W)`` float32 arrays, as the runtime preprocessor made them.
        input_name: The model's input name.
        desc: Progress bar label.
    """

    def __init__(self, tensors: Iterable, input_name: str, desc: str = "calibrating onnx-int8") -> None:
        from tqdm import tqdm

        items = list(tensors)
        self._it = iter(tqdm(items, desc=desc, unit="img", leave=False))
        self._name = input_name

    def get_next(self) -> dict | None:
        tensor = next(self._it, None)
        return None if tensor is None else {self._name: tensor}


def nodes_of_modules(onnx_path: Path, modules: Iterable[str]) -> list[str]:
    """Names of the ONNX nodes exported from the given PyTorch modules (or their children).

    Uses the module path stack the dynamo exporter records on each node, so
    a user names layers the way ``model.named_modules()`` does.
    """
    import onnx

    wanted = set(modules)
    if not wanted:
        return []
    found, used = [], set()
    for node in onnx.load(str(onnx_path), load_external_data=False).graph.node:
        meta = {p.key: p.value for p in node.metadata_props}
        scopes = set(ast.literal_eval(meta[_SCOPES_KEY])) if _SCOPES_KEY in meta else set()
        hit = scopes & wanted
        if hit:
            found.append(node.name)
            used |= hit
    missing = sorted(wanted - used)
    if missing:
        raise ValueError(f"float layers {missing} match no node of the exported ONNX model; use names from model.named_modules()")
    return found


def quantize_qdq(
    fp32_path: Path, out_path: Path, reader, *, method: str = "minmax", percentile: float = 99.999,
    nodes_to_exclude: Iterable[str] = (),
) -> None:
    """Static QDQ int8 (U8S8, per-channel weights) of any float ONNX model.

    Args:
        fp32_path: Float model.
        out_path: Where the QDQ model is written.
        reader: A ``CalibrationDataReader`` (``get_next() -> {input: tensor} | None``).
        method: ``minmax``, ``entropy`` or ``percentile``.
        percentile: For ``percentile`` calibration.
        nodes_to_exclude: Node names left in float.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = out_path.with_name(out_path.stem + "-pre.onnx")
    quant_pre_process(str(fp32_path), str(pre))
    quantize_static(
        str(pre),
        str(out_path),
        reader,
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method={
            "minmax": CalibrationMethod.MinMax,
            "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile,
        }[method],
        nodes_to_exclude=list(nodes_to_exclude),
        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True, "CalibPercentile": percentile},
    )
    pre.unlink(missing_ok=True)


def quantize(fp32_path: Path, out_path: Path, job: ExportJob) -> dict:
    """Quantizes ``fp32_path`` to a QDQ int8 model at ``out_path``.

    Returns:
        Provenance details: method, image count, excluded nodes.
    """
    if job.calibration is None:
        raise ValueError("onnx-int8 needs calibration images (--calib DIR)")
    opts = job.options
    excluded = nodes_of_modules(fp32_path, job.float_layers)
    quantize_qdq(fp32_path, out_path, CalibrationReader(job.calibration, INPUT_NAME), method=opts.calibration_method,
                 percentile=opts.percentile, nodes_to_exclude=excluded)
    return {
        "calibration": {"method": opts.calibration_method, "images": len(job.calibration)},
        "float_layers": sorted(job.float_layers),
        "float_nodes": excluded,
    }


def export(job: ExportJob, precision: str, out_dir: Path) -> Bundle:
    """Writes an ONNX int8 (QDQ) bundle; ``mixed`` precision when layers stay float."""
    if precision != "int8":
        raise ValueError(f"export.formats.onnx_int8 writes int8, got {precision!r}")
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(job.model, job.spec, Path(tmp) / "fp32.onnx")
        int8 = Path(tmp) / "int8.onnx"
        details = quantize(fp32, int8, job)
        manifest = build_manifest(
            job.spec,
            fmt="onnx",
            precision="mixed" if job.float_layers else "int8",
            model_file=MODEL_FILE,
            input_name=INPUT_NAME,
            extra_provenance={"quantization": details},
        )
        return bundle_model_file(out_dir, manifest, int8, force=True)
