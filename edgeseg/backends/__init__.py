"""Inference backends, one module per runtime library, chosen by bundle format.

Every backend meets :class:`Backend`: built by its module's ``load()`` from a
verified bundle and the board's :class:`~edgeseg.device_config.BackendOptions`,
it runs one input tensor and returns the outputs by manifest name.
:data:`BACKENDS` maps the manifest's ``format`` to the backend's module
(``load``, ``library_version``), imported late, so a board without TFLite
never imports it (and vice versa); the manifest accepts exactly these formats.
"""

from __future__ import annotations

from types import ModuleType
from typing import Protocol

import numpy as np

from edgeseg.bundle import Bundle
from edgeseg.device_config import BackendOptions
from edgeseg.registry import Registry

#: Manifest ``format`` -> module with ``load(bundle, options) -> Backend`` and ``library_version()``.
BACKENDS: Registry[ModuleType] = Registry(
    "backend",
    {
        "onnx": "edgeseg.backends.onnxruntime",
        "tflite": "edgeseg.backends.tflite",
        "openvino": "edgeseg.backends.openvino",
        "ncnn": "edgeseg.backends.ncnn",
        "rknn": "edgeseg.backends.rknn",
    },
)


class BackendUnavailable(ImportError):
    """The library a backend needs is not installed (the message names the pip extra)."""


class Backend(Protocol):
    """What the runtime needs from an inference backend."""

    #: Human-readable description of what actually runs (e.g. the ORT provider).
    device: str

    def run(self, tensor: np.ndarray) -> dict[str, np.ndarray]:
        """Runs one preprocessed input tensor; returns outputs keyed by manifest name."""
        ...

    def close(self) -> None:
        """Releases the session / interpreter."""
        ...


def load_backend(bundle: Bundle, options: BackendOptions) -> Backend:
    """Opens the backend for ``bundle.manifest.format``."""
    return BACKENDS.get(bundle.manifest.format).load(bundle, options)


def available_backends() -> dict[str, str]:
    """Format -> library version, or why it is unavailable (for ``edgeseg info``)."""
    status = {}
    for fmt in BACKENDS:
        try:
            status[fmt] = BACKENDS.get(fmt).library_version()
        except BackendUnavailable as exc:
            status[fmt] = f"unavailable ({exc})"
    return status


def check_input(tensor: np.ndarray, shape: tuple[int, ...], dtype: str, *, bounded: bool = False) -> None:
    """Raises ValueError unless ``tensor`` has the model's input shape and dtype.

    With ``bounded`` (a manifest with ``input.shortest_edge``) every dimension may also be smaller.
    """
    fits = tuple(tensor.shape) == tuple(shape) or (
        bounded and tensor.ndim == len(shape) and all(0 < t <= s for t, s in zip(tensor.shape, shape, strict=True))
    )
    if not fits or tensor.dtype != np.dtype(dtype):
        raise ValueError(
            f"model input must be {dtype} {tuple(shape)}, got {tensor.dtype} {tuple(tensor.shape)}"
        )
