"""Mask and box mAP of a Segmenter on a COCO validation set (pycocotools, optional).

The set is the layout ``export`` writes: ``DIR/annotations.json`` (COCO
instances, RLE masks) with ``file_name`` relative to ``DIR``. Categories are
matched to the bundle's classes by name, so a set whose ids differ from the
class order still scores correctly. pycocotools is imported only here
(``pip install 'edgeseg[bench]'``).
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

from edgeseg.segmenter import Segmenter


def _coco():
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise ImportError("mask mAP needs pycocotools: pip install 'edgeseg[bench]'") from None
    return COCO, COCOeval


#: COCO-style evaluation keeps low-confidence detections: AP integrates over the
#: whole precision/recall curve, which a deployment threshold would cut short.
EVAL_SCORE_THRESHOLD = 0.001


def predictions(
    seg: Segmenter, val_dir: str | Path, *, limit: int = 0, score_threshold: float = EVAL_SCORE_THRESHOLD
) -> tuple[list[dict], list[int]]:
    """Runs ``seg`` over the set's images.

    Args:
        seg: The loaded bundle.
        val_dir: Folder with ``annotations.json`` and the images it names.
        limit: Only the first ``limit`` images (0 = all).
        score_threshold: Keep detections at least this confident.

    Returns:
        ``(detections, image_ids)``: COCO result dicts (``segmentation`` RLE,
        ``bbox`` XYWH in pixels, ``score``, ``category_id``) and the ids evaluated.

    Raises:
        ValueError: A bundle class has no category of the same name, or an image is unreadable.
    """
    import cv2

    root = Path(val_dir)
    ann_file = root / "annotations.json"
    if not ann_file.is_file():
        raise FileNotFoundError(f"expected a COCO validation set with {ann_file}")
    coco = json.loads(ann_file.read_text())
    by_name = {c["name"]: c["id"] for c in coco["categories"]}
    missing = [c for c in seg.class_names if c not in by_name]
    if missing:
        raise ValueError(f"bundle classes {missing} have no category in {ann_file} (it has {sorted(by_name)})")
    cat_ids = [by_name[c] for c in seg.class_names]
    images = coco["images"][:limit] if limit else coco["images"]
    dets: list[dict] = []
    for img in images:
        image = cv2.imread(str(root / img["file_name"]), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"validation image {root / img['file_name']} cannot be read")
        result = seg(image, score_threshold=score_threshold)
        for inst in result:
            x0, y0, x1, y1 = inst.box
            dets.append({
                "image_id": img["id"],
                "category_id": cat_ids[inst.class_id],
                "score": inst.score,
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "segmentation": inst.mask.rle() if inst.mask is not None else None,
            })
    return dets, [img["id"] for img in images]


def evaluate_masks(
    seg: Segmenter, val_dir: str | Path, *, limit: int = 0, score_threshold: float = EVAL_SCORE_THRESHOLD
) -> dict[str, float]:
    """COCO mAP of ``seg`` on a validation set.

    Args:
        seg: The loaded bundle.
        val_dir: Folder with ``annotations.json`` and the images it names.
        limit: Evaluate only the first ``limit`` images (0 = all).
        score_threshold: Lowest detection score kept (see :data:`EVAL_SCORE_THRESHOLD`).

    Returns:
        ``mask_map`` (AP@[.5:.95]), ``mask_map50``, ``box_map``, ``box_map50``
        in [0, 1], and ``images`` evaluated.
    """
    COCO, COCOeval = _coco()
    dets, image_ids = predictions(seg, val_dir, limit=limit, score_threshold=score_threshold)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its tables
        gt = COCO(str(Path(val_dir) / "annotations.json"))
        out: dict[str, float] = {"images": float(len(image_ids))}
        for iou_type, key in (("segm", "mask"), ("bbox", "box")):
            # loadRes adds ids and areas in place: give each evaluation its own copies.
            if iou_type == "bbox":
                usable = [{k: v for k, v in d.items() if k != "segmentation"} for d in dets]
            else:
                usable = [dict(d) for d in dets if d["segmentation"] is not None]
            if not usable:
                out[f"{key}_map"] = out[f"{key}_map50"] = 0.0
                continue
            ev = COCOeval(gt, gt.loadRes(usable), iou_type)
            ev.params.imgIds = image_ids
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            out[f"{key}_map"] = max(0.0, float(ev.stats[0]))
            out[f"{key}_map50"] = max(0.0, float(ev.stats[1]))
    return out
