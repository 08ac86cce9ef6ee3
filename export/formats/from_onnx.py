"""What the board-native formats share: they are made from a bundle's float ONNX model.

OpenVINO, ncnn and RKNN each convert the float ONNX model of an exported
or imported bundle (``convert(src, precision, out_dir, ...)`` in each
format module). Here: the ``export()`` of the export pipeline (write the
fp32 ONNX bundle, then convert it), the model those converters read (for
int8, outputs that share one tensor are split first, so that scores and
mask coefficients never share one int8 scale:
:func:`export.import_int8.split_outputs`), and the manifest of the result
(the float bundle's, with the new format, model file, output names and a
provenance record of the conversion), and the check that a float
conversion computes what ONNX Runtime computes (:func:`check_conversion`).
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgeseg.bundle import Bundle, write_bundle
from edgeseg.device_config import BackendOptions
from edgeseg.manifest import Manifest, OutputSpec
from export.bundler import package_versions

if TYPE_CHECKING:  # pragma: no cover
    from export.calibration import CalibrationSet
    from export.formats import ExportJob

log = logging.getLogger(__name__)

#: Largest output difference against ONNX Runtime accepted for a float conversion, relative to the
#: output's largest magnitude.
MAX_RELATIVE_ERROR = 0.02
#: ``convert(src, precision, out_dir, *, calibration, float_nodes) -> Bundle`` of one format module.
Converter = Callable[..., Bundle]


def export_via_onnx(job: ExportJob, precision: str, out_dir: Path, convert: Converter) -> Bundle:
    """The export pipeline's ``export()`` for a format made from ONNX.

    Writes the fp32 ONNX bundle of ``job.model`` to a temporary folder and
    converts it; ``job.float_layers`` (PyTorch module names) become the ONNX
    node names they were exported to.
    """
    from export.formats.onnx import export as export_onnx_bundle
    from export.formats.onnx_int8 import nodes_of_modules

    with tempfile.TemporaryDirectory(prefix="edgeseg-native-") as tmp:
        src = export_onnx_bundle(job, "fp32", Path(tmp) / "onnx")
        nodes = nodes_of_modules(src.model_path, job.float_layers)
        return convert(src, precision, out_dir, calibration=job.calibration, float_nodes=tuple(nodes))


def check_source(src: Bundle, fmt: str) -> None:
    """Raises ValueError unless ``src`` is a float32 ONNX bundle with a float32 NCHW input."""
    m = src.manifest
    if m.format != "onnx" or m.precision not in ("fp32", "fp16") or m.input.dtype != "float32" or m.input.layout != "NCHW":
        raise ValueError(
            f"{fmt} is made from a float ONNX bundle with a float32 NCHW input, got {m.format}/{m.precision} "
            f"{m.input.dtype} {m.input.layout} ({src.root})"
        )


def onnx_to_convert(src: Bundle, tmp: Path, *, split: bool) -> tuple[Path, tuple[OutputSpec, ...]]:
    """The ONNX file to convert and its manifest outputs; with ``split``, one tensor per role."""
    if split and any(o.channels is not None for o in src.manifest.outputs):
        from export.import_int8 import split_outputs

        path = tmp / "split.onnx"
        return path, split_outputs(src.model_path, path, src.manifest)
    return src.model_path, src.manifest.outputs


def needs_calibration(calibration: CalibrationSet | None, fmt: str) -> CalibrationSet:
    """``calibration``, or a ValueError saying the int8 format needs ``--calib``."""
    if calibration is None or len(calibration) == 0:
        raise ValueError(f"{fmt} is int8 and needs calibration images (--calib DIR)")
    calibration.warn_if_small(fmt)
    return calibration


def converted_manifest(
    src: Bundle, *, fmt: str, precision: str, model: str, outputs: Sequence[OutputSpec], input_name: str | None = None,
    tools: Sequence[str] = (), details: dict | None = None,
) -> Manifest:
    """The float bundle's manifest for the converted model.

    Args:
        src: The float ONNX bundle.
        fmt: New manifest format.
        precision: New precision.
        model: Model file name in the new bundle.
        outputs: Outputs of the converted model, in its output order.
        input_name: The converted model's input name, where it differs.
        tools: Distributions whose versions are recorded (the converter's).
        details: Quantization or conversion details for the provenance.
    """
    m = src.manifest
    versions = package_versions(*tools)
    provenance = {**m.provenance, "converted_from": {"format": m.format, "precision": m.precision,
                                                     "sha256": m.files[m.model].sha256, "tools": versions}}
    if details:
        provenance["quantization" if precision in ("int8", "mixed") else "conversion"] = details
    return m.replace(format=fmt, precision=precision, model=model, outputs=tuple(outputs),
                     input=m.input if input_name is None else dataclasses.replace(m.input, name=input_name),
                     provenance=provenance, files={})


def write_converted(out_dir: Path, manifest: Manifest, files: dict[str, Path]) -> Bundle:
    """Writes the converted bundle (replacing one already at ``out_dir``)."""
    return write_bundle(out_dir, manifest, files, force=True)


def check_conversion(src: Bundle, converted: Bundle, calibration=None) -> dict[str, float]:
    """Runs both bundles on one input; raises RuntimeError when an output differs by too much.

    Returns:
        Output name (the float model's) -> largest difference relative to that output's largest magnitude.
    """
    from edgeseg.backends import load_backend

    if calibration is not None and len(calibration):
        x = calibration.head(1)[0]
    else:
        x = np.random.default_rng(0).uniform(0, 1, src.manifest.input.shape).astype(np.float32)
    options = BackendOptions(threads=1)
    ref_backend, got_backend = load_backend(src, options), load_backend(converted, options)
    try:
        ref, got = ref_backend.run(x), got_backend.run(x)
    finally:
        ref_backend.close()
        got_backend.close()
    errors = {}
    for a, b in zip(src.manifest.outputs, converted.manifest.outputs, strict=True):
        r, g = ref[a.name], got[b.name]
        if r.shape != g.shape:
            raise RuntimeError(f"{converted.manifest.format} output {b.name} is {g.shape}, ONNX {a.name} is {r.shape}")
        errors[a.name] = float(np.abs(r - g).max() / max(float(np.abs(r).max()), 1e-6))
    bad = {k: round(v, 4) for k, v in errors.items() if v > MAX_RELATIVE_ERROR}
    if bad:
        raise RuntimeError(f"{converted.manifest.format} outputs differ from the ONNX model's beyond "
                           f"{MAX_RELATIVE_ERROR:.0%} of their range: {bad}")
    log.info("%s conversion check: largest relative output difference %s", converted.manifest.format,
             {k: round(v, 5) for k, v in errors.items()})
    return errors
