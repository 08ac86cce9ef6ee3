"""What every import source shares: the user's options, and small helpers.

A source (one per exporting library) is registered in
:data:`edgeseg.imports.SOURCES` and meets :class:`Source`: it recognizes a
:class:`~edgeseg.imports.model_file.ModelFile` by its metadata and turns it
into a manifest whose defaults reproduce that library's own ``predict``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from edgeseg.imports.model_file import ModelFile
from edgeseg.manifest import Manifest


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
