"""Segment Anything's image preprocessing: resize the longest side, normalize, pad bottom-right.

``SamPredictor`` resizes with PIL's bilinear filter on uint8
(``torchvision.transforms.functional.resize`` of a PIL image). OpenCV's
``INTER_LINEAR`` differs from it by one level on about half the pixels, which
moves the embeddings by up to 0.06, enough to flip mask pixels; PIL is not a
runtime dependency. So :func:`pil_bilinear` is a numpy transcription of
Pillow's ``ImagingResample`` (``libImaging/Resample.c``) for 8-bit images:
triangle filter widened by the scale when shrinking, coefficients normalized
per output pixel and rounded to 22-bit fixed point, horizontal pass first,
each pass rounded and clipped to uint8. Hand-written because no runtime
library reproduces it; tests hold it to Pillow bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from edgeseg.manifest import InputSpec

RESIZES = ("pil-bilinear", "opencv-linear")
_BITS = 22  # Pillow's PRECISION_BITS for 8-bit images: 32 - 8 - 2


def _coefficients(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pillow's ``precompute_coeffs`` + ``normalize_coeffs_8bpc`` for the bilinear filter.

    Returns:
        ``(index (out, k) int64, weight (out, k) int64)``: output pixel ``i`` is
        ``sum_j weight[i, j] * in[index[i, j]]`` in 22-bit fixed point.
    """
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 1.0 * filterscale
    ksize = int(math.ceil(support)) * 2 + 1
    index = np.zeros((out_size, ksize), np.int64)
    weight = np.zeros((out_size, ksize), np.int64)
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        x = np.arange(xmax, dtype=np.float64)
        w = np.maximum(1.0 - np.abs((x + xmin - center + 0.5) * (1.0 / filterscale)), 0.0)
        total = w.sum()
        if total != 0.0:
            w = w / total
        weight[xx, :xmax] = np.where(w < 0, -0.5 + w * (1 << _BITS), 0.5 + w * (1 << _BITS)).astype(np.int64)
        index[xx, :xmax] = xmin + np.arange(xmax)
    return index, weight


def _pass(img: np.ndarray, out_size: int, axis: int) -> np.ndarray:
    """One Pillow resampling pass of a uint8 ``(H, W, C)`` image along ``axis`` (1: columns, 0: rows)."""
    index, weight = _coefficients(img.shape[axis], out_size)
    # int32 cannot overflow: weights sum to about 2**22 (bilinear weights are >= 0), times 255
    acc = np.full(img.shape[:axis] + (out_size,) + img.shape[axis + 1 :], 1 << (_BITS - 1), np.int32)
    shape = [1] * img.ndim
    shape[axis] = out_size
    for j in range(index.shape[1]):
        w = weight[:, j].astype(np.int32).reshape(shape)
        acc += np.take(img, index[:, j], axis=axis) * w
    return np.clip(acc >> _BITS, 0, 255).astype(np.uint8)


def pil_bilinear(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``PIL.Image.resize((w, h), BILINEAR)`` of a uint8 ``(H, W, C)`` image, bit exact.

    Args:
        img: ``(H, W, C)`` uint8.
        size: ``(height, width)`` of the result.

    Returns:
        ``(height, width, C)`` uint8.
    """
    if img.dtype != np.uint8 or img.ndim != 3:
        raise ValueError(f"pil_bilinear needs a (H, W, C) uint8 image, got {img.dtype} {img.shape}")
    h, w = size
    out = img
    if w != img.shape[1]:
        out = _pass(out, w, 1)  # horizontal pass first, as Pillow
    if h != img.shape[0]:
        out = _pass(out, h, 0)
    return out if out is not img else img.copy()


def longest_side_size(orig: tuple[int, int], target: int) -> tuple[int, int]:
    """``ResizeLongestSide.get_preprocess_shape``: ``(h, w)`` with the longest side ``target``."""
    scale = target * 1.0 / max(orig)
    return int(orig[0] * scale + 0.5), int(orig[1] * scale + 0.5)


@dataclass(frozen=True)
class PromptFrame:
    """Geometry of one frame in a promptable model's input.

    Attributes:
        orig_size: ``(H, W)`` of the original image.
        resized: ``(h, w)`` of the resized image inside the ``input_size`` square.
        input_size: ``(Hi, Wi)`` of the encoder input.
    """

    orig_size: tuple[int, int]
    resized: tuple[int, int]
    input_size: tuple[int, int]

    def coords_to_input(self, xy: np.ndarray) -> np.ndarray:
        """``ResizeLongestSide.apply_coords``: ``(..., 2)`` XY original pixels -> input pixels (float32)."""
        out = np.array(xy, np.float64, copy=True)
        out[..., 0] *= self.resized[1] / self.orig_size[1]
        out[..., 1] *= self.resized[0] / self.orig_size[0]
        return out.astype(np.float32)

    def map_box(self) -> np.ndarray:
        """The padded input square in original pixels (XYXY float32): what the low-res logits cover."""
        (h, w), (rh, rw), (ih, iw) = self.orig_size, self.resized, self.input_size
        return np.array([0.0, 0.0, iw * w / rw, ih * h / rh], np.float32)


def encoder_input(image_bgr: np.ndarray, spec: InputSpec, resize: str) -> tuple[np.ndarray, PromptFrame]:
    """``SamPredictor.set_image``'s preprocessing of a BGR uint8 image.

    Args:
        image_bgr: ``(H, W, 3)`` uint8 BGR.
        spec: The encoder input (square ``(1, 3, S, S)`` NCHW or NHWC float32,
            colour order, mean and std in pixel units).
        resize: One of :data:`RESIZES`.

    Returns:
        ``(tensor in spec's shape, frame geometry)``.
    """
    if not isinstance(image_bgr, np.ndarray) or image_bgr.dtype != np.uint8 or image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
        got = f"{image_bgr.dtype} {image_bgr.shape}" if isinstance(image_bgr, np.ndarray) else type(image_bgr).__name__
        raise ValueError(f"image must be (H, W, 3) uint8 BGR, got {got}")
    if resize not in RESIZES:
        raise ValueError(f"resize must be one of {RESIZES}, got {resize!r}")
    ih, iw = spec.height, spec.width
    orig = (int(image_bgr.shape[0]), int(image_bgr.shape[1]))
    rh, rw = longest_side_size(orig, max(ih, iw))
    img = image_bgr[..., ::-1] if spec.color == "RGB" else image_bgr
    img = np.ascontiguousarray(img)
    if resize == "pil-bilinear":
        small = pil_bilinear(img, (rh, rw))
    else:
        small = cv2.resize(img, (rw, rh), interpolation=cv2.INTER_LINEAR)
    x = small.astype(np.float32) * np.float32(spec.scale) if spec.scale != 1.0 else small.astype(np.float32)
    x = (x - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    canvas = np.zeros((ih, iw, 3), np.float32)
    canvas[:rh, :rw] = x
    tensor = canvas.transpose(2, 0, 1)[None] if spec.layout == "NCHW" else canvas[None]
    return np.ascontiguousarray(tensor, dtype=np.dtype(spec.dtype)), PromptFrame(orig, (rh, rw), (ih, iw))
