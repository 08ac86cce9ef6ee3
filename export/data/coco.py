"""COCO-format writing and reading for the synthetic scenes.

Layout of a dataset directory::

    DIR/images/000000.jpg ...
    DIR/annotations.json      COCO instances: compressed RLE masks, XYWH boxes

Category ids are ``class_id + 1`` (COCO reserves 0). Masks, boxes and areas
are computed from the same visible-part bitmap, so they always agree. Each
image entry also lists ``touching_pairs``: annotation-id pairs of same-class
objects that touch or overlap.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils


def mask_to_annotation(mask: np.ndarray, class_id: int, ann_id: int, image_id: int) -> dict:
    """COCO annotation for one visible-part mask.

    Args:
        mask: ``(H, W)`` bool.
        class_id: Zero-based class id.
        ann_id: Annotation id (unique in the dataset, >= 1).
        image_id: Image id.

    Returns:
        A COCO annotation dict with RLE ``segmentation`` (counts as str),
        ``bbox`` XYWH tight around the mask, ``area`` = pixel count.
    """
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": class_id + 1,
        "segmentation": rle,
        "area": int(np.count_nonzero(mask)),
        "bbox": [x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1],
        "iscrowd": 0,
    }


def write_coco(scenes: Iterable, out: str | Path, class_names: tuple[str, ...], jpeg_quality: int = 92) -> Path:
    """Writes scenes as JPEG images plus one COCO annotation file.

    Args:
        scenes: Iterable of :class:`export.data.synthetic.Scene`.
        out: Output directory (created).
        class_names: Category names in class-id order.
        jpeg_quality: JPEG quality.

    Returns:
        Path of ``annotations.json``.
    """
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    for image_id, scene in enumerate(scenes, start=1):
        name = f"images/{image_id - 1:06d}.jpg"
        cv2.imwrite(str(out / name), scene.image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        first = len(anns) + 1
        for k, (mask, cls) in enumerate(zip(scene.masks, scene.class_ids, strict=True)):
            anns.append(mask_to_annotation(mask, cls, first + k, image_id))
        h, w = scene.image.shape[:2]
        pairs = [[first + a, first + b] for a, b in scene.touching_pairs]
        images.append({"id": image_id, "file_name": name, "height": h, "width": w, "touching_pairs": pairs})
    categories = [{"id": i + 1, "name": n, "supercategory": "object"} for i, n in enumerate(class_names)]
    path = out / "annotations.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": categories}))
    return path


def load_coco(data_dir: str | Path) -> tuple[dict, Path]:
    """Reads ``DIR/annotations.json``.

    Returns:
        ``(coco_dict, data_dir)``; raises ``FileNotFoundError`` naming the file.
    """
    data_dir = Path(data_dir)
    path = data_dir / "annotations.json"
    if not path.is_file():
        raise FileNotFoundError(f"expected a COCO dataset with {path}; render one with python -m export.data.synthetic")
    return json.loads(path.read_text()), data_dir


def annotations_by_image(coco: dict) -> dict[int, list[dict]]:
    """Groups annotations by ``image_id`` (every image present, maybe empty)."""
    out: dict[int, list[dict]] = {img["id"]: [] for img in coco["images"]}
    for ann in coco["annotations"]:
        out[ann["image_id"]].append(ann)
    return out


def decode_annotation(ann: dict) -> np.ndarray:
    """Decodes an annotation's RLE segmentation to an ``(H, W)`` bool mask."""
    rle = dict(ann["segmentation"])
    if isinstance(rle["counts"], str):
        rle["counts"] = rle["counts"].encode("ascii")
    return mask_utils.decode(rle).astype(bool)
