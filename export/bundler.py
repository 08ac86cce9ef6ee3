"""Manifest construction and bundle writing for exported model files."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
from pathlib import Path

from edgeseg.bundle import Bundle, write_bundle
from edgeseg.families import get_family
from edgeseg.manifest import SCHEMA_VERSION, Anchors, InputSpec, Letterbox, Manifest, OutputSpec, Quant
from export.spec import ModelSpec


def package_versions(*packages: str) -> dict[str, str]:
    """Installed versions of ``packages`` by distribution name; those not installed are left out."""
    out = {}
    for p in packages:
        try:
            out[p] = importlib.metadata.version(p)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def input_spec(
    spec: ModelSpec,
    *,
    name: str = "images",
    layout: str = "NCHW",
    dtype: str = "float32",
    quant: Quant | None = None,
) -> InputSpec:
    """The model input of ``spec`` as the runtime's preprocessor fills it.

    The exporter's calibration uses the same spec with the runtime's own
    :class:`~edgeseg.preprocess.Preprocessor`, so calibration tensors and
    device inputs can never drift apart.

    Args:
        spec: The model description (size, normalization).
        name: Input tensor name in the exported file.
        layout: ``NCHW`` or ``NHWC``.
        dtype: Tensor dtype (``float32``, or ``int8``/``uint8`` with ``quant``).
        quant: Quantization of an integer input.
    """
    h, w = spec.imgsz
    return InputSpec(
        name=name,
        shape=(1, 3, h, w) if layout == "NCHW" else (1, h, w, 3),
        layout=layout,
        dtype=dtype,
        color="RGB",
        scale=spec.scale,
        mean=spec.mean,
        std=spec.std,
        letterbox=Letterbox(pad_value=114, center=True),
        quant=quant,
        shortest_edge=spec.shortest_edge,
    )


def build_manifest(
    spec: ModelSpec,
    *,
    fmt: str,
    precision: str,
    model_file: str,
    input_name: str = "images",
    layout: str = "NCHW",
    input_dtype: str = "float32",
    input_quant: Quant | None = None,
    output_layouts: dict[str, str] | None = None,
    output_quant: dict[str, Quant] | None = None,
    tensor_names: dict[str, str] | None = None,
    extra_provenance: dict | None = None,
) -> Manifest:
    """Builds the manifest for one exported variant of ``spec``.

    Args:
        spec: The model description.
        fmt: ``onnx`` or ``tflite``.
        precision: ``fp32`` / ``fp16`` / ``int8`` / ``mixed``.
        model_file: File name of the model inside the bundle.
        input_name: Input tensor name in the exported file.
        layout: ``NCHW`` or ``NHWC`` input layout.
        input_dtype: Input tensor dtype.
        input_quant: Quantization of an integer input.
        output_layouts: Role -> layout where it differs from the defaults
            (``BAC`` for per-anchor outputs, ``NCHW`` for protos).
        output_quant: Role -> quantization of integer outputs.
        tensor_names: Role -> tensor name in the exported file, where it
            differs from ``spec.output_names``.
        extra_provenance: Merged into the provenance record.
    """
    layouts = output_layouts or {}
    quant = output_quant or {}
    names = dict(zip(spec.output_roles, spec.output_names, strict=True))
    names.update(tensor_names or {})
    outputs = []
    family = get_family(spec.family)
    maps = family.map_roles()
    for role in spec.output_roles:
        default_layout = "NCHW" if role in maps else "BAC"
        outputs.append(
            OutputSpec(
                name=names[role],
                role=role,
                layout=layouts.get(role, default_layout),
                encoding=spec.box_encoding if role == "boxes" else None,
                activation=spec.score_activation if "activation" in family.roles[role].keys else None,
                sampling=spec.mask_sampling if role in maps else None,
                quant=quant.get(role),
            )
        )
    provenance = {
        "source": spec.source,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "exporter": package_versions("edgeseg", "torch", "onnx", "onnxruntime", "onnxscript", "litert-torch", "ai-edge-litert"),
    }
    provenance.update(extra_provenance or {})
    return Manifest(
        name=spec.name,
        family=spec.family,
        format=fmt,
        precision=precision,
        model=model_file,
        input=input_spec(spec, name=input_name, layout=layout, dtype=input_dtype, quant=input_quant),
        outputs=tuple(outputs),
        classes=spec.class_names,
        anchors=Anchors(strides=spec.strides) if spec.box_encoding == "ltrb" else None,
        thresholds=spec.thresholds,
        provenance=provenance,
        schema_version=SCHEMA_VERSION,
        kernel=spec.kernel,
    )


def bundle_model_file(out_dir: Path, manifest: Manifest, model_path: Path, *, force: bool = False) -> Bundle:
    """Writes ``model_path`` and ``manifest`` as a verified bundle in ``out_dir``."""
    return write_bundle(out_dir, manifest, {manifest.model: model_path}, force=force)
