"""Promptable segmentation: ``seg.prompt(image, boxes=..., points=...)`` on a ``prompt`` bundle.

:class:`PromptSegmenter` runs a two-model bundle (:mod:`edgeseg.families.prompt`):
the image encoder once per frame (its embeddings are cached, keyed by the
frame's bytes, so several calls on one frame cost one encoder run) and the
prompt decoder on batches of prompts (one run per group of prompts with the
same number of points when the decoder has a dynamic batch axis, else one run
per prompt). Low-resolution logits become masks in C, only inside each mask's
region (:mod:`edgeseg.decode.prompt_masks`). Results are the one
:class:`~edgeseg.result.Result` type, so grasps, hooks and overlays work as
for any detector; :meth:`PromptSegmenter.refine` gives a detector's result
the masks of its boxes as prompts.

Prompt conventions are ``SamPredictor.predict``'s: points ``(x, y)`` in
original pixels with labels 1 (foreground) / 0 (background); a box (XYXY)
becomes two corner points labelled 2 and 3 after the points; a prompt without
a box gets a padding point labelled -1. ``multimask=False`` returns the
single-mask token (SamPredictor's ``multimask_output=False``); ``True`` the
best of the multimask tokens by predicted IoU.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from pathlib import Path

import numpy as np

from edgeseg.backends import Backend, load_backend
from edgeseg.bundle import Bundle, require_trusted
from edgeseg.decode import active_path
from edgeseg.decode.prompt_masks import tight_boxes, upsample
from edgeseg.device_config import DeviceConfig
from edgeseg.longest_side import PromptFrame, encoder_input
from edgeseg.manifest import Manifest
from edgeseg.result import Result, StageTimings


@dataclasses.dataclass(frozen=True)
class Prompts:
    """Prompts in original pixels, one row per prompt.

    Attributes:
        points: ``(N, P, 2)`` float32 XY, or ``None``.
        labels: ``(N, P)`` float32 point labels (1 foreground, 0 background), or ``None``.
        boxes: ``(N, 4)`` float32 XYXY, or ``None``.
    """

    points: np.ndarray | None
    labels: np.ndarray | None
    boxes: np.ndarray | None

    @classmethod
    def build(cls, boxes=None, points=None, labels=None) -> Prompts:
        """Checks and shapes the user's prompts (raises ValueError naming expected vs found).

        Args:
            boxes: ``(N, 4)`` XYXY original pixels.
            points: ``(N, 2)`` (one foreground point per prompt) or ``(N, P, 2)``.
            labels: ``(N, P)`` labels of ``points`` (default: all 1).
        """
        b = p = lab = None
        if boxes is not None:
            b = np.asarray(boxes, np.float32)
            b = b[None] if b.shape == (4,) else (b.reshape(0, 4) if b.size == 0 else b)
            if b.ndim != 2 or b.shape[1] != 4:
                raise ValueError(f"boxes must be (N, 4) XYXY, got shape {np.asarray(boxes).shape}")
            if not np.isfinite(b).all() or (b[:, 2:] < b[:, :2]).any():
                raise ValueError("boxes must be finite XYXY with x2 >= x1 and y2 >= y1")
        if points is not None:
            p = np.asarray(points, np.float32)
            if p.ndim == 2 and p.shape[-1] == 2:
                p = p[:, None, :]
            if p.ndim != 3 or p.shape[-1] != 2:
                raise ValueError(f"points must be (N, 2) or (N, P, 2) XY, got shape {np.asarray(points).shape}")
            if not np.isfinite(p).all():
                raise ValueError("points must be finite")
            lab = np.ones(p.shape[:2], np.float32) if labels is None else np.asarray(labels, np.float32)
            if lab.shape != p.shape[:2] and lab.size == p.shape[0] * p.shape[1]:
                lab = lab.reshape(p.shape[:2])
            if lab.shape != p.shape[:2] or not np.isin(lab, (0, 1)).all():
                raise ValueError(f"labels must be (N, P) = {p.shape[:2]} of 0/1, got {np.asarray(labels).shape}")
        elif labels is not None:
            raise ValueError("labels given without points")
        if b is None and p is None:
            raise ValueError("a prompt needs boxes=, points= or both")
        if b is not None and p is not None and len(b) != len(p):
            raise ValueError(f"boxes and points must give the same number of prompts, got {len(b)} and {len(p)}")
        return cls(p, lab, b)

    def __len__(self) -> int:
        return len(self.boxes) if self.boxes is not None else len(self.points)

    def decoder_points(self, frame: PromptFrame) -> tuple[np.ndarray, np.ndarray]:
        """``(N, P', 2)`` coordinates in input pixels and ``(N, P')`` labels, as SAM's decoder takes them."""
        n = len(self)
        coords = [np.zeros((n, 0, 2), np.float32)]
        labels = [np.zeros((n, 0), np.float32)]
        if self.points is not None:
            coords.append(self.points)
            labels.append(self.labels)
        if self.boxes is not None:
            coords.append(self.boxes.reshape(n, 2, 2))
            labels.append(np.tile(np.array([[2, 3]], np.float32), (n, 1)))
        else:  # SamPredictor pads prompts without a box with one "not a point"
            coords.append(np.zeros((n, 1, 2), np.float32))
            labels.append(np.full((n, 1), -1, np.float32))
        xy = np.concatenate(coords, axis=1)
        lab = np.concatenate(labels, axis=1)
        scaled = frame.coords_to_input(xy)
        scaled[lab == -1] = 0.0
        return scaled, lab


class PromptSegmenter:
    """Runs a ``prompt`` bundle: encoder per frame (cached), decoder per batch of prompts.

    Args:
        bundle: A verified ``prompt`` family bundle (ONNX).
        device_config: The board's settings (threads, providers).
    """

    def __init__(self, bundle: Bundle, device_config: DeviceConfig | None = None) -> None:
        from edgeseg.backends.onnxruntime import open_session

        self.device_config = device_config or DeviceConfig()
        self.bundle = bundle
        self.manifest: Manifest = bundle.manifest
        spec = self.manifest.prompt
        if spec is None:
            raise ValueError(f"bundle {self.manifest.name!r} (family {self.manifest.family}) is not a prompt bundle")
        if self.manifest.format != "onnx":
            raise ValueError(f"prompt bundles run on onnxruntime; bundle format is {self.manifest.format!r}")
        self.spec = spec
        self.encoder: Backend = load_backend(bundle, self.device_config.backend)
        self.session = open_session(bundle.root / spec.model, self.device_config.backend)
        #: Decoder output names by role (``low_res_logits``, ``iou``, optionally ``masks``).
        self.outputs = {o.role: o.name for o in spec.outputs}
        self._emb_name = self.manifest.output("embeddings").name
        inputs = {i.name: i for i in self.session.get_inputs()}
        wanted = [v for v in dataclasses.asdict(spec.inputs).values() if v is not None]
        missing = [n for n in wanted if n not in inputs]
        if missing:
            raise ValueError(f"prompt decoder has inputs {sorted(inputs)}, manifest names {missing} that it lacks")
        self._mask_input = None
        if spec.inputs.mask_input is not None:
            shape = [d if isinstance(d, int) else 1 for d in inputs[spec.inputs.mask_input].shape]
            self._mask_input = np.zeros(shape, np.float32)
        self.path = active_path()
        self._cache: tuple[bytes, np.ndarray, PromptFrame] | None = None

    @classmethod
    def from_bundle(cls, bundle: Bundle, device_config: DeviceConfig) -> PromptSegmenter:
        require_trusted(bundle, device_config.trust.keys)
        return cls(bundle, device_config)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.manifest.classes

    def __call__(self, image_bgr: np.ndarray, **_) -> Result:
        raise ValueError(
            f"{self.manifest.name!r} is a prompt bundle: call seg.prompt(image, boxes=..., points=...), or use it "
            "to refine a detector's masks (edgeseg run --refine BUNDLE)"
        )

    # ------------------------------------------------------------------ stages

    def encode(self, image_bgr: np.ndarray) -> tuple[np.ndarray, PromptFrame, float]:
        """The frame's embeddings (cached: the encoder runs once per distinct frame).

        Returns:
            ``(embeddings (1, C, h, w) float32, frame geometry, preprocess ms)``;
            preprocess ms is 0 when the embeddings came from the cache.
        """
        if not isinstance(image_bgr, np.ndarray):
            raise TypeError(f"image must be a numpy array (H, W, 3) uint8 BGR, got {type(image_bgr).__name__}")
        key = hashlib.blake2b(np.ascontiguousarray(image_bgr).data, digest_size=16).digest() + repr(image_bgr.shape).encode()
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1], self._cache[2], 0.0
        t0 = time.perf_counter()
        tensor, frame = encoder_input(image_bgr, self.manifest.input, self.spec.resize)
        t1 = time.perf_counter()
        emb = self.embed(tensor)
        self._cache = (key, emb, frame)
        return emb, frame, (t1 - t0) * 1e3

    def embed(self, tensor: np.ndarray) -> np.ndarray:
        """One encoder run on a preprocessed input: ``(1, C, h, w)`` float32 embeddings."""
        return self.encoder.run(tensor)[self._emb_name]

    def decode(self, embeddings: np.ndarray, frame: PromptFrame, prompts: Prompts) -> tuple[np.ndarray, np.ndarray]:
        """Runs the prompt decoder: ``(low-res logits (N, T, h, w), predicted IoU (N, T))`` float32."""
        coords, labels = prompts.decoder_points(frame)
        n = len(prompts)
        if n > self.spec.max_prompts:
            raise ValueError(f"at most {self.spec.max_prompts} prompts per call (manifest.prompt.max_prompts), got {n}")
        names = [self.outputs["low_res_logits"], self.outputs["iou"]]
        groups = [np.arange(n)] if self.spec.batched else [np.array([i]) for i in range(n)]
        low = iou = None
        for idx in groups:
            lo, io = self.session.run(names, self.feeds(embeddings, frame, coords[idx], labels[idx]))
            if low is None:
                low = np.empty((n, *lo.shape[1:]), np.float32)
                iou = np.empty((n, io.shape[-1]), np.float32)
            low[idx], iou[idx] = lo, io.reshape(len(idx), -1)
        if low is None:
            return np.zeros((0, 1, 1, 1), np.float32), np.zeros((0, 1), np.float32)
        return low, iou

    def feeds(self, embeddings: np.ndarray, frame: PromptFrame, coords: np.ndarray, labels: np.ndarray) -> dict:
        """The decoder's inputs by name: no mask input, points ``(B, P, 2)`` input pixels, labels ``(B, P)``."""
        i = self.spec.inputs
        feeds = {i.embeddings: embeddings, i.point_coords: np.ascontiguousarray(coords, np.float32),
                 i.point_labels: np.ascontiguousarray(labels, np.float32)}
        if i.mask_input is not None:
            feeds[i.mask_input] = self._mask_input
        if i.has_mask_input is not None:
            feeds[i.has_mask_input] = np.zeros(1, np.float32)
        if i.orig_im_size is not None:
            feeds[i.orig_im_size] = np.array(frame.orig_size, np.float32)
        return feeds

    def masks(self, low: np.ndarray, frame: PromptFrame) -> tuple:
        """``(N, h, w)`` low-res logits -> cropped masks at the original resolution (only inside each region)."""
        return upsample(low, frame, self.spec.mask_threshold, path=self.path)

    # ------------------------------------------------------------------ API

    def prompt_logits(self, image_bgr: np.ndarray, *, boxes=None, points=None, labels=None):
        """The decoder's raw answer: ``(low-res logits (N, T, h, w), IoU (N, T), frame geometry)``."""
        prompts = Prompts.build(boxes, points, labels)
        emb, frame, _ = self.encode(image_bgr)
        low, iou = self.decode(emb, frame, prompts)
        return low, iou, frame

    def prompt(
        self,
        image_bgr: np.ndarray,
        *,
        boxes=None,
        points=None,
        labels=None,
        multimask: bool = False,
        frame_id: int = 0,
    ) -> Result:
        """Segments what the prompts point at.

        Args:
            image_bgr: ``(H, W, 3)`` uint8 BGR.
            boxes: ``(N, 4)`` XYXY original pixels, one prompt each.
            points: ``(N, 2)`` one foreground point per prompt, or ``(N, P, 2)``.
            labels: ``(N, P)`` point labels (1 foreground, 0 background).
            multimask: Best of the multimask tokens by predicted IoU instead of the single-mask token.
            frame_id: Caller's frame counter, carried into the result.

        Returns:
            One instance per prompt, in prompt order: tight box around the mask,
            score = predicted IoU clipped to [0, 1], class 0 of the manifest's classes.
        """
        prompts = Prompts.build(boxes, points, labels)
        t0 = time.perf_counter()
        emb, frame, pre_ms = self.encode(image_bgr)
        low, iou = self.decode(emb, frame, prompts)
        t1 = time.perf_counter()
        logits, score = self.select(low, iou, multimask=multimask)
        masks = self.masks(logits, frame)
        t2 = time.perf_counter()
        return Result(
            boxes=tight_boxes(masks), scores=np.clip(score, 0.0, 1.0).astype(np.float32),
            class_ids=np.zeros(len(masks), np.int32), masks=masks, class_names=self.manifest.classes,
            image_size=frame.orig_size, frame_id=frame_id,
            timings=StageTimings(pre_ms, (t1 - t0) * 1e3 - pre_ms, (t2 - t1) * 1e3),
        )

    def select(self, low: np.ndarray, iou: np.ndarray, *, multimask: bool) -> tuple[np.ndarray, np.ndarray]:
        """One mask token per prompt: ``(logits (N, h, w), IoU (N,))`` (see the module docstring)."""
        n = len(low)
        if self.spec.mask_tokens == "selected" or low.shape[1] == 1 or not multimask:
            return low[:, 0], iou[:, 0]
        best = 1 + np.argmax(iou[:, 1:], axis=1)
        return low[np.arange(n), best], iou[np.arange(n), best]

    def refine(self, image_bgr: np.ndarray, result: Result) -> Result:
        """A detector's result with its masks replaced by this model's masks of its boxes.

        Boxes, scores, classes and track ids stay the detector's; an instance
        whose prompt mask comes out empty keeps its detector mask.
        """
        if len(result.scores) == 0:
            return result
        t0 = time.perf_counter()
        emb, frame, _ = self.encode(image_bgr)
        low, iou = self.decode(emb, frame, Prompts.build(boxes=result.boxes))
        logits, _ = self.select(low, iou, multimask=False)
        masks = self.masks(logits, frame)
        if result.masks:
            masks = tuple(m if m.bitmap.any() else old for m, old in zip(masks, result.masks, strict=True))
        ms = (time.perf_counter() - t0) * 1e3
        t = result.timings
        return dataclasses.replace(result, masks=masks, mask_rles=(), mask_frames=None,
                                   timings=StageTimings(t.preprocess_ms, t.infer_ms + ms, t.decode_ms))

    def close(self) -> None:
        self.encoder.close()
        self.session = None

    def __enter__(self) -> PromptSegmenter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def load_prompt(bundle: str | Path | Bundle, device_config: str | Path | DeviceConfig | None = None) -> PromptSegmenter:
    """Loads a ``prompt`` bundle (``edgeseg.load`` does this for prompt bundles)."""
    from edgeseg.bundle import load_bundle
    from edgeseg.device_config import load_device_config

    if device_config is None:
        device_config = DeviceConfig()
    elif not isinstance(device_config, DeviceConfig):
        device_config = load_device_config(device_config)
    if not isinstance(bundle, Bundle):
        bundle = load_bundle(bundle, trust_keys=device_config.trust.keys)
    return PromptSegmenter.from_bundle(bundle, device_config)
