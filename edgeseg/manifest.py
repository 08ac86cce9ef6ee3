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

Roles may be channel ranges of one tensor (an imported Ultralytics model)::

    {"name": "output0", "role": "scores", "layout": "BCA", "channels": [4, 10], "activation": "none"}

Which roles a manifest needs is its family's business (:mod:`edgeseg.families`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from edgeseg.fromdict import Length, NonEmpty, Pattern, Range, Unique, from_dict

SCHEMA_VERSION = 1

PRECISIONS = ("fp32", "fp16", "int8", "mixed")
INPUT_LAYOUTS = ("NCHW", "NHWC")
INPUT_DTYPES = ("float32", "float16", "uint8", "int8")
#: Largest input height or width: a 4096x4096 float32 input is 200 MB; beyond, one frame
#: could take gigabytes before anything else fails.
MAX_INPUT_SIDE = 4096


def known_formats() -> tuple[str, ...]:
    """Bundle formats this runtime has a backend for (:data:`edgeseg.backends.BACKENDS`)."""
    from edgeseg.backends import BACKENDS  # late: backends import this module

    return tuple(BACKENDS.names())


#: Upper bounds of the integer counts (the C decoder allocates by them).
MAX_DETECTIONS = 10_000
MAX_PRE_NMS_TOPK = 1_000_000
#: Largest bundle file listed (1 TiB): a bound, not a goal.
MAX_FILE_SIZE = 1 << 40

_Mean = Annotated[float, Range(-255, 255)]
_Std = Annotated[float, Range(0, 255, lo_open=True)]


class ManifestError(ValueError):
    """A manifest that is malformed or does not fit its model family."""


@dataclass(frozen=True)
class Quant:
    """Affine quantization of a tensor: ``real = scale * (q - zero_point)``."""

    scale: Annotated[float, Range(0, None, lo_open=True)]
    zero_point: Annotated[int, Range(-32768, 65535)]


@dataclass(frozen=True)
class Letterbox:
    """How the input is letterboxed: aspect kept, padded with ``pad_value``."""

    pad_value: Annotated[int, Range(0, 255)] = 114
    center: bool = True
    #: ``False``: stretched to the input size, no padding (Hugging Face processors' ``{"height", "width"}``).
    keep_aspect: bool = True
    #: Resizer by name (:data:`edgeseg.resample.RESAMPLERS`): ``linear`` (OpenCV), ``pil-bilinear``, ``torchvision-bilinear``;
    #: or ``torch-bilinear`` on float pixels (:data:`edgeseg.preprocess.FLOAT_RESAMPLERS`, RF-DETR).
    resample: str = "linear"


@dataclass(frozen=True)
class ShortestEdge:
    """Resize of torchvision's detection transform instead of a letterbox (Mask R-CNN).

    Scale ``s = min(min_size / short side, max_size / long side)``, size
    ``floor(side * s)``, bilinear on float pixels, no padding: the model pads to
    ``size_divisible`` itself, so its input height and width vary per image up
    to ``input.shape`` (see :mod:`edgeseg.preprocess`).
    """

    min_size: Annotated[int, Range(1, MAX_INPUT_SIDE)]
    max_size: Annotated[int, Range(1, MAX_INPUT_SIDE)]
    size_divisible: Annotated[int, Range(1, 1024)] = 32


@dataclass(frozen=True)
class InputSpec:
    """The model input tensor and how to fill it from a BGR uint8 image."""

    name: Annotated[str, NonEmpty]
    shape: tuple[Annotated[int, Range(1, MAX_INPUT_SIDE)], ...]
    layout: str = "NCHW"
    dtype: str = "float32"
    color: str = "RGB"
    #: uint8 pixel -> model units, ``(0, 1]``.
    scale: Annotated[float, Range(0, 1, lo_open=True)] = 1.0 / 255.0
    mean: tuple[_Mean, _Mean, _Mean] = (0.0, 0.0, 0.0)
    std: tuple[_Std, _Std, _Std] = (1.0, 1.0, 1.0)
    letterbox: Letterbox = field(default_factory=Letterbox)
    quant: Quant | None = None
    #: Set: torchvision's shortest-edge resize replaces the letterbox, and ``shape`` is the largest input.
    shortest_edge: ShortestEdge | None = None

    @property
    def height(self) -> int:
        return self.shape[2] if self.layout == "NCHW" else self.shape[1]

    @property
    def width(self) -> int:
        return self.shape[3] if self.layout == "NCHW" else self.shape[2]


@dataclass(frozen=True)
class OutputSpec:
    """One model output: its tensor name, its role for the decoder, its layout."""

    name: Annotated[str, NonEmpty]
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
    channels: tuple[Annotated[int, Range(0, 1 << 20)], Annotated[int, Range(0, 1 << 20)]] | None = None


@dataclass(frozen=True)
class Anchors:
    """Anchor-point grid for ``ltrb`` boxes: one point per cell per stride, row-major."""

    strides: Annotated[tuple[Annotated[int, Range(1, 1024)], ...], Length(1, 16)] = (8, 16, 32)
    offset: Annotated[float, Range(0, 1)] = 0.5


@dataclass(frozen=True)
class Thresholds:
    """Default decode settings; a caller may override each per call."""

    score: Annotated[float, Range(0, 1)] = 0.25
    iou: Annotated[float, Range(0, 1, lo_open=True)] = 0.5
    max_detections: Annotated[int, Range(1, MAX_DETECTIONS)] = 100
    pre_nms_topk: Annotated[int, Range(1, MAX_PRE_NMS_TOPK)] = 1000
    class_agnostic: bool = False
    #: Keep scores ``> score`` (Ultralytics) instead of ``>= score``.
    score_strict: bool = False
    #: ``False`` for end-to-end (NMS-free) models: no suppression at run time.
    nms: bool = True
    #: Drop a detection whose decoded mask is empty (Ultralytics' ``predict`` does).
    drop_empty_masks: bool = False


@dataclass(frozen=True)
class FileEntry:
    """sha256 (lowercase hex) and size in bytes of one bundle file."""

    sha256: Annotated[str, Pattern("[0-9a-f]{64}")]
    size: Annotated[int, Range(0, MAX_FILE_SIZE)]


@dataclass(frozen=True)
class PromptInputs:
    """Input tensor names of a prompt decoder (SAM's ONNX export names by default).

    ``None`` for an input the decoder does not take (EdgeSAM's decoder has no
    mask input, has-mask flag or original size).
    """

    embeddings: Annotated[str, NonEmpty] = "image_embeddings"
    point_coords: Annotated[str, NonEmpty] = "point_coords"
    point_labels: Annotated[str, NonEmpty] = "point_labels"
    mask_input: str | None = "mask_input"
    has_mask_input: str | None = "has_mask_input"
    orig_im_size: str | None = "orig_im_size"


@dataclass(frozen=True)
class PromptSpec:
    """The second model of a ``prompt`` family bundle: the prompt decoder, and how prompts reach it.

    The bundle's ``model`` / ``input`` / ``outputs`` describe the image
    encoder (run once per frame); this describes the decoder (run per batch of
    prompts on the cached embeddings). Conventions are SAM's: the encoder
    input is the image resized so that its longest side fills the input
    (``resize``), normalized with ``input.mean``/``input.std``, padded with
    zeros (after normalization) at the bottom and right; prompt points are in
    that resized image's pixels, boxes are two corner points labelled 2 and 3,
    a point labelled -1 pads prompts that have no box.

    Attributes:
        model: The decoder's file in the bundle.
        inputs: The decoder's input tensor names.
        outputs: Decoder outputs by role: ``low_res_logits`` (``(B, T, h, w)``
            mask logits over the padded input), ``iou`` (``(B, T)`` predicted
            IoU), optionally ``masks`` (full-resolution logits the runtime does
            not fetch).
        resize: ``pil-bilinear`` (``SamPredictor``'s PIL resize, bit exact) or
            ``linear`` (faster, differs by one level on many pixels).
        mask_tokens: ``all``: the decoder returns every mask token (token 0
            the single-mask answer, 1.. the multimask ones, as
            ``SamPredictor``); ``selected``: it returns one mask it selected
            itself (``--return-single-mask``).
        batched: The decoder takes many prompts in one run (a dynamic batch axis).
        mask_threshold: Mask pixels are ``logit > mask_threshold``.
        max_prompts: Most prompts per call.
    """

    model: Annotated[str, NonEmpty]
    inputs: PromptInputs = field(default_factory=PromptInputs)
    outputs: Annotated[tuple[OutputSpec, ...], Length(2, 8)] = ()
    resize: str = "pil-bilinear"
    mask_tokens: str = "all"
    batched: bool = False
    mask_threshold: Annotated[float, Range(-100, 100)] = 0.0
    max_prompts: Annotated[int, Range(1, MAX_DETECTIONS)] = 256


@dataclass(frozen=True)
class MatrixNMS:
    """Matrix NMS of the ``kernel`` family (SOLOv2): soft, class-aware decay of overlapping masks' scores.

    Attributes:
        kernel: Decay function of the mask IoU: ``gaussian`` ``exp(-sigma * iou^2)`` or ``linear`` ``1 - iou``.
        sigma: The gaussian kernel's width (mmdet's convention: ``exp(-sigma * iou^2)``).
        pre_top_k: Candidates (cell, class pairs above the score threshold, best first) that get a mask at all.
        update_threshold: Keep an instance whose decayed score is ``>=`` this.
    """

    kernel: Literal["gaussian", "linear"] = "gaussian"
    sigma: Annotated[float, Range(0, 1000, lo_open=True)] = 2.0
    pre_top_k: Annotated[int, Range(1, 10_000)] = 500
    update_threshold: Annotated[float, Range(0, 1)] = 0.05


@dataclass(frozen=True)
class KernelSpec:
    """The ``kernel`` family's grids (SOLOv2-style dynamic kernels; :mod:`edgeseg.families.kernel`).

    Attributes:
        grids: Grid size ``g_l`` per level: the ``cell_scores`` and ``kernels`` rows are the cells of
            every level in order, ``g_l x g_l`` row-major each.
        strides: Per level, the area in mask-grid cells a candidate of that level must exceed (SOLOv2's
            ``strides`` filter: ``area > stride``).
        mask_threshold: A mask-feature cell is inside a mask when its probability is ``> mask_threshold``.
        matrix_nms: The suppression settings.
    """

    grids: Annotated[tuple[Annotated[int, Range(1, 1024)], ...], Length(1, 16)]
    strides: Annotated[tuple[Annotated[int, Range(0, 1 << 20)], ...], Length(1, 16)]
    mask_threshold: Annotated[float, Range(0.001, 0.999)] = 0.5
    matrix_nms: MatrixNMS = field(default_factory=MatrixNMS)

    def __post_init__(self) -> None:
        if len(self.grids) != len(self.strides):
            raise ValueError(f"grids and strides need one value per level, got {len(self.grids)} grids and "
                             f"{len(self.strides)} strides")


@dataclass(frozen=True)
class Manifest:
    """A parsed, validated bundle manifest (schema version 1)."""

    name: Annotated[str, NonEmpty]
    family: str
    format: str
    precision: str
    model: Annotated[str, NonEmpty]
    input: InputSpec
    outputs: Annotated[tuple[OutputSpec, ...], Length(1, 64)]
    classes: Annotated[tuple[Annotated[str, NonEmpty], ...], Length(1, 10_000), Unique()]
    anchors: Anchors | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)
    files: dict[str, FileEntry] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    #: The prompt decoder of a two-model (``prompt`` family) bundle; ``None`` for one model.
    prompt: PromptSpec | None = None
    #: The grids and Matrix NMS of a ``kernel`` family bundle (SOLOv2-style); ``None`` for other families.
    kernel: KernelSpec | None = None

    @property
    def license(self) -> str:
        """The model's licence (``provenance.license``, SPDX id such as ``AGPL-3.0``), or ``"unknown"``."""
        return str(self.provenance.get("license") or "unknown")

    @property
    def source(self) -> str:
        """Where the weights came from (``provenance.source``), or ``"unknown"``."""
        return str(self.provenance.get("source") or "unknown")

    def output(self, role: str) -> OutputSpec:
        """Returns the output with ``role`` (validated to exist for the family)."""
        for out in self.outputs:
            if out.role == role:
                return out
        raise KeyError(f"manifest has no output with role {role!r}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["files"] = {k: dataclasses.asdict(v) for k, v in self.files.items()}
        if self.prompt is None:
            del d["prompt"]  # single-model manifests stay as they were
        if self.kernel is None:
            del d["kernel"]
        return d

    @property
    def model_files(self) -> tuple[str, ...]:
        """The bundle's model files: the model, and the prompt decoder of a two-model bundle."""
        return (self.model,) if self.prompt is None else (self.model, self.prompt.model)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    def replace(self, **changes: Any) -> Manifest:
        return dataclasses.replace(self, **changes)


# --------------------------------------------------------------------------- parsing


def _choice(value: Any, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise ManifestError(f"manifest.{what} must be one of {list(allowed)}, got {value!r}")
    return value


def parse_manifest(data: dict[str, Any]) -> Manifest:
    """Validates a decoded manifest JSON object and returns a :class:`Manifest`.

    Types and ranges come from the dataclass annotations
    (:func:`edgeseg.fromdict.from_dict`); the cross-checks that span fields
    are here and in the family's :meth:`~edgeseg.families.base.Family.check`.

    Raises:
        ManifestError: naming the first problem found (key path, what was
            expected, what was found): missing key, unknown schema version,
            bad type or value, output roles that don't fit the family.
    """
    if not isinstance(data, dict):
        raise ManifestError(f"manifest must be a JSON object, got {type(data).__name__}")
    if "schema_version" not in data:
        raise ManifestError("manifest is missing required key 'schema_version'")
    version = data["schema_version"]
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise ManifestError(
            f"unsupported manifest schema_version {version!r}; this edgeseg reads version "
            f"{SCHEMA_VERSION} (re-export the bundle, or upgrade edgeseg)"
        )
    from edgeseg.families import FAMILIES  # late: families import this module

    manifest = from_dict(Manifest, data, "manifest", error=ManifestError)
    _choice(manifest.family, tuple(FAMILIES.names()), "family")
    _choice(manifest.format, known_formats(), "format")
    _choice(manifest.precision, PRECISIONS, "precision")
    _check_input(manifest.input)
    for key in ("license", "source"):
        value = manifest.provenance.get(key)
        if value is not None and not isinstance(value, str):
            raise ManifestError(f"manifest.provenance.{key} must be str, got {type(value).__name__} {value!r}")
    for i, out in enumerate(manifest.outputs):
        ch = out.channels
        if ch is not None and not ch[0] < ch[1]:
            raise ManifestError(f"manifest.outputs[{i}].channels must be [start, stop) with start < stop, got {list(ch)}")
    _check_shared(manifest.outputs)
    family = FAMILIES.get(manifest.family)
    if (manifest.prompt is not None) != family.two_models:
        raise ManifestError(
            f"manifest family {manifest.family!r} " + ("needs" if family.two_models else "takes no")
            + f" 'prompt' (the decoder of a two-model bundle), got {'none' if manifest.prompt is None else 'one'}"
        )
    if manifest.kernel is not None and "kernel" not in family.blocks:
        raise ManifestError(f"manifest family {manifest.family!r} takes no 'kernel' block (family 'kernel' does)")
    family.check(manifest)
    return manifest


def _check_input(inp: InputSpec) -> None:
    _choice(inp.layout, INPUT_LAYOUTS, "input.layout")
    _choice(inp.dtype, INPUT_DTYPES, "input.dtype")
    _choice(inp.color, ("RGB", "BGR"), "input.color")
    _choice(inp.letterbox.resample, ("linear", "pil-bilinear", "torchvision-bilinear", "torch-bilinear"),
            "input.letterbox.resample")
    if len(inp.shape) != 4 or inp.shape[0] != 1:
        raise ManifestError(f"manifest.input.shape must be 4 positive ints, batch 1, got {list(inp.shape)}")
    channels = inp.shape[1] if inp.layout == "NCHW" else inp.shape[3]
    if channels != 3:
        raise ManifestError(f"manifest.input.shape has {channels} channels for layout {inp.layout}, expected 3")
    if inp.dtype in ("uint8", "int8") and inp.quant is None:
        raise ManifestError(f"manifest.input.dtype {inp.dtype} needs input.quant (scale, zero_point)")
    extreme = [abs(m / s) for m, s in zip(inp.mean, inp.std, strict=True)] + [inp.scale * 255 / s for s in inp.std]
    if not all(math.isfinite(v) and v < 1e6 for v in extreme):
        raise ManifestError(f"manifest.input mean/std/scale give model inputs beyond 1e6: mean {inp.mean}, std {inp.std}")


def outputs_by_role(outputs: tuple[OutputSpec, ...]) -> dict[str, OutputSpec]:
    return {o.role: o for o in outputs}


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
