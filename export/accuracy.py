"""Measuring a model through the runtime: COCO mAP, latency, output deviation.

Bundles run exactly as on a board (:func:`edgeseg.load`: preprocessor,
backend, decoder). PyTorch runs through the same preprocessor and decoder
(:class:`TorchBackend` in place of the backend), so every difference in the
numbers is the exported model's, not the pipeline's.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from edgeseg.decode import Decoder
from edgeseg.decode.tensors import proto_tensors
from edgeseg.manifest import Manifest
from edgeseg.preprocess import Preprocessor
from edgeseg.segmenter import Segmenter

#: Decode settings for mAP: a low score threshold as COCO evaluation expects, 100 detections.
EVAL_SCORE_THRESHOLD = 0.01
EVAL_MAX_DETECTIONS = 100


class TorchBackend:
    """A PyTorch module behind the runtime's backend protocol (``run``/``close``).

    Args:
        model: Module whose forward returns outputs in ``manifest.outputs`` order.
        manifest: A float32 NCHW manifest of the same model.
    """

    device = "pytorch cpu"

    def __init__(self, model: torch.nn.Module, manifest: Manifest) -> None:
        self.model = model.eval()
        self._names = [o.name for o in manifest.outputs]

    def run(self, tensor: np.ndarray) -> dict[str, np.ndarray]:
        with torch.no_grad():
            outs = self.model(torch.from_numpy(tensor))
        return {name: t.numpy() for name, t in zip(self._names, outs)}

    def close(self) -> None:
        pass


class TorchSegmenter(Segmenter):
    """A :class:`~edgeseg.segmenter.Segmenter` whose inference is the PyTorch model."""

    def __init__(self, model: torch.nn.Module, manifest: Manifest) -> None:  # noqa: D107 - no bundle to load
        self.manifest = manifest
        self.preprocessor = Preprocessor(manifest.input)
        self.decoder = Decoder(manifest)
        self.backend = TorchBackend(model, manifest)


@dataclass(frozen=True)
class Accuracy:
    """COCO metrics on a validation set, in mAP points (0-100).

    Attributes:
        mask_map: Mask mAP50-95.
        mask_map50: Mask mAP50.
        box_map: Box mAP50-95.
        box_map50: Box mAP50.
        images: Images evaluated.
        end_to_end_ms: Median preprocess + infer + decode time per image.
    """

    mask_map: float
    mask_map50: float
    box_map: float
    box_map50: float
    images: int
    end_to_end_ms: float


def _coco_eval(gt, dets: list[dict], iou_type: str) -> tuple[float, float]:
    from pycocotools.cocoeval import COCOeval

    if not dets:
        return 0.0, 0.0
    ev = COCOeval(gt, gt.loadRes(dets), iou_type)
    ev.params.maxDets = [1, 10, EVAL_MAX_DETECTIONS]
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return 100.0 * float(ev.stats[0]), 100.0 * float(ev.stats[1])


def evaluate(segmenter: Segmenter, val_dir: str | Path, *, desc: str = "evaluating") -> Accuracy:
    """Box and mask mAP of ``segmenter`` on a COCO dataset (``DIR/annotations.json`` + images).

    Category ids are ``class_id + 1`` (the convention of :mod:`export.data.coco`).
    """
    import contextlib
    import io

    from pycocotools.coco import COCO
    from tqdm import tqdm

    from export.data.coco import load_coco

    data, root = load_coco(val_dir)
    gt = COCO()
    gt.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    dets, times = [], []
    for img in tqdm(data["images"], desc=desc, unit="img", leave=False):
        image = read_image(Path(root) / img["file_name"])
        t0 = time.perf_counter()
        r = segmenter(image, score_threshold=EVAL_SCORE_THRESHOLD, max_detections=EVAL_MAX_DETECTIONS)
        times.append(time.perf_counter() - t0)
        for box, score, cls, mask in zip(r.boxes, r.scores, r.class_ids, r.masks):
            x1, y1, x2, y2 = (float(v) for v in box)
            dets.append(
                {
                    "image_id": img["id"],
                    "category_id": int(cls) + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": float(score),
                    "segmentation": mask.rle(),
                }
            )
    with contextlib.redirect_stdout(io.StringIO()):
        mask_map, mask_map50 = _coco_eval(gt, dets, "segm")
        box_map, box_map50 = _coco_eval(gt, dets, "bbox")
    return Accuracy(mask_map, mask_map50, box_map, box_map50, len(data["images"]), 1e3 * float(np.median(times)))


def latency_ms(segmenter: Segmenter, image: np.ndarray, runs: int, warmup: int = 5) -> tuple[float, float]:
    """Median and 90th percentile of the backend's inference time on one preprocessed image."""
    tensor, _ = segmenter.preprocessor(image)
    for _ in range(warmup):
        segmenter.backend.run(tensor)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        segmenter.backend.run(tensor)
        times.append(time.perf_counter() - t0)
    ms = 1e3 * np.asarray(times)
    return float(np.median(ms)), float(np.percentile(ms, 90))


def canonical_outputs(segmenter: Segmenter, image: np.ndarray) -> dict[str, np.ndarray]:
    """Role -> float32 output in the decoder's canonical layout (``(A, C)``, ``(K, Hp, Wp)``)."""
    tensor, _ = segmenter.preprocessor(image)
    t = proto_tensors(segmenter.backend.run(tensor), segmenter.manifest, None)
    return {role: getattr(t, role).dequantize() for role in ("boxes", "scores", "coeffs", "protos")}


def output_deviation(
    segmenter: Segmenter, images: Sequence[Path], reference: Sequence[dict[str, np.ndarray]], *, desc: str = "deviation"
) -> dict[str, dict[str, float]]:
    """Largest absolute and relative-RMS difference per output against reference outputs.

    Args:
        segmenter: What is measured.
        images: Image files.
        reference: :func:`canonical_outputs` of the reference (PyTorch) for each image.

    Returns:
        Role -> ``{"max_abs": ..., "rel_rms": ...}`` (max_abs over all images,
        rel_rms = ``rms(diff) / rms(reference)`` averaged over images).
    """
    from tqdm import tqdm

    from export.sensitivity import relative_rms

    out: dict[str, dict[str, float]] = {}
    for path, ref in tqdm(list(zip(images, reference)), desc=desc, unit="img", leave=False):
        got = canonical_outputs(segmenter, read_image(path))
        for role, r in ref.items():
            d = out.setdefault(role, {"max_abs": 0.0, "rel_rms": 0.0})
            d["max_abs"] = max(d["max_abs"], float(np.abs(got[role] - r).max()))
            d["rel_rms"] += relative_rms(got[role], r) / len(reference)
    return out


def read_image(path: Path) -> np.ndarray:
    """``cv2.imread`` that raises ``ValueError`` naming the file when it cannot be decoded."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot read image {path}")
    return image
