"""Measuring a model through the runtime: COCO mAP, latency, output deviation.

Bundles run exactly as on a board (:func:`edgeseg.load`: preprocessor,
backend, decoder). PyTorch runs through the same preprocessor and decoder
(:class:`TorchBackend` in place of the backend), so every difference in the
numbers is the exported model's, not the pipeline's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from edgeseg.manifest import Manifest
from edgeseg.segmenter import Segmenter

log = logging.getLogger(__name__)


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
        return {name: t.numpy() for name, t in zip(self._names, outs, strict=True)}

    def close(self) -> None:
        pass


def torch_segmenter(model: torch.nn.Module, manifest: Manifest) -> Segmenter:
    """A :class:`~edgeseg.segmenter.Segmenter` whose inference is the PyTorch model."""
    return Segmenter(manifest, TorchBackend(model, manifest))


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


def evaluate(segmenter: Segmenter, val_dir: str | Path, *, desc: str = "evaluating", limit: int = 0) -> Accuracy:
    """Box and mask mAP of ``segmenter`` on a COCO dataset, in points.

    Uses :mod:`edgeseg.metrics` (the project's one COCO evaluation: same
    thresholds and category matching as ``export.evaluate`` and ``edgeseg
    bench --val``) and adds the end-to-end time.
    """
    from edgeseg.metrics import coco_metrics, predict_dataset

    log.info("%s on %s", desc, val_dir)
    coco, dets, results = predict_dataset(segmenter, val_dir, limit=limit)
    m = coco_metrics(coco, dets, verbose=False)
    times = [r.timings.total_ms for r in results.values()]
    return Accuracy(
        100 * m.mask_map, 100 * m.mask_map50, 100 * m.box_map, 100 * m.box_map50, m.images, float(np.median(times))
    )


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
    """Role -> float32 output in a canonical layout (``(A, C)``, ``(K, Hp, Wp)``), as its family compares them."""
    tensor, _ = segmenter.preprocessor(image)
    return segmenter.decoder.family.comparable_outputs(segmenter.backend.run(tensor), segmenter.manifest)


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
    for path, ref in tqdm(list(zip(images, reference, strict=True)), desc=desc, unit="img", leave=False):
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
