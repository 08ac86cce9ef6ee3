"""Model outputs -> canonical decoder inputs, as the manifest describes them.

Backends return raw tensors keyed by output name, in whatever layout and
dtype the format produced (NCHW or NHWC protos, anchors-first or
channels-first heads, channel ranges of one shared tensor, float or int8 with
scale/zero-point). The views here turn them into one canonical form without
copying: per-anchor tensors ``(A, C)``, maps ``(K, Hp, Wp)``, each with its
:class:`Quant` (or ``None``). Each family builds its canonical tensors from
these views (:mod:`edgeseg.families`), so no decoder has per-format code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeseg.manifest import OutputSpec, Quant


@dataclass(frozen=True)
class QTensor:
    """A tensor view plus its quantization (``None`` for float tensors)."""

    data: np.ndarray
    quant: Quant | None = None

    def dequantize(self) -> np.ndarray:
        """Float32 values: ``(q - zero_point) * scale`` evaluated in float32."""
        if self.quant is None:
            return self.data.astype(np.float32, copy=False)
        q = self.data.astype(np.float32)
        q -= np.float32(self.quant.zero_point)
        q *= np.float32(self.quant.scale)
        return q

    def rows(self, index: np.ndarray) -> np.ndarray:
        """Float32 values of the selected rows only (dequantizes just those)."""
        return QTensor(self.data[index], self.quant).dequantize()


@dataclass(frozen=True)
class ProtoTensors:
    """Canonical inputs of the ``proto`` family decoder (built by :mod:`edgeseg.families.proto`).

    Attributes:
        boxes: ``(A, 4)`` raw box regression (encoding per the manifest).
        scores: ``(A, C)`` class scores or logits; ``(A, 1)`` when ``labels`` is set.
        coeffs: ``(A, K)`` mask coefficients.
        protos: ``(K, Hp, Wp)`` prototype maps.
        objectness: ``(A, 1)`` probabilities multiplying every class score
            (YOLOv5-seg), or ``None``.
        labels: ``(A, 1)`` class ids stored as numbers, one detection per row
            (end-to-end models), or ``None``.
    """

    boxes: QTensor
    scores: QTensor
    coeffs: QTensor
    protos: QTensor
    objectness: QTensor | None = None
    labels: QTensor | None = None


def output_array(raw: dict[str, np.ndarray], spec: OutputSpec) -> np.ndarray:
    """The backend's array for ``spec`` (a whole tensor, possibly shared with other roles)."""
    if spec.name not in raw:
        raise ValueError(f"backend returned no output {spec.name!r}; got {sorted(raw)}")
    return raw[spec.name]


def row_view(raw: dict[str, np.ndarray], spec: OutputSpec, channels: int | None = None) -> np.ndarray:
    """``(A, C)`` view of a per-anchor (or per-detection) output, its channel range applied.

    Args:
        raw: Backend outputs by name.
        spec: The output: layout ``BAC`` (1, A, C) or ``BCA`` (1, C, A), batch
            dimension optional; ``spec.channels`` selects a range of a shared tensor.
        channels: Expected C after the range, or ``None`` to skip the check.

    Raises:
        ValueError: naming the output and the expected vs. found shape.
    """
    arr = output_array(raw, spec)
    if arr.ndim == 3:
        if arr.shape[0] != 1:
            raise ValueError(f"output {spec.name!r}: batch size must be 1, got shape {arr.shape}")
        arr = arr[0]
    if arr.ndim != 2:
        raise ValueError(
            f"output {spec.name!r} (role {spec.role}) must be (1, A, C) or (A, C) in layout "
            f"{spec.layout}, got shape {arr.shape}"
        )
    if spec.layout == "BCA":
        arr = arr.T
    if spec.channels is not None:
        start, stop = spec.channels
        if stop > arr.shape[1]:
            raise ValueError(
                f"output {spec.name!r} (role {spec.role}) takes channels [{start}, {stop}) but the tensor "
                f"has {arr.shape[1]} (shape {output_array(raw, spec).shape}, layout {spec.layout})"
            )
        arr = arr[:, start:stop]
    if channels is not None and arr.shape[1] != channels:
        raise ValueError(
            f"output {spec.name!r} (role {spec.role}) must have {channels} channels, got shape {arr.shape}"
        )
    return arr


def map_view(raw: dict[str, np.ndarray], spec: OutputSpec) -> np.ndarray:
    """``(K, H, W)`` view of a map output (``NCHW`` or ``NHWC``, batch dimension of 1)."""
    arr = output_array(raw, spec)
    if arr.ndim == 4:
        if arr.shape[0] != 1:
            raise ValueError(f"output {spec.name!r}: batch size must be 1, got shape {arr.shape}")
        arr = arr[0]
    if arr.ndim != 3:
        raise ValueError(f"output {spec.name!r} ({spec.role}) must be 4-D {spec.layout}, got shape {arr.shape}")
    if spec.layout == "NHWC":
        arr = arr.transpose(2, 0, 1)
    if spec.channels is not None:
        arr = arr[spec.channels[0] : spec.channels[1]]
    return arr
