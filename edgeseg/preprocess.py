"""Image -> model input tensor: letterbox, colour order, normalization, layout, dtype.

The letterbox keeps the aspect ratio, resizes with bilinear interpolation and
pads to the model's input size; a manifest may instead stretch the image to
the input size (``letterbox.keep_aspect: false``) and name another resizer
(``letterbox.resample``, :mod:`edgeseg.resample`). :class:`LetterboxInfo` records the exact
per-axis scale and padding so the decoder maps boxes and masks back to the
original pixels (continuous coordinates, pixel ``i`` covering ``[i, i+1)``):
``u = x * scale_x + pad_left`` and ``x = (u - pad_left) / scale_x``.

A manifest with ``input.shortest_edge`` (torchvision detection models) is
resized the way torchvision's ``GeneralizedRCNNTransform`` does instead
(:func:`shortest_edge_size`): one scale for both axes, ``floor`` sizes, no
padding (the model pads to its size divisibility itself), and the bilinear
resize runs on the normalized float32 image, like torchvision's, so that the
model sees the tensor torchvision would give it (up to float rounding).

A resizer of :data:`FLOAT_RESAMPLERS` (``letterbox.resample: torch-bilinear``,
RF-DETR's ``predict``) works on float pixels instead: the image is scaled to
float32 first (``x / (1 / scale)``), resized without antialiasing, then
normalized (``(x - mean) / std``), the order of torch's ``to_tensor``,
``F.resize`` and ``F.normalize``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from edgeseg.manifest import InputSpec, ShortestEdge
from edgeseg.resample import RESAMPLERS


@dataclass(frozen=True)
class LetterboxInfo:
    """Geometry of one letterbox: original image <-> model input pixels.

    Attributes:
        orig_size: ``(height, width)`` of the original image.
        input_size: ``(height, width)`` of the model input.
        scale_x: Resized width / original width.
        scale_y: Resized height / original height.
        pad_left: Columns of padding left of the resized image.
        pad_top: Rows of padding above the resized image.
    """

    orig_size: tuple[int, int]
    input_size: tuple[int, int]
    scale_x: float
    scale_y: float
    pad_left: int
    pad_top: int

    @classmethod
    def fit(cls, orig_size: tuple[int, int], input_size: tuple[int, int], *, center: bool = True) -> LetterboxInfo:
        """Computes the letterbox of an ``orig_size`` image into ``input_size``."""
        h, w = orig_size
        ih, iw = input_size
        if h <= 0 or w <= 0:
            raise ValueError(f"image size must be positive, got {w}x{h}")
        gain = min(iw / w, ih / h)
        new_w = min(iw, max(1, int(round(w * gain))))
        new_h = min(ih, max(1, int(round(h * gain))))
        pad_left = (iw - new_w) // 2 if center else 0
        pad_top = (ih - new_h) // 2 if center else 0
        return cls(orig_size, input_size, new_w / w, new_h / h, pad_left, pad_top)

    @classmethod
    def stretch(cls, orig_size: tuple[int, int], input_size: tuple[int, int]) -> LetterboxInfo:
        """The whole ``orig_size`` image resized to ``input_size`` without keeping its aspect (no padding)."""
        h, w = orig_size
        if h <= 0 or w <= 0:
            raise ValueError(f"image size must be positive, got {w}x{h}")
        return cls(orig_size, input_size, input_size[1] / w, input_size[0] / h, 0, 0)

    @property
    def resized_size(self) -> tuple[int, int]:
        h, w = self.orig_size
        return int(round(h * self.scale_y)), int(round(w * self.scale_x))

    def boxes_to_original(self, boxes: np.ndarray, *, clip: bool = True) -> np.ndarray:
        """Maps ``(N, 4)`` XYXY boxes from input pixels to original pixels, clipped unless ``clip=False``."""
        out = np.empty_like(boxes, dtype=np.float32)
        out[:, 0::2] = (boxes[:, 0::2] - self.pad_left) / self.scale_x
        out[:, 1::2] = (boxes[:, 1::2] - self.pad_top) / self.scale_y
        if not clip:
            return out
        h, w = self.orig_size
        np.clip(out[:, 0::2], 0.0, w, out=out[:, 0::2])
        np.clip(out[:, 1::2], 0.0, h, out=out[:, 1::2])
        return out

    def boxes_to_input(self, boxes: np.ndarray) -> np.ndarray:
        """Maps ``(N, 4)`` XYXY boxes from original pixels to input pixels."""
        out = np.empty_like(boxes, dtype=np.float32)
        out[:, 0::2] = boxes[:, 0::2] * self.scale_x + self.pad_left
        out[:, 1::2] = boxes[:, 1::2] * self.scale_y + self.pad_top
        return out


def shortest_edge_size(orig_size: tuple[int, int], rule: ShortestEdge) -> tuple[int, int]:
    """``(height, width)`` torchvision's detection transform resizes an ``orig_size`` image to.

    ``scale = min(min_size / short, max_size / long)`` in double precision (torchvision's
    eager path) and each side ``floor(side * scale)`` (``interpolate`` with
    ``recompute_scale_factor=True``).
    """
    h, w = orig_size
    if h <= 0 or w <= 0:
        raise ValueError(f"image size must be positive, got {w}x{h}")
    scale = min(float(rule.min_size) / float(min(h, w)), float(rule.max_size) / float(max(h, w)))
    return max(1, math.floor(h * scale)), max(1, math.floor(w * scale))


def _axis_weights(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """PyTorch's bilinear (``align_corners=False``) taps and weights along one axis, in float32 as it computes them."""
    if size_in == size_out:
        i = np.arange(size_out)
        return i, i, np.ones(size_out, np.float32), np.zeros(size_out, np.float32)
    ratio = np.float32(size_in) / np.float32(size_out)
    src = np.maximum(ratio * (np.arange(size_out, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5), np.float32(0))
    i0 = np.minimum(np.floor(src).astype(np.int64), size_in - 1)
    l1 = np.clip(src - i0.astype(np.float32), 0, 1).astype(np.float32)
    i1 = i0 + (i0 < size_in - 1)
    return i0, i1, (np.float32(1) - l1).astype(np.float32), l1


def bilinear_like_torch(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``F.interpolate(mode="bilinear", align_corners=False)`` of an ``(H, W, C)`` float32 image, numpy.

    Same taps, float32 weights and order of operations as PyTorch's CPU kernel
    (along the width first, then the height), so torchvision's detection
    transform and this preprocessor give the same tensor up to float rounding
    (OpenCV's float resize differs by up to 1e-4 on downscales).

    Returns:
        ``(height, width, C)`` float32.
    """
    x0, x1, wx0, wx1 = _axis_weights(image.shape[1], width)
    y0, y1, wy0, wy1 = _axis_weights(image.shape[0], height)
    rows = np.unique(np.concatenate([y0, y1]))
    tmp = np.empty((image.shape[0], width, image.shape[2]), np.float32)
    tmp[rows] = image[rows][:, x0] * wx0[None, :, None] + image[rows][:, x1] * wx1[None, :, None]
    return tmp[y0] * wy0[:, None, None] + tmp[y1] * wy1[:, None, None]


#: Resizers of float pixels by manifest name: ``fn(image (H, W, C) float32, height, width) -> (height, width, C)``.
FLOAT_RESAMPLERS = {"torch-bilinear": bilinear_like_torch}


class Preprocessor:
    """Turns BGR uint8 images into input tensors for one model input spec.

    Fewest passes over the pixels: the image is resized straight into a
    reused padded canvas (only the pad bands are refilled, and only when the
    letterbox changes); for a float32 NCHW input OpenCV splits the canvas
    into its three planes and one multiply per plane converts and scales it
    into its output channel (the add of the mean is left out when it adds
    -0.0, which changes no float); other inputs get one uint8 pass that
    reorders channels and layout, then one fused float pass. The tensor is
    bit-identical to converting first and reordering after (same float32
    multiply and add per element).
    """

    def __init__(self, spec: InputSpec) -> None:
        self.spec = spec
        self._canvas = np.empty((spec.height, spec.width, 3), dtype=np.uint8)
        self._pad_for: LetterboxInfo | None = None  # letterbox whose pad bands the canvas holds
        chw = spec.layout == "NCHW"
        self._ordered = np.empty((3, spec.height, spec.width) if chw else (spec.height, spec.width, 3), np.uint8)
        mean = np.asarray(spec.mean, np.float32)
        std = np.asarray(spec.std, np.float32)
        # normalized = pixel * mul + add, per channel in the model's colour order
        self._mul = (spec.scale / std).astype(np.float32)
        self._add = (-mean / std).astype(np.float32)
        shape = (3, 1, 1) if chw else (3,)
        self._mul_b, self._add_b = self._mul.reshape(shape), self._add.reshape(shape)
        # x + (-0.0) is x for every float32 x (-0.0 and NaN included): then the add is left out
        self._add_is_identity = bool(np.all((self._add == 0) & np.signbit(self._add)))
        # canvas (BGR) plane feeding each output channel, for float32 NCHW (split, then one multiply per plane)
        self._plane_of = (2, 1, 0) if spec.color == "RGB" else (0, 1, 2)

    def letterbox(self, image_bgr: np.ndarray) -> tuple[np.ndarray, LetterboxInfo]:
        """Letterboxes ``image_bgr`` into the reused canvas (BGR, uint8, HWC)."""
        check_image(image_bgr)
        box = self.spec.letterbox
        if box.keep_aspect:
            info = LetterboxInfo.fit(image_bgr.shape[:2], (self.spec.height, self.spec.width), center=box.center)
        else:
            info = LetterboxInfo.stretch(image_bgr.shape[:2], (self.spec.height, self.spec.width))
        rh, rw = info.resized_size
        canvas = self._canvas
        if info != self._pad_for:  # the image covers the same region every frame: pad bands stay valid
            canvas[...] = self.spec.letterbox.pad_value
            self._pad_for = info
        region = canvas[info.pad_top : info.pad_top + rh, info.pad_left : info.pad_left + rw]
        if (rh, rw) == image_bgr.shape[:2]:
            region[...] = image_bgr
        else:
            RESAMPLERS[box.resample](image_bgr, (rw, rh), dst=region)
        return canvas, info

    def __call__(self, image_bgr: np.ndarray) -> tuple[np.ndarray, LetterboxInfo]:
        """Returns ``(tensor, letterbox)``; tensor shape/dtype/layout as the manifest says.

        The tensor is a new array per call (the caller may keep it).
        """
        spec = self.spec
        if spec.shortest_edge is not None:
            return self._shortest_edge(image_bgr)
        if spec.letterbox.resample in FLOAT_RESAMPLERS:
            return self._float_resize(image_bgr)
        canvas, info = self.letterbox(image_bgr)
        if spec.layout == "NCHW" and spec.quant is None and np.dtype(spec.dtype) == np.float32:
            return self._planes_to_float(canvas), info
        src = canvas[..., ::-1] if spec.color == "RGB" else canvas
        if spec.layout == "NCHW":
            src = src.transpose(2, 0, 1)
        np.copyto(self._ordered, src)  # one uint8 pass: colour order and layout
        if spec.quant is None and np.dtype(spec.dtype) == np.float32:
            x = np.empty((1, *self._ordered.shape), np.float32)
            np.multiply(self._ordered, self._mul_b, out=x[0])  # uint8 -> float32 and scale in one pass
            np.add(x[0], self._add_b, out=x[0])
            return x, info
        x = self._ordered.astype(np.float32)
        x *= self._mul_b
        x += self._add_b
        if spec.quant is not None:
            x = x / np.float32(spec.quant.scale) + np.float32(spec.quant.zero_point)
            info_dtype = np.iinfo(np.dtype(spec.dtype))
            x = np.clip(np.rint(x), info_dtype.min, info_dtype.max)
        return np.ascontiguousarray(x.astype(spec.dtype, copy=False)[None]), info

    def _planes_to_float(self, canvas: np.ndarray) -> np.ndarray:
        """Float32 NCHW in two passes: OpenCV splits the canvas into planes, one multiply per plane converts.

        Each element is ``float32(pixel) * mul[c]`` (+ ``add[c]``) exactly as
        the reorder-then-convert path computes it, so the tensor is the same
        bit for bit (tests/test_preprocess.py checks it against
        ``benchmarks/frame_baseline.py``'s convert-first path).

        Returns:
            ``(1, 3, H, W)`` float32, a new array.
        """
        planes = cv2.split(canvas)
        x = np.empty((1, 3, *canvas.shape[:2]), np.float32)
        for c, p in enumerate(self._plane_of):
            np.multiply(planes[p], self._mul[c], out=x[0, c])
        if not self._add_is_identity:
            np.add(x[0], self._add_b, out=x[0])
        return x

    def _shortest_edge(self, image_bgr: np.ndarray) -> tuple[np.ndarray, LetterboxInfo]:
        """Normalize, then bilinear resize in float32 (torchvision's order); ``(1, 3, h, w)`` NCHW."""
        check_image(image_bgr)
        spec = self.spec
        if spec.layout != "NCHW" or spec.quant is not None or np.dtype(spec.dtype) != np.float32:
            raise ValueError(f"input.shortest_edge needs a float32 NCHW input, got {spec.dtype} {spec.layout}")
        oh, ow = image_bgr.shape[:2]
        h, w = shortest_edge_size((oh, ow), spec.shortest_edge)
        if h > spec.height or w > spec.width:
            raise ValueError(f"image {ow}x{oh} resizes to {w}x{h}, beyond the model's largest input "
                             f"{spec.width}x{spec.height} (manifest input.shape)")
        src = image_bgr[..., ::-1] if spec.color == "RGB" else image_bgr
        x = src.astype(np.float32)
        x *= self._mul
        x += self._add
        if (h, w) != (oh, ow):
            x = bilinear_like_torch(x, h, w)
        info = LetterboxInfo((oh, ow), (h, w), w / ow, h / oh, 0, 0)
        return np.ascontiguousarray(x.transpose(2, 0, 1))[None], info

    def _float_resize(self, image_bgr: np.ndarray) -> tuple[np.ndarray, LetterboxInfo]:
        """Scale to float32, resize (``FLOAT_RESAMPLERS``), normalize; ``(1, 3, H, W)`` NCHW float32.

        The padding (``keep_aspect``) holds ``pad_value`` scaled and normalized like a pixel.
        """
        check_image(image_bgr)
        spec, box = self.spec, self.spec.letterbox
        if spec.layout != "NCHW" or spec.quant is not None or np.dtype(spec.dtype) != np.float32:
            raise ValueError(f"letterbox.resample {box.resample!r} needs a float32 NCHW input, got {spec.dtype} {spec.layout}")
        size = (spec.height, spec.width)
        info = (LetterboxInfo.fit(image_bgr.shape[:2], size, center=box.center) if box.keep_aspect
                else LetterboxInfo.stretch(image_bgr.shape[:2], size))
        rh, rw = info.resized_size
        divisor = np.float32(1.0 / spec.scale)
        src = image_bgr[..., ::-1] if spec.color == "RGB" else image_bgr
        x = src.astype(np.float32)
        x /= divisor
        canvas = np.full((*size, 3), np.float32(box.pad_value) / divisor, np.float32)
        canvas[info.pad_top : info.pad_top + rh, info.pad_left : info.pad_left + rw] = (
            x if (rh, rw) == x.shape[:2] else FLOAT_RESAMPLERS[box.resample](x, rh, rw))
        canvas -= np.asarray(spec.mean, np.float32)
        canvas /= np.asarray(spec.std, np.float32)
        return np.ascontiguousarray(canvas.transpose(2, 0, 1))[None], info


def check_image(image: object) -> None:
    """Raises a clear error unless ``image`` is an ``(H, W, 3)`` uint8 BGR array."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"expected a numpy BGR image (H, W, 3) uint8, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected a BGR image of shape (H, W, 3) and dtype uint8, got {image.shape} {image.dtype}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"expected a non-empty image, got shape {image.shape}")
