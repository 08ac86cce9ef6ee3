"""RKNN bundles (``model.rknn``) for Rockchip NPUs through rknn-toolkit2, int8 only.

rknn-toolkit2 (x86_64 / aarch64 workstations; it pins ``numpy<=1.26`` and
``torch<=2.4``, so it lives in its own venv: ``make rknn-venv``,
``scripts/rknn_simulator.py``) loads the float ONNX model, with outputs
that share one tensor split first so that scores and mask coefficients
get int8 scales of their own (:func:`export.formats.from_onnx.onnx_to_convert`;
rknn_model_zoo #429 is what one shared scale does: every class turns to 0),
and quantizes it (w8a8, per-channel weights, the ``normal`` min/max
algorithm) on the calibration images as the runtime's preprocessor makes
them. The model keeps the preprocessor's float32 NCHW input
(``mean_values`` 0, ``std_values`` 1: the normalization stays in the
manifest); RKNNLite quantizes it on the NPU. ``load_onnx(outputs=...)``
fixes the output order to the manifest's, which is how the backend maps
RKNNLite's output list to names.

The simulator runs only a model built in the same process (rknn-toolkit2
refuses to simulate a loaded ``.rknn``): with ``sessions``, the built
toolkit object is kept under the written file's sha256 instead of
released, and the simulator script's RKNNLite stand-in runs exactly that
file's model.

Hand-written: the dataset list file (rknn-toolkit2 reads calibration
inputs as ``.npy`` paths from a text file).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np

from edgeseg.bundle import Bundle
from edgeseg.filecheck import sha256_file
from export.formats import ExportJob
from export.formats.from_onnx import (
    check_source,
    converted_manifest,
    export_via_onnx,
    needs_calibration,
    onnx_to_convert,
    write_converted,
)

log = logging.getLogger(__name__)

MODEL_FILE = "model.rknn"
#: Default target SoC.
TARGET = "rk3588"
#: rknn-toolkit2 2.5.0 graph rules that fail on models edgeseg converts: ``seperate_conv_rs_split``
#: raises IndexError on Ultralytics' DFL (conv -> reshape -> the Slice pair of ``dist2bbox``); the
#: toolkit's own message suggests disabling it. Nano has no such pattern either way.
DISABLED_RULES = ("seperate_conv_rs_split",)


def _rknn_api():
    try:
        from rknn.api import RKNN  # type: ignore[import-not-found]
    except ImportError as exc:
        raise ImportError(
            "the rknn format needs rknn-toolkit2, which pins numpy<=1.26 and torch<=2.4: run it in its own venv "
            "(make rknn-venv; .venv-rknn/bin/python scripts/rknn_simulator.py --help)"
        ) from exc
    return RKNN


def convert(src: Bundle, precision: str, out_dir: Path, *, calibration=None, float_nodes: tuple[str, ...] = (),
            target: str = TARGET, sessions: dict | None = None) -> Bundle:
    """Writes the int8 RKNN bundle of the float ONNX bundle ``src`` to ``out_dir``.

    Args:
        src: Float32 ONNX bundle (exported or imported).
        precision: ``int8``.
        out_dir: Bundle directory to write.
        calibration: :class:`~export.calibration.CalibrationSet`.
        float_nodes: Must be empty (rknn-toolkit2's hybrid quantization is not used).
        target: ``target_platform`` (``rk3588``, ``rk3576``, ``rk3566`` ...).
        sessions: When given, ``{sha256 of model.rknn: the built RKNN object}``
            is added to it (for the simulator); else the object is released.
    """
    if precision != "int8":
        raise ValueError(f"export.formats.rknn writes int8, got {precision!r}")
    if float_nodes:
        raise ValueError(f"rknn keeps no layer in float (asked for {len(float_nodes)} nodes); use openvino-int8 "
                         "or onnx-int8 for a mixed-precision model")
    check_source(src, "rknn")
    calibration = needs_calibration(calibration, "rknn")
    RKNN = _rknn_api()
    m = src.manifest
    with tempfile.TemporaryDirectory(prefix="edgeseg-rknn-") as tmp:
        tmp = Path(tmp)
        onnx_path, outputs = onnx_to_convert(src, tmp, split=True)
        dataset = tmp / "dataset.txt"
        lines = []
        for i, tensor in enumerate(calibration):
            np.save(tmp / f"calib_{i:05d}.npy", tensor[0])  # (3, H, W): one input per line
            lines.append(str(tmp / f"calib_{i:05d}.npy"))
        dataset.write_text("\n".join(lines) + "\n")
        channels = m.input.shape[1]
        rknn = RKNN(verbose=False)
        try:
            rknn.config(mean_values=[[0.0] * channels], std_values=[[1.0] * channels], target_platform=target,
                        quantized_dtype="w8a8", quantized_algorithm="normal", optimization_level=3,
                        disable_rules=list(DISABLED_RULES))
            names = list(dict.fromkeys(o.name for o in outputs))
            steps = (
                ("load_onnx", lambda: rknn.load_onnx(model=str(onnx_path), inputs=[m.input.name],
                                                     input_size_list=[list(m.input.shape)], outputs=names)),
                ("build", lambda: rknn.build(do_quantization=True, dataset=str(dataset))),
                ("export_rknn", lambda: rknn.export_rknn(str(tmp / MODEL_FILE))),
            )
            for step, call in steps:
                if call() != 0:
                    raise RuntimeError(f"rknn-toolkit2 {step} failed for {onnx_path} (target {target})")
            details = {"calibration": {"method": "rknn-normal", "images": len(calibration)}, "outputs_split": True,
                       "target": target, "quantized_dtype": "w8a8"}
            manifest = converted_manifest(src, fmt="rknn", precision="int8", model=MODEL_FILE, outputs=outputs,
                                          tools=("rknn-toolkit2",), details=details)
            bundle = write_converted(out_dir, manifest, {MODEL_FILE: tmp / MODEL_FILE})
        except BaseException:
            rknn.release()
            raise
    if sessions is None:
        rknn.release()
    else:
        sessions[sha256_file(bundle.model_path)] = rknn
    return bundle


def export(job: ExportJob, precision: str, out_dir: Path) -> Bundle:
    """Writes an RKNN int8 bundle of ``job.model`` (needs rknn-toolkit2: see the module docstring)."""
    return export_via_onnx(job, precision, out_dir, convert)
