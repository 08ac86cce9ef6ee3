"""``edgeseg import``: models exported by their own library -> verified bundles, without torch.

A registry of sources, one per exporting library; each knows that library's
metadata and output layout (:mod:`edgeseg.imports.ultralytics`). A float
import needs only the runtime's dependencies (onnxruntime or LiteRT read the
model's tensors and metadata), so it runs on a board as well as on a
workstation; int8 quantization of an imported model lives in
:mod:`export.import_int8` (it needs the ``onnx`` package).

Example::

    from edgeseg.imports import import_model
    bundle = import_model("yolov8n-seg.onnx", "bundles/yolov8n-seg")
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeseg.bundle import Bundle, load_bundle, write_bundle
from edgeseg.imports.base import ImportOptions, Source
from edgeseg.imports.model_file import ImportFailed, ModelFile, read_model_file
from edgeseg.registry import Registry

SOURCES: Registry[Source] = Registry(
    "import source",
    {"ultralytics": "edgeseg.imports.ultralytics:SOURCE", "transformers": "edgeseg.imports.transformers:SOURCE",
     "sam": "edgeseg.imports.sam:SOURCE", "rfdetr": "edgeseg.imports.rfdetr:SOURCE"},
)


def detect_source(model: ModelFile) -> Source:
    """The first registered source that recognizes ``model``.

    Raises:
        ImportFailed: none does; the message lists the metadata keys found.
    """
    for name in SOURCES:
        source = SOURCES.get(name)
        if source.detect(model):
            return source
    keys = sorted(model.metadata)[:12]
    raise ImportFailed(
        f"{model.path}: no import source recognizes this model (metadata keys {keys}); known sources "
        f"{SOURCES.names()}: pass --source NAME and the missing facts (--names, --imgsz, --task)"
    )


def import_model(
    model: str | Path,
    out: str | Path,
    *,
    source: str | None = None,
    options: ImportOptions | None = None,
    force: bool = False,
) -> Bundle:
    """Imports a foreign model file into a verified bundle directory.

    Args:
        model: The ``.onnx`` / ``.tflite`` file as its library exported it.
        out: Bundle directory to write.
        source: A registered source name; ``None`` to detect it from the metadata.
        options: Facts the metadata lacks (names, input size, ...).
        force: Replace an existing bundle at ``out``.

    Returns:
        The bundle, loaded back, verified and run once on a blank frame (so a
        model whose outputs do not fit the manifest fails here, not on a board).

    Raises:
        ImportFailed: the model cannot be imported; the message says why and
            which flag supplies what is missing.
    """
    options = options or ImportOptions()
    info = read_model_file(model)
    src = SOURCES.get(source) if source else detect_source(info)
    manifest = src.manifest(info, options)
    files = {manifest.model: info.path}
    if hasattr(src, "extra_files"):  # a two-model bundle's second file (SAM's prompt decoder)
        files.update(src.extra_files(info, options))
    write_bundle(out, manifest, files, force=force)
    bundle = load_bundle(out)
    check_runs(bundle)
    return bundle


def check_runs(bundle: Bundle) -> None:
    """Runs the bundle once on a grey frame through the whole runtime (raises ImportFailed)."""
    from edgeseg.device_config import DeviceConfig
    from edgeseg.segmenter import Segmenter

    inp = bundle.manifest.input
    if bundle.manifest.prompt is not None:
        from edgeseg.prompt import PromptSegmenter

        try:
            with PromptSegmenter(bundle) as seg:
                seg.prompt(np.full((inp.height // 2, inp.width, 3), 114, np.uint8), boxes=[[8, 8, 64, 64]])
        except (ValueError, RuntimeError) as exc:
            raise ImportFailed(f"the imported bundle {bundle.root} does not run: {exc}") from exc
        return
    try:
        with Segmenter.from_bundle(bundle, DeviceConfig()) as seg:
            seg(np.full((inp.height, inp.width, 3), 114, np.uint8))
    except (ValueError, RuntimeError) as exc:
        raise ImportFailed(f"the imported bundle {bundle.root} does not run: {exc}") from exc


__all__ = ["SOURCES", "ImportFailed", "ImportOptions", "detect_source", "import_model", "read_model_file"]
