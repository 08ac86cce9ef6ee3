"""The external-data files an ONNX model refers to, read from the protobuf without ``onnx``.

An ONNX tensor may keep its values in a separate file (``data_location =
EXTERNAL``, ``external_data`` entry ``location``). ONNX Runtime opens such a
file next to the model on its own, so a bundle that does not list it with a
hash would run weights nobody verified. :func:`external_files` lists every
location the model names, and :func:`edgeseg.bundle.load_bundle` refuses the
bundle unless each one is in the manifest's ``files``.

Hand-written protobuf walking (about sixty lines) because the runtime never
imports ``onnx`` (tests/test_runtime_purity.py) and onnxruntime exposes no
list of external files. It follows only the fields that can hold tensors
(ONNX ``onnx.proto`` field numbers, stable since IR version 3) and skips
everything else by its length, so a large model is scanned without copying
its weights.
"""

from __future__ import annotations

from pathlib import Path

# (message, field number) -> message type of that field, for fields that can lead to a TensorProto.
_CHILDREN = {
    ("model", 7): "graph",  # ModelProto.graph
    ("model", 25): "function",  # ModelProto.functions
    ("function", 7): "node",  # FunctionProto.node
    ("graph", 1): "node",  # GraphProto.node
    ("graph", 5): "tensor",  # GraphProto.initializer
    ("graph", 15): "sparse",  # GraphProto.sparse_initializer
    ("node", 5): "attribute",  # NodeProto.attribute
    ("attribute", 5): "tensor",  # AttributeProto.t
    ("attribute", 6): "graph",  # AttributeProto.g
    ("attribute", 10): "tensor",  # AttributeProto.tensors
    ("attribute", 11): "graph",  # AttributeProto.graphs
    ("attribute", 22): "sparse",  # AttributeProto.sparse_tensor
    ("attribute", 23): "sparse",  # AttributeProto.sparse_tensors
    ("sparse", 1): "tensor",  # SparseTensorProto.values
    ("sparse", 2): "tensor",  # SparseTensorProto.indices
    ("tensor", 13): "entry",  # TensorProto.external_data (StringStringEntryProto)
}
_MAX_DEPTH = 64


class ProtobufError(ValueError):
    """The model file is not a well-formed protobuf message."""


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ProtobufError(f"truncated or overlong varint at byte {pos}")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos


def _fields(buf: memoryview):
    """Yields ``(field number, wire type, value)``; value is a memoryview for length-delimited fields."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = None, pos + 8
        elif wire == 5:
            value, pos = None, pos + 4
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + length], pos + length
        else:
            raise ProtobufError(f"unsupported wire type {wire} (field {number})")
        if pos > len(buf):
            raise ProtobufError(f"field {number} runs past the end of the message")
        yield number, wire, value


def _walk(buf: memoryview, kind: str, depth: int, out: set[str]) -> None:
    if depth > _MAX_DEPTH:
        raise ProtobufError(f"messages nested deeper than {_MAX_DEPTH}")
    entry: dict[int, str] = {}  # StringStringEntryProto: 1 key, 2 value
    for number, wire, value in _fields(buf):
        if kind == "entry":
            if wire == 2 and number in (1, 2):
                entry[number] = bytes(value).decode("utf-8", "replace")
            continue
        child = _CHILDREN.get((kind, number))
        if child is not None and wire == 2:
            _walk(value, child, depth + 1, out)
    if entry.get(1) == "location" and 2 in entry:
        out.add(entry[2])


def external_files(model_path: str | Path) -> list[str]:
    """Every external-data ``location`` named in an ONNX model, sorted.

    Args:
        model_path: The ``.onnx`` file.

    Returns:
        Locations as written in the model (relative to the model's directory).

    Raises:
        ProtobufError: the file is not a well-formed ONNX protobuf.
    """
    data = Path(model_path).read_bytes()
    out: set[str] = set()
    _walk(memoryview(data), "model", 0, out)
    return sorted(out)
