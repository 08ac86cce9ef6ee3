"""Decoding: raw model outputs -> :class:`~edgeseg.result.Result` in original-image pixels.

:class:`Decoder` is built once per bundle from its manifest and then called
per frame. The manifest's model family (:mod:`edgeseg.families`) supplies the
options, the canonical tensors and the decode pair; the Decoder picks the
compiled C path when the extension is importable and the numpy reference
otherwise, so no backend, format or family has a decoder switch of its own.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os

import numpy as np

from edgeseg.decode import cpath
from edgeseg.decode.options import DecodeOptions, ProtoOptions
from edgeseg.decode.tensors import ProtoTensors, QTensor
from edgeseg.manifest import Manifest
from edgeseg.preprocess import LetterboxInfo
from edgeseg.result import Result

__all__ = ["Decoder", "DecodeOptions", "ProtoOptions", "ProtoTensors", "QTensor", "active_path"]

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
    """Per-bundle decoder of any registered model family.

    Args:
        manifest: Bundle manifest (family, output roles, thresholds).

    Attributes:
        family: The family plug-in (:mod:`edgeseg.families`).
        options: The family's options with the manifest's defaults.
        path: ``"c"`` or ``"numpy"``.
        impl: The family's frame decoder (state built once: anchor grid, ...).
    """

    def __init__(self, manifest: Manifest) -> None:
        from edgeseg.families import get_family

        self.manifest = manifest
        self.family = get_family(manifest.family)
        self.options = self.family.options(manifest)
        self.path = active_path()
        self.impl = self.family.decoder(manifest, self.path)

    def __call__(
        self, raw: dict[str, np.ndarray], letterbox: LetterboxInfo, options: DecodeOptions | None = None
    ) -> Result:
        """Decodes one frame.

        Args:
            raw: Backend outputs, name -> array.
            letterbox: Geometry of the frame's letterbox.
            options: Overrides of the manifest's defaults (see :meth:`with_options`).

        Returns:
            The frame's instances, best first, box-cropped masks; no timings yet.
        """
        from edgeseg.maskforms import keep_scores

        opts = options or self.options
        result = self.impl(raw, letterbox, opts)
        if opts.drop_empty_masks and opts.with_masks:
            result = result.select([m.bitmap.any() for m in result.masks])
        return keep_scores(result, opts.min_score)

    def decode_as(self, raw: dict[str, np.ndarray], letterbox: LetterboxInfo, options: DecodeOptions, masks: str,
                  out: np.ndarray | None = None) -> Result:
        """Decodes one frame with masks as ``"rle"`` or ``"full"`` (into ``out``); see :mod:`edgeseg.maskforms`.

        A family decoder with its own ``decode_as`` (the ``proto`` C path writes
        RLE and frames while rendering) is asked directly; any other family's
        cropped masks are converted.
        """
        from edgeseg.maskforms import check_form, from_cropped, keep_scores

        check_form(masks, out)
        native = getattr(self.impl, "decode_as", None)
        if native is not None:
            return keep_scores(native(raw, letterbox, options, masks, out), options.min_score)
        return from_cropped(self(raw, letterbox, options), masks, out)

    def with_options(self, **changes) -> DecodeOptions:
        """The manifest's default options with ``changes`` applied."""
        return dataclasses.replace(self.options, **changes)
