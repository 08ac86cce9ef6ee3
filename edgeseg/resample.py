"""Image resizers a model's own preprocessing may need, by name (manifest ``input.letterbox.resample``).

* ``linear``: OpenCV's ``INTER_LINEAR`` (the default; Ultralytics and
  edgeseg-nano letterbox with it);
* ``pil-bilinear``: Pillow's ``Image.resize(..., BILINEAR)`` on uint8, an
  antialiased triangle filter whose support widens with the downscale factor,
  in Pillow's fixed point (22 fractional bits, horizontal pass first, each pass
  rounded and clipped to uint8);
* ``torchvision-bilinear``: the same filter as torch's native uint8 kernel
  computes it (``interpolate(..., antialias=True)``), which Hugging Face's
  torchvision-backed image processors (transformers 5) use on AVX2 x86 and
  arm64 CPUs: weights in int16 with as many fractional bits as the largest
  weight allows (about 16 when shrinking 3x), so about 0.1-0.4% of the values
  differ from Pillow's by 1 (measured on the fixture images). On other CPUs
  torchvision resizes in float32 and rounds: neither variant is then exact.

OpenCV has no such filter (``INTER_AREA`` and ``INTER_LINEAR`` give other
pixels) and neither Pillow nor torch is a runtime dependency, so both are
written here (Pillow's ``libImaging/Resample.c`` and torch's
``UpSampleKernel.cpp``, vectorized over output pixels).
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

_PIL_BITS = 32 - 8 - 2


def _weights(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The triangle filter's taps, as Pillow's ``precompute_coeffs`` (and torch's ``_aa`` weights) compute them.

    Returns:
        ``(index (out, ksize) int64, weight (out, ksize) float64)``; taps beyond a
        pixel's support have weight 0 (and a clamped index); each row sums to 1.
    """
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 1.0 * filterscale
    ksize = int(np.ceil(support)) * 2 + 1
    center = (np.arange(out_size, dtype=np.float64) + 0.5) * scale
    xmin = np.maximum(np.trunc(center - support + 0.5), 0).astype(np.int64)
    xmax = np.minimum(np.trunc(center + support + 0.5), in_size).astype(np.int64) - xmin
    taps = np.arange(ksize)
    w = 1.0 - np.abs((taps[None, :] + xmin[:, None] - center[:, None] + 0.5) / filterscale)
    w = np.where((taps[None, :] < xmax[:, None]) & (w > 0), w, 0.0)
    total = w.sum(axis=1, keepdims=True)
    w = np.divide(w, total, out=np.zeros_like(w), where=total != 0)
    return np.minimum(xmin[:, None] + taps[None, :], in_size - 1), w


def _fixed(w: np.ndarray, bits: int) -> np.ndarray:
    """Weights in fixed point, rounded half away from zero (both libraries' ``(int)(w * 2^bits +- 0.5)``)."""
    return np.trunc(np.where(w < 0, -0.5, 0.5) + w * (1 << bits)).astype(np.int64)


def _pil_bits(w: np.ndarray) -> int:
    return _PIL_BITS


def _torch_bits(w: np.ndarray) -> int:
    """torch's ``_compute_index_ranges_int16_weights``: the most bits that keep the largest weight in int16."""
    top = float(w.max(initial=0.0))
    bits = 0
    while bits < 22 and int(0.5 + top * (1 << (bits + 1))) < (1 << 15):
        bits += 1
    return bits


def _pass(image: np.ndarray, out_size: int, precision: Callable[[np.ndarray], int]) -> np.ndarray:
    """One resampling pass along axis 0 of a ``(N, M, C)`` uint8 array (rows gathered whole: plain copies).

    Exact integer arithmetic in int32: the sum is at most ``255 * 2^bits`` plus rounding, below ``2^31``.
    """
    index, w = _weights(image.shape[0], out_size)
    bits = precision(w)
    weight = _fixed(w, bits).astype(np.int32)
    acc = np.full((out_size, *image.shape[1:]), 1 << (bits - 1), np.int32)
    for t in range(index.shape[1]):
        acc += image[index[:, t]] * weight[:, t, None, None]
    np.right_shift(acc, bits, out=acc)
    return np.clip(acc, 0, 255).astype(np.uint8)


def _separable(precision: Callable[[np.ndarray], int]) -> Callable[..., np.ndarray]:
    def resize(image: np.ndarray, size: tuple[int, int], dst: np.ndarray | None = None) -> np.ndarray:
        out_w, out_h = size
        x = image
        if out_w != image.shape[1]:  # horizontal pass first, on the transposed image
            x = _pass(np.ascontiguousarray(x.transpose(1, 0, 2)), out_w, precision).transpose(1, 0, 2)
        if out_h != image.shape[0]:
            x = _pass(np.ascontiguousarray(x), out_h, precision)
        if dst is None:
            return np.ascontiguousarray(x)
        dst[...] = x
        return dst

    return resize


#: ``(H, W, C)`` uint8 -> ``size = (width, height)`` as Pillow's ``Image.resize(size, BILINEAR)``.
pil_bilinear = _separable(_pil_bits)
#: The same as torch's native uint8 antialiased bilinear (int16 weights; torchvision uses it on AVX2 and arm64 CPUs).
torchvision_bilinear = _separable(_torch_bits)


def _linear(image: np.ndarray, size: tuple[int, int], dst: np.ndarray | None = None) -> np.ndarray:
    return cv2.resize(image, size, dst=dst, interpolation=cv2.INTER_LINEAR)


#: Resizer per manifest name: ``fn(image (H, W, C) uint8, (width, height), dst=None) -> resized``.
RESAMPLERS: dict[str, Callable[..., np.ndarray]] = {
    "linear": _linear, "pil-bilinear": pil_bilinear, "torchvision-bilinear": torchvision_bilinear,
}
