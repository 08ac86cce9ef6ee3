"""Model outputs -> canonical decoder inputs, as the manifest describes them.

Backends return raw tensors keyed by output name, in whatever layout and
dtype the format produced (NCHW or NHWC protos, anchors-first or
channels-first heads, float or int8 with scale/zero-point). This module turns
them into one canonical form without copying: per-anchor tensors ``(A, C)``,
prototypes ``(K, Hp, Wp)``, each with its :class:`Quant` (or ``None``). Every
decoder (numpy reference, C) starts from here, so no decoder has per-format
code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeseg.manifest import Manifest, OutputSpec, Quant


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
    """Canonical inputs of the ``proto`` family decoder.

    Attributes:
        boxes: ``(A, 4)`` raw box regression (encoding per the manifest).
        scores: ``(A, C)`` class scores or logits.
        coeffs: ``(A, K)`` mask coefficients.
        protos: ``(K, Hp, Wp)`` prototype maps.
    """

    boxes: QTensor
    scores: QTensor
    coeffs: QTensor
    protos: QTensor


def _anchor_view(arr: np.ndarray, spec: OutputSpec, channels: int | None) -> np.ndarray:
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
    if channels is not None and arr.shape[1] != channels:
        raise ValueError(
            f"output {spec.name!r} (role {spec.role}) must have {channels} channels, got shape {arr.shape}"
        )
    return arr


def _proto_view(arr: np.ndarray, spec: OutputSpec) -> np.ndarray:
    if arr.ndim == 4:
        if arr.shape[0] != 1:
            raise ValueError(f"output {spec.name!r}: batch size must be 1, got shape {arr.shape}")
        arr = arr[0]
    if arr.ndim != 3:
        raise ValueError(f"output {spec.name!r} (protos) must be 4-D {spec.layout}, got shape {arr.shape}")
    if spec.layout == "NHWC":
        arr = arr.transpose(2, 0, 1)
    return arr


def proto_tensors(raw: dict[str, np.ndarray], manifest: Manifest, anchor_count: int | None) -> ProtoTensors:
    """Builds canonical :class:`ProtoTensors` from a backend's named outputs.

    Args:
        raw: Output name -> array, as the backend returned them.
        manifest: The bundle manifest (roles, layouts, quantization).
        anchor_count: Expected A (from the anchor grid), or ``None`` to skip.

    Raises:
        ValueError: naming the output and the expected vs. found shape.
    """
    views: dict[str, QTensor] = {}
    for spec in manifest.outputs:
        if spec.name not in raw:
            raise ValueError(f"backend returned no output {spec.name!r}; got {sorted(raw)}")
        arr = raw[spec.name]
        if spec.role == "protos":
            data = _proto_view(arr, spec)
        else:
            channels = {"boxes": 4, "scores": len(manifest.classes)}.get(spec.role)
            data = _anchor_view(arr, spec, channels)
        views[spec.role] = QTensor(data, spec.quant)
    t = ProtoTensors(**views)
    a = t.boxes.data.shape[0]
    if t.scores.data.shape[0] != a or t.coeffs.data.shape[0] != a:
        raise ValueError(
            f"per-anchor outputs disagree on anchor count: boxes {t.boxes.data.shape}, "
            f"scores {t.scores.data.shape}, coeffs {t.coeffs.data.shape}"
        )
    if anchor_count is not None and a != anchor_count:
        raise ValueError(f"model gave {a} anchors, the manifest's strides and input size imply {anchor_count}")
    if t.coeffs.data.shape[1] != t.protos.data.shape[0]:
        raise ValueError(
            f"coeffs have {t.coeffs.data.shape[1]} channels but protos have {t.protos.data.shape[0]}"
        )
    return t
