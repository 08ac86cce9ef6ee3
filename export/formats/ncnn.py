"""ncnn bundles (``model.ncnn.param`` + ``model.ncnn.bin``) through pnnx, fp16 weight storage.

pnnx (``pip install pnnx``, in the ``ncnn`` extra with the runtime) converts
the float ONNX model: it simplifies the graph, fuses activations into
convolutions and writes ncnn's ``.param`` / ``.bin`` with fp16 weights
(``fp16=1``: half the file; ncnn computes in fp32 or, with
``backend.ncnn.fp16_arithmetic`` on an ARMv8.2 board, fp16). pnnx names the
tensors ``in0`` and ``out0`` ... in the ONNX model's input / output order;
the converted net is run on a calibration image (or a seeded random one)
and every output is checked against ONNX Runtime before the manifest names
it, so a renaming or a wrong conversion fails here, not on the board.

int8 is not offered: ncnn's quantization tools (``ncnn2table``,
``ncnn2int8``) are C++ programs that neither the ``ncnn`` nor the ``pnnx``
wheel ships (see README, "Board-native backends").
"""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import tempfile
from pathlib import Path

from edgeseg.bundle import Bundle
from export.formats import ExportJob
from export.formats.from_onnx import (
    check_conversion,
    check_source,
    converted_manifest,
    export_via_onnx,
    write_converted,
)

log = logging.getLogger(__name__)

MODEL_FILE = "model.ncnn.param"
WEIGHTS_FILE = "model.ncnn.bin"


def _pnnx() -> Path:
    try:
        import pnnx
    except ImportError as exc:
        raise ImportError("the ncnn format needs pnnx: pip install 'edgeseg[ncnn]'") from exc
    return Path(pnnx.__file__).parent / "pnnx"


def convert(src: Bundle, precision: str, out_dir: Path, *, calibration=None, float_nodes: tuple[str, ...] = ()) -> Bundle:
    """Writes the ncnn bundle of the float ONNX bundle ``src`` to ``out_dir``.

    Args:
        src: Float32 ONNX bundle (exported or imported).
        precision: ``fp16`` (weights stored in fp16) or ``fp32``.
        out_dir: Bundle directory to write.
        calibration: Optional: its first image is the conversion check's input.
        float_nodes: Unused (no int8 here).
    """
    if precision not in ("fp16", "fp32"):
        raise ValueError(f"export.formats.ncnn writes fp16 or fp32, got {precision!r}")
    check_source(src, f"ncnn ({precision})")
    m = src.manifest
    with tempfile.TemporaryDirectory(prefix="edgeseg-ncnn-") as tmp:
        tmp = Path(tmp)
        onnx_path = tmp / "model.onnx"
        onnx_path.write_bytes(src.model_path.read_bytes())
        shape = ",".join(str(d) for d in m.input.shape)
        cmd = [str(_pnnx()), onnx_path.name, f"inputshape=[{shape}]", f"fp16={int(precision == 'fp16')}",
               f"ncnnparam={MODEL_FILE}", f"ncnnbin={WEIGHTS_FILE}"]
        done = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        if done.returncode != 0 or not (tmp / MODEL_FILE).is_file():
            raise RuntimeError(f"pnnx failed ({done.returncode}) on {src.model_path}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        onnx_names = list(dict.fromkeys(o.name for o in m.outputs))
        tensor_of = {name: f"out{i}" for i, name in enumerate(_graph_outputs(src.model_path)) if name in onnx_names}
        outputs = tuple(dataclasses.replace(o, name=tensor_of[o.name]) for o in m.outputs)
        manifest = converted_manifest(src, fmt="ncnn", precision=precision, model=MODEL_FILE, outputs=outputs,
                                      input_name="in0", tools=("pnnx", "ncnn"))
        files = {MODEL_FILE: tmp / MODEL_FILE, WEIGHTS_FILE: tmp / WEIGHTS_FILE}
        bundle = write_converted(out_dir, manifest, files)
    check_conversion(src, bundle, calibration)
    return bundle


def _graph_outputs(onnx_path: Path) -> list[str]:
    import onnxruntime as ort

    return [o.name for o in ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).get_outputs()]


def export(job: ExportJob, precision: str, out_dir: Path) -> Bundle:
    """Writes an ncnn bundle of ``job.model`` to ``out_dir``."""
    return export_via_onnx(job, precision, out_dir, convert)
