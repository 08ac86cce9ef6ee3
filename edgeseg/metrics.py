"""COCO box and mask mAP of any predictor on a COCO dataset: the project's one evaluation.

A *predictor* is any callable ``predict(image_bgr, *, score_threshold,
max_detections) -> Result``: a :class:`~edgeseg.Segmenter` (a bundle through
the runtime, as on a board), or the export pipeline's PyTorch wrapper around
the same preprocessor and decoder. ``edgeseg bench --val``, ``python -m
export.evaluate`` and the export parity report all score through here, so
their numbers are comparable.

The dataset layout is ``DIR/annotations.json`` (COCO instances, RLE or
polygon masks) with ``file_name`` relative to ``DIR``. Predicted classes map
to the dataset's categories by name. pycocotools is imported only when
metrics are computed (``pip install 'edgeseg[bench]'``): the runtime itself
never needs it.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeseg.result import Result

Predictor = Callable[..., Result]
"""``predict(image_bgr (H, W, 3) uint8, *, score_threshold, max_detections) -> Result``."""

#: COCO AP integrates over the whole precision/recall curve, which a
#: deployment threshold would cut short: evaluation keeps low scores.
EVAL_SCORE_THRESHOLD = 0.001
EVAL_MAX_DETECTIONS = 100


@dataclass(frozen=True)
class Metrics:
    """COCO metrics in [0, 1].

    Attributes:
        mask_map: Mask AP@[.50:.95].
        mask_map50: Mask AP@.50.
        box_map: Box AP@[.50:.95].
        box_map50: Box AP@.50.
        images: Images evaluated.
    """

    mask_map: float
    mask_map50: float
    box_map: float
    box_map50: float
    images: int


def load_coco(data_dir: str | Path) -> tuple[dict, Path]:
    """Reads ``DIR/annotations.json``; returns ``(coco_dict, DIR)``."""
    root = Path(data_dir)
    path = root / "annotations.json"
    if not path.is_file():
        raise FileNotFoundError(f"expected a COCO dataset with {path}")
    try:
        return json.loads(path.read_text()), root
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None


def _read(path: Path) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot read dataset image {path}")
    return image


def _category_ids(coco: dict, class_names: tuple[str, ...]) -> list[int]:
    by_name = {c["name"]: c["id"] for c in coco["categories"]}
    missing = [c for c in class_names if c not in by_name]
    if missing:
        raise ValueError(f"model classes {missing} have no category of that name in the dataset (it has {sorted(by_name)})")
    return [by_name[c] for c in class_names]


def predict_dataset(
    predict: Predictor,
    data_dir: str | Path,
    *,
    limit: int = 0,
    score_threshold: float = EVAL_SCORE_THRESHOLD,
    progress: bool = True,
) -> tuple[dict, list[dict], dict[int, Result]]:
    """Runs ``predict`` over a COCO dataset.

    Args:
        predict: The predictor.
        data_dir: Dataset directory (``annotations.json`` + images).
        limit: Only the first ``limit`` images (0: all).
        score_threshold: Lowest score kept.
        progress: Show a progress bar (tqdm, when installed).

    Returns:
        ``(coco dict restricted to the evaluated images, COCO detections
        (bbox XYWH pixels, RLE segmentation), {image_id: Result})``.
    """
    coco, root = load_coco(data_dir)
    images = coco["images"][:limit] if limit else coco["images"]
    ids = {img["id"] for img in images}
    coco = {**coco, "images": images, "annotations": [a for a in coco["annotations"] if a["image_id"] in ids]}
    iterator = images
    if progress:
        with contextlib.suppress(ImportError):
            from tqdm import tqdm

            iterator = tqdm(images, desc="predict", unit="img", leave=False, mininterval=2.0)
    dets: list[dict] = []
    results: dict[int, Result] = {}
    cat_ids: list[int] | None = None
    for img in iterator:
        r = predict(_read(root / img["file_name"]), score_threshold=score_threshold, max_detections=EVAL_MAX_DETECTIONS)
        if cat_ids is None:
            cat_ids = _category_ids(coco, r.class_names)
        results[img["id"]] = r
        rles = r.rles()  # one C call per image
        for i in range(len(r)):
            x1, y1, x2, y2 = (float(v) for v in r.boxes[i])
            det = {"image_id": img["id"], "category_id": cat_ids[int(r.class_ids[i])], "score": float(r.scores[i]),
                   "bbox": [x1, y1, x2 - x1, y2 - y1]}
            if rles is not None:
                det["segmentation"] = rles[i]
            dets.append(det)
    return coco, dets, results


def coco_metrics(coco: dict, dets: list[dict], *, verbose: bool = False) -> Metrics:
    """Box and mask mAP of COCO detections against ground truth.

    Args:
        coco: Ground-truth COCO dict.
        dets: Detections (``bbox`` XYWH, ``segmentation`` RLE, ``score``, ``category_id``).
        verbose: Print pycocotools' summary tables.
    """
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise ImportError("mAP needs pycocotools: pip install 'edgeseg[bench]'") from None
    gt = COCO()
    gt.dataset = coco
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    stats = {}
    for iou_type in ("segm", "bbox"):
        usable = [dict(d) for d in dets if iou_type == "bbox" or "segmentation" in d]  # loadRes edits its input
        if iou_type == "bbox":
            for d in usable:
                d.pop("segmentation", None)
        if not usable:
            stats[iou_type] = (0.0, 0.0)
            continue
        with contextlib.redirect_stdout(io.StringIO()):
            res = gt.loadRes(usable)
            ev = COCOeval(gt, res, iou_type)
            ev.params.imgIds = [img["id"] for img in coco["images"]]
            ev.params.maxDets = [1, 10, EVAL_MAX_DETECTIONS]
            ev.evaluate()
            ev.accumulate()
        if verbose:
            print(f"--- {'mask' if iou_type == 'segm' else 'box'} ---")
            ev.summarize()
        else:
            with contextlib.redirect_stdout(io.StringIO()):
                ev.summarize()
        stats[iou_type] = (max(0.0, float(ev.stats[0])), max(0.0, float(ev.stats[1])))
    return Metrics(*stats["segm"], *stats["bbox"], images=len(coco["images"]))


def evaluate(predict: Predictor, data_dir: str | Path, *, limit: int = 0, verbose: bool = False) -> Metrics:
    """Box and mask mAP of ``predict`` on a COCO dataset (both steps above)."""
    coco, dets, _ = predict_dataset(predict, data_dir, limit=limit, progress=verbose)
    return coco_metrics(coco, dets, verbose=verbose)
