"""Decoding: raw model outputs -> instances in original-image pixels.

:class:`Decoder` is built once per bundle from its manifest (anchor grid,
default thresholds) and then called per frame. It picks the compiled C path
when the extension is importable and the numpy reference otherwise; both take
the same canonical tensors (:mod:`edgeseg.decode.tensors`), so no backend or
format has decoder code of its own.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os

import numpy as np

from edgeseg.decode import cpath, reference
from edgeseg.decode.options import DecodeOptions, Detections
from edgeseg.decode.tensors import ProtoTensors, QTensor, proto_tensors
from edgeseg.manifest import Manifest
from edgeseg.preprocess import LetterboxInfo

__all__ = ["Decoder", "DecodeOptions", "Detections", "ProtoTensors", "QTensor", "active_path"]

log = logging.getLogger(__name__)


_FORCE_ENV = "EDGESEG_DECODER"


def active_path() -> str:
    """Which decoding path new :class:`Decoder` objects use: ``"c"`` or ``"numpy"``.

    The compiled C path when its extension is importable, else the numpy
    reference (logged once). ``EDGESEG_DECODER=numpy`` forces the reference
    (tests, benchmarks); ``EDGESEG_DECODER=c`` makes a missing extension an error.
    """
    forced = os.environ.get(_FORCE_ENV, "").strip().lower()
    if forced not in ("", "c", "numpy"):
        raise ValueError(f"{_FORCE_ENV} must be 'c' or 'numpy', got {forced!r}")
    if forced == "numpy":
        return "numpy"
    if cpath.available():
        return "c"
    if forced == "c":
        raise RuntimeError(f"{_FORCE_ENV}=c but the C decoder extension is not built (pip install -e . with a compiler)")
    _log_fallback_once()
    return "numpy"


@functools.lru_cache(maxsize=1)
def _log_fallback_once() -> None:
    log.warning("edgeseg C decoder extension not built; decoding with the numpy reference (slower)")


class Decoder:
    """Per-bundle decoder for the ``proto`` family.

    Args:
        manifest: Bundle manifest (family, output roles, anchors, thresholds).
    """

    def __init__(self, manifest: Manifest) -> None:
        if manifest.family != "proto":
            raise ValueError(f"no decoder for model family {manifest.family!r} in this edgeseg version")
        self.manifest = manifest
        self.options = DecodeOptions.from_manifest(manifest)
        inp = manifest.input
        self.path = active_path()
        self._decode = cpath.decode_proto if self.path == "c" else reference.decode_proto
        self._grid = None
        if self.options.box_encoding == "ltrb":
            anchors = manifest.anchors
            self._grid = reference.anchor_grid((inp.height, inp.width), anchors.strides, anchors.offset)

    @property
    def anchor_count(self) -> int | None:
        return None if self._grid is None else int(self._grid[0].shape[0])

    def __call__(
        self, raw: dict[str, np.ndarray], letterbox: LetterboxInfo, options: DecodeOptions | None = None
    ) -> Detections:
        """Decodes one frame.

        Args:
            raw: Backend outputs, name -> array.
            letterbox: Geometry of the frame's letterbox.
            options: Overrides of the manifest's defaults.
        """
        opts = options or self.options
        tensors = proto_tensors(raw, self.manifest, self.anchor_count)
        return self._decode(tensors, letterbox, opts, self._grid)

    def decode_as(self, raw: dict[str, np.ndarray], letterbox: LetterboxInfo, options: DecodeOptions, masks: str,
                  out: np.ndarray | None = None):
        """Decodes one frame with masks as ``"rle"`` or ``"full"`` (into ``out``); see :mod:`edgeseg.maskforms`."""
        from edgeseg.maskforms import decode_form

        tensors = proto_tensors(raw, self.manifest, self.anchor_count)
        return decode_form(self.path, masks, tensors, letterbox, options, self._grid, out)

    def with_options(self, **changes) -> DecodeOptions:
        """The manifest's default options with ``changes`` applied."""
        return dataclasses.replace(self.options, **changes)
