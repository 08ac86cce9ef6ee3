"""Segment Anything's image preprocessing: resize the longest side, normalize, pad bottom-right.

``SamPredictor`` resizes with PIL's bilinear filter on uint8
(``torchvision.transforms.functional.resize`` of a PIL image). OpenCV's
``INTER_LINEAR`` differs from it by one level on about half the pixels, which
moves the embeddings by up to 0.06, enough to flip mask pixels; PIL is not a
runtime dependency. So the resize is :func:`edgeseg.resample.pil_bilinear`,
a numpy transcription of Pillow's 8-bit resampling that tests hold to Pillow
bit for bit (``linear``, OpenCV's, is the faster option).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeseg.manifest import InputSpec
from edgeseg.resample import RESAMPLERS

#: Resizers a prompt manifest may name (``prompt.resize``), from :data:`edgeseg.resample.RESAMPLERS`.
RESIZES = ("pil-bilinear", "linear")


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
    small = RESAMPLERS[resize](img, (rw, rh))
    x = small.astype(np.float32) * np.float32(spec.scale) if spec.scale != 1.0 else small.astype(np.float32)
    x = (x - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    canvas = np.zeros((ih, iw, 3), np.float32)
    canvas[:rh, :rw] = x
    tensor = canvas.transpose(2, 0, 1)[None] if spec.layout == "NCHW" else canvas[None]
    return np.ascontiguousarray(tensor, dtype=np.dtype(spec.dtype)), PromptFrame(orig, (rh, rw), (ih, iw))
