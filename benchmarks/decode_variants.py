"""Synthetic decode workload and the two common public YOLO-seg mask decoders, in numpy/OpenCV.

The variants re-implement Ultralytics' ``ops.process_mask`` (A) and
``ops.process_mask_native`` (B) step by step with numpy and ``cv2.resize``
(bilinear, half-pixel centres = ``F.interpolate(..., align_corners=False)``),
so they can be timed next to edgeseg's decoders without torch:

* **A** ``process_mask`` + ``scale_image``: ``sigmoid(coeffs @ protos)`` over the
  whole prototype map, zero outside the box at prototype resolution, upsample
  to the input size, threshold at 0.5, then crop the letterbox padding and
  resize the binary mask to the original image.
* **B** ``process_mask_native``: ``coeffs @ protos`` over the whole map, crop
  the padding at prototype resolution, upsample the *logits* to the original
  image, zero outside the box, threshold at 0.

Both return ``(N, H, W)`` bool full frames, as they do upstream.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edgeseg.decode import ProtoOptions, reference
from edgeseg.decode.tensors import ProtoTensors, QTensor
from edgeseg.preprocess import LetterboxInfo


@dataclass(frozen=True)
class Scene:
    """One frame of raw ``proto`` outputs with exactly ``n`` instances surviving NMS."""

    tensors: ProtoTensors
    letterbox: LetterboxInfo
    options: ProtoOptions
    grid: tuple[np.ndarray, np.ndarray]
    n: int


def _smooth_fields(rng: np.random.Generator, k: int, size: int) -> np.ndarray:
    """``(k, size, size)`` float32 smooth random fields, like trained prototypes (blobs, edges)."""
    coarse = rng.normal(0.0, 1.0, (size // 8, size // 8, k)).astype(np.float32)
    return cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC).transpose(2, 0, 1).copy()


def _fit_objects(fields: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Coefficients whose mask is an ellipse inscribed in each box (prototype pixels), by least squares.

    Real instance masks lie inside their boxes; random coefficients would cut
    random blobs at the box edges, which no trained model does. The fit is
    ridge-regularized so that logits are not sums of huge cancelling terms.
    """
    k, hp, wp = fields.shape
    out = np.empty((len(boxes), k), np.float32)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        c0, c1 = max(0, int(x1) - 3), min(wp, int(np.ceil(x2)) + 3)
        r0, r1 = max(0, int(y1) - 3), min(hp, int(np.ceil(y2)) + 3)
        gy, gx = np.mgrid[r0:r1, c0:c1].astype(np.float32) + 0.5
        ex, ey = (gx - (x1 + x2) / 2) / (0.42 * (x2 - x1)), (gy - (y1 + y2) / 2) / (0.42 * (y2 - y1))
        target = np.clip(4.0 * (1.0 - ex**2 - ey**2), -4.0, 4.0)
        basis = fields[:, r0:r1, c0:c1].reshape(k, -1).T
        gram = basis.T @ basis
        ridge = 0.05 * np.trace(gram) / k  # keeps coefficients moderate: no cancellation-prone logits
        out[i] = np.linalg.solve(gram + ridge * np.eye(k, dtype=np.float32), basis.T @ target.ravel())
    return out


def make_scene(
    n: int,
    *,
    seed: int = 0,
    input_size: int = 640,
    orig_size: tuple[int, int] = (720, 1280),
    protos: int = 32,
    proto_size: int = 160,
    classes: int = 80,
) -> Scene:
    """Raw outputs of a YOLO-seg-like head (ltrb boxes, 3 strides, sigmoid scores) with n objects.

    Boxes are 40-240 original pixels wide; each object gets a class of its own
    (cycling past ``classes``) and positions are redrawn until NMS keeps all n.
    """
    rng = np.random.default_rng(seed)
    lb = LetterboxInfo.fit(orig_size, (input_size, input_size))
    grid = reference.anchor_grid((input_size, input_size), (8, 16, 32), 0.5)
    centres, strides = grid
    a = centres.shape[0]
    opts = ProtoOptions(score_threshold=0.25, iou_threshold=0.5, max_detections=max(100, n), pre_nms_topk=1000)
    inside = np.flatnonzero(
        (centres[:, 1] > lb.pad_top + 8) & (centres[:, 1] < input_size - lb.pad_top - 8) & (strides == 8)
    )
    for _ in range(100):
        scores = np.full((a, classes), -8.0, np.float32)
        boxes = rng.uniform(0.5, 2.0, (a, 4)).astype(np.float32)
        chosen = rng.choice(inside, n, replace=False)
        half = rng.uniform(20, 120, (n, 2)) * lb.scale_x / 8.0  # original px -> input px -> stride units
        boxes[chosen] = np.stack([half[:, 0], half[:, 1], half[:, 0], half[:, 1]], 1).astype(np.float32)
        scores[chosen, np.arange(n) % classes] = rng.uniform(1.0, 4.0, n).astype(np.float32)
        fields = _smooth_fields(rng, protos, proto_size)
        coeffs = rng.normal(0.0, 0.3, (a, protos)).astype(np.float32)
        box_in = reference.decode_boxes(boxes[chosen], "ltrb", centres[chosen], strides[chosen])
        coeffs[chosen] = _fit_objects(fields, box_in * (proto_size / input_size))
        t = ProtoTensors(QTensor(boxes), QTensor(scores), QTensor(coeffs), QTensor(fields))
        kept = reference.decode_proto(t, lb, ProtoOptions(**{**opts.__dict__, "with_masks": False}), grid)
        if len(kept.scores) == n:
            return Scene(t, lb, opts, grid, n)
    raise RuntimeError(f"could not place {n} non-overlapping instances")


def kept_instances(scene: Scene) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What A and B start from: ``(boxes_input (N, 4), boxes_orig (N, 4), coeffs (N, K))`` float32."""
    t, lb, opts, grid = scene.tensors, scene.letterbox, scene.options, scene.grid
    scores = t.scores.dequantize()
    idx, cls, _ = reference.select_candidates(scores, reference.raw_score_threshold(opts.score_threshold, "sigmoid"), opts.pre_nms_topk)
    boxes_in = reference.decode_boxes(t.boxes.rows(idx), "ltrb", grid[0][idx], grid[1][idx])
    keep = reference.nms(boxes_in, cls, opts.iou_threshold, opts.max_detections)
    idx, boxes_in = idx[keep], boxes_in[keep]
    return boxes_in, lb.boxes_to_original(boxes_in), t.coeffs.rows(idx)


def _resize_channels(maps: np.ndarray, width: int, height: int) -> np.ndarray:
    """``(N, h, w)`` -> ``(N, height, width)`` bilinear with half-pixel centres, one channel at a time
    (OpenCV's single-channel path is its vectorized one)."""
    out = np.empty((maps.shape[0], height, width), maps.dtype)
    for i in range(maps.shape[0]):
        cv2.resize(maps[i], (width, height), dst=out[i], interpolation=cv2.INTER_LINEAR)
    return out


def _crop_mask(masks: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Ultralytics ``crop_mask``: zero outside ``x1 <= col < x2``, ``y1 <= row < y2`` (in place)."""
    _, h, w = masks.shape
    x1, y1, x2, y2 = (boxes[:, i, None, None] for i in range(4))
    cols = np.arange(w, dtype=np.float32)[None, None, :]
    rows = np.arange(h, dtype=np.float32)[None, :, None]
    masks *= (cols >= x1) & (cols < x2) & (rows >= y1) & (rows < y2)
    return masks


def _padding_crop(lb: LetterboxInfo, mh: int, mw: int) -> tuple[int, int, int, int]:
    """Ultralytics ``scale_masks``/``scale_image``: the unpadded region of an (mh, mw) map."""
    ih, iw = lb.input_size
    oh, ow = lb.orig_size
    gain = min(mh / oh, mw / ow)
    pad_w, pad_h = (mw - ow * gain) / 2, (mh - oh * gain) / 2
    top, left = int(round(pad_h - 0.1)), int(round(pad_w - 0.1))
    return top, int(round(mh - pad_h + 0.1)), left, int(round(mw - pad_w + 0.1))


def variant_a(protos: np.ndarray, coeffs: np.ndarray, boxes_input: np.ndarray, lb: LetterboxInfo) -> np.ndarray:
    """``process_mask(upsample=True)`` then ``scale_image``; returns ``(N, H, W)`` bool."""
    k, mh, mw = protos.shape
    ih, iw = lb.input_size
    oh, ow = lb.orig_size
    masks = coeffs @ protos.reshape(k, -1)
    masks = (1.0 / (1.0 + np.exp(-masks))).astype(np.float32).reshape(-1, mh, mw)
    scale = np.array([mw / iw, mh / ih, mw / iw, mh / ih], np.float32)
    masks = _crop_mask(masks, boxes_input * scale)
    masks = _resize_channels(masks, iw, ih) > 0.5
    top, bottom, left, right = _padding_crop(lb, ih, iw)
    crop = masks[:, top:bottom, left:right].astype(np.uint8)
    return _resize_channels(crop, ow, oh) > 0


def variant_b(
    protos: np.ndarray, coeffs: np.ndarray, boxes_orig: np.ndarray, lb: LetterboxInfo
) -> np.ndarray:
    """``process_mask_native``; returns ``(N, H, W)`` bool."""
    k, mh, mw = protos.shape
    oh, ow = lb.orig_size
    masks = (coeffs @ protos.reshape(k, -1)).reshape(-1, mh, mw)
    top, bottom, left, right = _padding_crop(lb, mh, mw)
    masks = _resize_channels(masks[:, top:bottom, left:right], ow, oh)
    return _crop_mask(masks, boxes_orig) > 0.0


def mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-instance IoU of two ``(N, H, W)`` bool stacks (1.0 where both are empty)."""
    inter = np.logical_and(a, b).reshape(len(a), -1).sum(1)
    union = np.logical_or(a, b).reshape(len(a), -1).sum(1)
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)
