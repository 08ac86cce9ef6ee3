"""What a foreign model file declares: format, input/output tensors, metadata. No torch.

ONNX files are read with onnxruntime (the runtime's own dependency: session
I/O and ``custom_metadata_map``), TFLite files with the LiteRT interpreter
(tensor details with their quantization) plus the metadata a library packed
into the file (Ultralytics appends a zip archive holding ``metadata.json``).
The format is told by the file's bytes (a TFLite flatbuffer has the
identifier ``TFL3`` at offset 4), never by its name.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeseg.manifest import Quant

#: Metadata larger than this is refused instead of parsed.
MAX_METADATA_BYTES = 1 << 20


class ImportFailed(ValueError):
    """A model that cannot be imported; the message names what was found and the flag that helps."""


@dataclass(frozen=True)
class TensorInfo:
    """One model input or output.

    Attributes:
        name: Tensor name in the model file.
        shape: Dimensions; ``None`` for a dynamic one.
        dtype: numpy dtype name (``float32``, ``int8`` ...).
        quant: Per-tensor affine quantization (int8/uint8 TFLite tensors), else ``None``.
    """

    name: str
    shape: tuple[int | None, ...]
    dtype: str
    quant: Quant | None = None


@dataclass(frozen=True)
class ModelFile:
    """A model file's format, tensors and metadata (strings, as stored).

    Attributes:
        path: The file.
        format: ``onnx`` or ``tflite`` (the manifest's format names).
        inputs: Model inputs.
        outputs: Model outputs, in the file's order.
        metadata: Key -> value strings the exporting library stored.
    """

    path: Path
    format: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    metadata: dict[str, str] = field(default_factory=dict)
    #: ``int8`` / ``fp16`` when the file's inner tensors show it (TFLite), else ``None``.
    weight_precision: str | None = None


def sniff_format(path: Path) -> str:
    """``tflite`` or ``onnx`` from the file's first bytes."""
    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) == 8 and head[4:8] == b"TFL3":
        return "tflite"
    if head[:1] == b"\x08":  # ONNX ModelProto starts with field 1 (ir_version), varint
        return "onnx"
    raise ImportFailed(f"{path} is neither an ONNX nor a TFLite model (first bytes {head!r})")


def read_model_file(path: str | Path) -> ModelFile:
    """Reads a model's tensors and metadata with the runtime's own libraries.

    Raises:
        ImportFailed: unreadable file, or a library that cannot load it.
    """
    path = Path(path)
    if not path.is_file():
        raise ImportFailed(f"model file {path} does not exist")
    fmt = sniff_format(path)
    return _read_onnx(path) if fmt == "onnx" else _read_tflite(path)


def _dim(d) -> int | None:
    return int(d) if isinstance(d, (int, np.integer)) and int(d) > 0 else None


def _read_onnx(path: Path) -> ModelFile:
    from edgeseg.backends.onnxruntime import _ort

    ort = _ort()
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ImportFailed(f"onnxruntime cannot load {path}: {exc}") from None

    def info(node) -> TensorInfo:
        dtype = node.type.removeprefix("tensor(").removesuffix(")")
        dtype = {"float": "float32", "double": "float64", "float16": "float16"}.get(dtype, dtype)
        return TensorInfo(node.name, tuple(_dim(d) for d in node.shape), dtype)

    meta = dict(session.get_modelmeta().custom_metadata_map)
    return ModelFile(
        path=path,
        format="onnx",
        inputs=tuple(info(i) for i in session.get_inputs()),
        outputs=tuple(info(o) for o in session.get_outputs()),
        metadata=meta,
    )


def _read_tflite(path: Path) -> ModelFile:
    from edgeseg.backends.tflite import _interpreter_module

    module, name = _interpreter_module()
    try:
        interp = module.Interpreter(model_path=str(path))
    except (ValueError, RuntimeError) as exc:
        raise ImportFailed(f"{name} cannot load {path}: {exc}") from None

    def info(d: dict) -> TensorInfo:
        scale, zp = d.get("quantization", (0.0, 0))
        dtype = np.dtype(d["dtype"]).name
        quant = Quant(float(scale), int(zp)) if dtype in ("int8", "uint8") and scale else None
        shape = tuple(_dim(s) for s in d.get("shape_signature", d["shape"]))
        return TensorInfo(d["name"], shape, dtype, quant)

    inner = {np.dtype(d["dtype"]).name for d in interp.get_tensor_details()}
    return ModelFile(
        path=path,
        format="tflite",
        inputs=tuple(info(d) for d in interp.get_input_details()),
        outputs=tuple(info(d) for d in interp.get_output_details()),
        metadata=_appended_zip_metadata(path),
        weight_precision="int8" if "int8" in inner else ("fp16" if "float16" in inner else None),
    )


def _appended_zip_metadata(path: Path) -> dict[str, str]:
    """Metadata a library appended to a TFLite file as a zip archive of one JSON file, else ``{}``."""
    data = path.read_bytes()
    if b"PK\x05\x06" not in data[-(1 << 16) - 22 :]:
        return {}
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = [n for n in zf.namelist() if n.endswith(".json")]
            if not names or zf.getinfo(names[0]).file_size > MAX_METADATA_BYTES:
                return {}
            text = zf.read(names[0]).decode("utf-8")
    except (zipfile.BadZipFile, UnicodeDecodeError, OSError):
        return {}
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        return {}
    if not isinstance(parsed, dict):
        return {}
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in parsed.items()}
