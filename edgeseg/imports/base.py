"""What every import source shares: the user's options, and small helpers.

A source (one per exporting library) is registered in
:data:`edgeseg.imports.SOURCES` and meets :class:`Source`: it recognizes a
:class:`~edgeseg.imports.model_file.ModelFile` by its metadata and turns it
into a manifest whose defaults reproduce that library's own ``predict``.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from edgeseg.imports.model_file import ModelFile
from edgeseg.manifest import SCHEMA_VERSION, InputSpec, Letterbox, Manifest, OutputSpec, Thresholds


@dataclass(frozen=True)
class ImportOptions:
    """What the user can supply when a model's metadata is missing or wrong.

    Attributes:
        names: Class names, in class-id order (``--names a,b,c``).
        imgsz: ``(height, width)`` for a dynamic input (``--imgsz H,W``).
        task: The model's task when its metadata lacks it (``--task segment``).
        end2end: Force (``True``) or deny (``False``) end-to-end outputs.
        name: Bundle name (default: the model file's stem).
        precision: Manifest precision (default: from the file's tensors).
        decoder: The second model of a two-model bundle: a SAM-style prompt
            decoder beside the image encoder (``--decoder decoder.onnx``).
    """

    names: tuple[str, ...] | None = None
    imgsz: tuple[int, int] | None = None
    task: str | None = None
    end2end: bool | None = None
    name: str | None = None
    precision: str | None = None
    decoder: str | None = None


class Source(Protocol):
    """One exporting library's conventions.

    A source whose bundles hold more than one model (SAM's encoder + prompt
    decoder) also has ``extra_files(model, opts) -> {bundle name: path}``:
    the files :func:`~edgeseg.imports.import_model` copies beside the model.
    """

    name: str

    def detect(self, model: ModelFile) -> bool:
        """Whether ``model`` looks like this library's export."""
        ...

    def manifest(self, model: ModelFile, opts: ImportOptions) -> Manifest:
        """The manifest describing ``model`` (raises ImportFailed naming what does not fit)."""
        ...


def bundle_name(path: Path, opts: ImportOptions) -> str:
    """``opts.name`` or the file stem, reduced to ``[A-Za-z0-9._-]``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", opts.name or path.stem).strip("-") or "model"


def precision_of(model: ModelFile) -> str:
    """``int8`` when the model's I/O is quantized, ``fp16`` for float16 I/O, else ``fp32``.

    Weight precision is not visible from the runtime's libraries for ONNX; a
    caller that knows better passes ``ImportOptions.precision``.
    """
    dtypes = {t.dtype for t in (*model.inputs, *model.outputs)}
    if dtypes & {"int8", "uint8"}:
        return "int8"
    if "float16" in dtypes:
        return "fp16"
    return model.weight_precision or "fp32"


def provenance(source: str, model: ModelFile, licence: str, upstream: dict, **extra) -> dict:
    """The manifest's ``provenance`` of an imported model: source, time, importer, licence, the library's metadata."""
    return {
        "source": f"{source}: {model.path.name}",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "importer": "edgeseg import",
        **extra,
        "license": licence,
        "upstream": {k: str(v) for k, v in upstream.items()},
    }


def query_manifest(model: ModelFile, opts: ImportOptions, *, size: tuple[int, int], names: tuple[str, ...],
                   queries: int, mean: tuple[float, ...], std: tuple[float, ...], resample: str,
                   outputs: tuple[OutputSpec, ...], thresholds: dict, provenance: dict) -> Manifest:
    """A ``query`` family manifest (Mask2Former, RF-DETR-Seg): the whole image stretched to ``size``, RGB / 255.

    Args:
        size: ``(H, W)`` of the model input.
        queries: ``Q``; at most ``min(Q, 1000)`` instances per frame.
        resample: The library's resize (:mod:`edgeseg.resample`, :mod:`edgeseg.preprocess`).
        thresholds: The library's ``score``, ``score_strict`` and ``drop_empty_masks``.
    """
    inp = model.inputs[0]
    return Manifest(
        name=bundle_name(model.path, opts),
        family="query",
        format=model.format,
        precision=opts.precision or precision_of(model),
        model=model.path.name,
        input=InputSpec(name=inp.name, shape=(1, 3, int(size[0]), int(size[1])), layout="NCHW", dtype=inp.dtype,
                        color="RGB", scale=1.0 / 255.0, mean=mean, std=std,
                        letterbox=Letterbox(pad_value=0, center=False, keep_aspect=False, resample=resample)),
        outputs=outputs,
        classes=names,
        anchors=None,
        thresholds=Thresholds(iou=0.5, max_detections=min(int(queries), 1000), pre_nms_topk=1000,
                              class_agnostic=True, nms=False, **thresholds),
        provenance=provenance,
        schema_version=SCHEMA_VERSION,
    )
