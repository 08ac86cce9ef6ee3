"""The bundle manifest: everything the runtime needs to interpret a model.

One schema-versioned JSON document per bundle, parsed with :mod:`json` into
frozen dataclasses and validated here, once. Nothing about a model is guessed
from file names: input geometry, normalization, each output's role and layout,
anchor strides, class names, thresholds and quantization all live here.

Schema version 1 (see README "Bundle format"):

.. code-block:: json

    {"schema_version": 1, "name": "edgeseg-nano", "family": "proto",
     "format": "onnx", "precision": "fp32", "model": "model.onnx",
     "input": {"name": "images", "shape": [1, 3, 320, 320], "layout": "NCHW",
               "dtype": "float32", "color": "RGB", "scale": 0.00392156862745098,
               "mean": [0, 0, 0], "std": [1, 1, 1],
               "letterbox": {"pad_value": 114, "center": true}, "quant": null},
     "outputs": [{"name": "boxes", "role": "boxes", "layout": "BAC",
                  "encoding": "ltrb", "quant": null}, ...],
     "anchors": {"strides": [8, 16, 32], "offset": 0.5},
     "classes": ["box", "can"],
     "thresholds": {"score": 0.25, "iou": 0.5, "max_detections": 100,
                    "pre_nms_topk": 1000, "class_agnostic": false},
     "files": {"model.onnx": {"sha256": "...", "size": 1234}},
     "provenance": {"source": "...", "created": "...", "exporter": {}}}
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 1

PRECISIONS = ("fp32", "fp16", "int8", "mixed")
INPUT_LAYOUTS = ("NCHW", "NHWC")
INPUT_DTYPES = ("float32", "float16", "uint8", "int8")


def known_formats() -> tuple[str, ...]:
    """Bundle formats this runtime has a backend for (:data:`edgeseg.backends.BACKENDS`)."""
    from edgeseg.backends import BACKENDS  # late: backends import this module

    return tuple(BACKENDS.names())


class ManifestError(ValueError):
    """A manifest that is malformed or does not fit its model family."""


@dataclass(frozen=True)
class Quant:
    """Affine quantization of a tensor: ``real = scale * (q - zero_point)``."""

    scale: float
    zero_point: int


@dataclass(frozen=True)
class Letterbox:
    """How the input is letterboxed: aspect kept, padded with ``pad_value``."""

    pad_value: int = 114
    center: bool = True


@dataclass(frozen=True)
class InputSpec:
    """The model input tensor and how to fill it from a BGR uint8 image."""

    name: str
    shape: tuple[int, ...]
    layout: str = "NCHW"
    dtype: str = "float32"
    color: str = "RGB"
    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    letterbox: Letterbox = field(default_factory=Letterbox)
    quant: Quant | None = None

    @property
    def height(self) -> int:
        return self.shape[2] if self.layout == "NCHW" else self.shape[1]

    @property
    def width(self) -> int:
        return self.shape[3] if self.layout == "NCHW" else self.shape[2]


@dataclass(frozen=True)
class OutputSpec:
    """One model output: its tensor name, its role for the decoder, its layout."""

    name: str
    role: str
    layout: str
    encoding: str | None = None  # boxes only
    activation: str | None = None  # scores only
    normalized: bool | None = None  # boxes only: values are fractions of the input size
    sampling: str | None = None  # protos only: "exact" (default) or "ultralytics" (edgeseg.decode.sampling)
    quant: Quant | None = None
    #: ``[start, stop)`` channels of a tensor shared with other roles (Ultralytics'
    #: ``output0``: boxes 0:4, scores 4:4+nc, coefficients after), or ``None``
    #: for a tensor of its own. Read as a zero-copy view.
    channels: tuple[int, int] | None = None


@dataclass(frozen=True)
class Anchors:
    """Anchor-point grid for ``ltrb`` boxes: one point per cell per stride, row-major."""

    strides: tuple[int, ...] = (8, 16, 32)
    offset: float = 0.5


@dataclass(frozen=True)
class Thresholds:
    """Default decode settings; a caller may override each per call."""

    score: float = 0.25
    iou: float = 0.5
    max_detections: int = 100
    pre_nms_topk: int = 1000
    class_agnostic: bool = False
    #: Keep scores ``> score`` (Ultralytics) instead of ``>= score``.
    score_strict: bool = False
    #: ``False`` for end-to-end (NMS-free) models: no suppression at run time.
    nms: bool = True
    #: Drop a detection whose decoded mask is empty (Ultralytics' ``predict`` does).
    drop_empty_masks: bool = False


@dataclass(frozen=True)
class FileEntry:
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """A parsed, validated bundle manifest (schema version 1)."""

    name: str
    family: str
    format: str
    precision: str
    model: str
    input: InputSpec
    outputs: tuple[OutputSpec, ...]
    classes: tuple[str, ...]
    anchors: Anchors | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)
    files: dict[str, FileEntry] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def output(self, role: str) -> OutputSpec:
        """Returns the output with ``role`` (validated to exist for the family)."""
        for out in self.outputs:
            if out.role == role:
                return out
        raise KeyError(f"manifest has no output with role {role!r}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["files"] = {k: dataclasses.asdict(v) for k, v in self.files.items()}
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    def replace(self, **changes: Any) -> Manifest:
        return dataclasses.replace(self, **changes)


# --------------------------------------------------------------------------- parsing


def _require(d: dict, key: str, where: str) -> Any:
    if key not in d:
        raise ManifestError(f"manifest {where} is missing required key {key!r}")
    return d[key]


def _choice(value: Any, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise ManifestError(f"manifest {what} must be one of {list(allowed)}, got {value!r}")
    return value


def _build(cls: type, d: Any, where: str, **nested: Any) -> Any:
    """Builds dataclass ``cls`` from dict ``d``, rejecting unknown keys."""
    if not isinstance(d, dict):
        raise ManifestError(f"manifest {where} must be an object, got {type(d).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ManifestError(f"manifest {where} has unknown keys {sorted(unknown)}")
    kwargs = dict(d)
    kwargs.update(nested)
    for key, value in kwargs.items():
        if isinstance(value, list):
            kwargs[key] = tuple(value)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ManifestError(f"manifest {where}: {exc}") from None


def _quant(d: Any, where: str) -> Quant | None:
    return None if d is None else _build(Quant, d, f"{where}.quant")


def parse_manifest(data: dict[str, Any]) -> Manifest:
    """Validates a decoded manifest JSON object and returns a :class:`Manifest`.

    Raises:
        ManifestError: naming the first problem found (missing key, unknown
            schema version, bad value, output roles that don't fit the family).
    """
    if not isinstance(data, dict):
        raise ManifestError(f"manifest must be a JSON object, got {type(data).__name__}")
    version = _require(data, "schema_version", "root")
    if version != SCHEMA_VERSION:
        raise ManifestError(
            f"unsupported manifest schema_version {version!r}; this edgeseg reads version "
            f"{SCHEMA_VERSION} (re-export the bundle, or upgrade edgeseg)"
        )
    from edgeseg.families import FAMILIES  # late: families import this module

    family = _require(data, "family", "root")
    if family not in FAMILIES:
        raise ManifestError(f"manifest family must be one of {FAMILIES.names()}, got {family!r}")
    _choice(_require(data, "format", "root"), known_formats(), "format")
    _choice(_require(data, "precision", "root"), PRECISIONS, "precision")

    raw_in = dict(_require(data, "input", "root"))
    inp = _build(
        InputSpec,
        raw_in,
        "input",
        letterbox=_build(Letterbox, raw_in.get("letterbox", {}), "input.letterbox"),
        quant=_quant(raw_in.get("quant"), "input"),
    )
    _choice(inp.layout, INPUT_LAYOUTS, "input.layout")
    _choice(inp.dtype, INPUT_DTYPES, "input.dtype")
    _choice(inp.color, ("RGB", "BGR"), "input.color")
    if len(inp.shape) != 4 or any(not isinstance(s, int) or s <= 0 for s in inp.shape):
        raise ManifestError(f"manifest input.shape must be 4 positive ints, got {list(inp.shape)}")
    channels = inp.shape[1] if inp.layout == "NCHW" else inp.shape[3]
    if channels != 3:
        raise ManifestError(f"manifest input.shape has {channels} channels for layout {inp.layout}, expected 3")
    if inp.dtype in ("uint8", "int8") and inp.quant is None:
        raise ManifestError(f"manifest input.dtype {inp.dtype} needs input.quant (scale, zero_point)")

    raw_outs = _require(data, "outputs", "root")
    if not isinstance(raw_outs, list) or not raw_outs:
        raise ManifestError("manifest outputs must be a non-empty list")
    outputs = tuple(_output(o, f"outputs[{i}]") for i, o in enumerate(raw_outs))
    _check_shared(outputs)

    anchors = None
    if data.get("anchors") is not None:
        anchors = _build(Anchors, data["anchors"], "anchors")
        if not anchors.strides or any(not isinstance(s, int) or s <= 0 for s in anchors.strides):
            raise ManifestError(f"manifest anchors.strides must be positive ints, got {list(anchors.strides)}")

    classes = tuple(_require(data, "classes", "root"))
    if not classes or not all(isinstance(c, str) and c for c in classes):
        raise ManifestError("manifest classes must be a non-empty list of names")
    thresholds = _build(Thresholds, data.get("thresholds", {}), "thresholds")
    if not (0.0 <= thresholds.score <= 1.0 and 0.0 < thresholds.iou <= 1.0 and thresholds.max_detections > 0):
        raise ManifestError(f"manifest thresholds out of range: {thresholds}")

    files_raw = data.get("files", {})
    if not isinstance(files_raw, dict):
        raise ManifestError("manifest files must be an object {name: {sha256, size}}")
    files = {name: _build(FileEntry, e, f"files[{name!r}]") for name, e in files_raw.items()}

    known = {f.name for f in dataclasses.fields(Manifest)}
    unknown = set(data) - known
    if unknown:
        raise ManifestError(f"manifest has unknown keys {sorted(unknown)}")
    manifest = Manifest(
        name=str(_require(data, "name", "root")),
        family=family,
        format=data["format"],
        precision=data["precision"],
        model=str(_require(data, "model", "root")),
        input=inp,
        outputs=outputs,
        classes=classes,
        anchors=anchors,
        thresholds=thresholds,
        files=files,
        provenance=dict(data.get("provenance", {})),
        schema_version=version,
    )
    FAMILIES.get(family).check(manifest)
    return manifest


def outputs_by_role(outputs: tuple[OutputSpec, ...]) -> dict[str, OutputSpec]:
    return {o.role: o for o in outputs}


def _output(d: Any, where: str) -> OutputSpec:
    if not isinstance(d, dict):
        raise ManifestError(f"manifest {where} must be an object, got {type(d).__name__}")
    spec = _build(OutputSpec, d, where, quant=_quant(d.get("quant"), where))
    if spec.channels is not None:
        ch = spec.channels
        if len(ch) != 2 or not all(isinstance(c, int) and not isinstance(c, bool) for c in ch) or not 0 <= ch[0] < ch[1]:
            raise ManifestError(f"manifest {where}.channels must be [start, stop) with 0 <= start < stop, got {list(ch)}")
    return spec


def _check_shared(outputs: tuple[OutputSpec, ...]) -> None:
    """Outputs sharing one tensor must all name disjoint channel ranges of the same layout and quant."""
    by_name: dict[str, list[OutputSpec]] = {}
    for o in outputs:
        by_name.setdefault(o.name, []).append(o)
    for name, specs in by_name.items():
        if len(specs) == 1:
            continue
        roles = [s.role for s in specs]
        if any(s.channels is None for s in specs):
            raise ManifestError(
                f"manifest outputs {roles} share tensor {name!r}: each needs 'channels' [start, stop)"
            )
        if len({s.layout for s in specs}) != 1 or len({s.quant for s in specs}) != 1:
            raise ManifestError(f"manifest outputs {roles} share tensor {name!r} but differ in layout or quant")
        ranges = sorted(s.channels for s in specs)
        for (a0, a1), (b0, b1) in zip(ranges, ranges[1:], strict=False):
            if b0 < a1:
                raise ManifestError(f"manifest outputs of tensor {name!r} overlap: channels {[a0, a1]} and {[b0, b1]}")
