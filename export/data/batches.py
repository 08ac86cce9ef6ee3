"""In-RAM training set and augmented batches for edgeseg-nano.

The whole training split is decoded once into uint8 arrays (a 320x320 image is
300 KB; masks are kept at prototype resolution, 6.4 KB each), so an epoch
costs no JPEG or RLE decoding. Augmentation is modest: the eight flips and
90-degree rotations of a top-down view, and a per-channel gain.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from tqdm import tqdm

from export.data.coco import annotations_by_image, decode_annotation, load_coco
from export.losses import Targets


@dataclass
class TrainSet:
    """A COCO split held in memory.

    Attributes:
        images: ``(N, S, S, 3)`` uint8 RGB.
        boxes: Per image ``(n, 4)`` float32 XYXY pixels.
        classes: Per image ``(n,)`` int64 class ids.
        masks: Per image ``(n, S/ps, S/ps)`` uint8 in [0, 255] (area-downsampled).
    """

    images: np.ndarray
    boxes: list[np.ndarray]
    classes: list[np.ndarray]
    masks: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.images)


def load_trainset(data_dir: str, imgsz: int, proto_stride: int, limit: int | None = None) -> TrainSet:
    """Loads a synthetic COCO split whose images are ``imgsz`` x ``imgsz``.

    Args:
        data_dir: Dataset directory (``annotations.json`` + ``images/``).
        imgsz: Expected square image size.
        proto_stride: Downsampling of the stored masks.
        limit: Load only the first ``limit`` images.
    """
    coco, root = load_coco(data_dir)
    by_image = annotations_by_image(coco)
    entries = coco["images"][:limit] if limit else coco["images"]
    images = np.zeros((len(entries), imgsz, imgsz, 3), np.uint8)
    boxes, classes, masks = [], [], []
    ps = imgsz // proto_stride
    for i, entry in enumerate(tqdm(entries, desc=f"load {data_dir}", leave=False)):
        if (entry["height"], entry["width"]) != (imgsz, imgsz):
            raise ValueError(
                f"training images must be {imgsz}x{imgsz}, got {entry['width']}x{entry['height']} "
                f"for {entry['file_name']}; render with --imgsz {imgsz}"
            )
        bgr = cv2.imread(str(root / entry["file_name"]), cv2.IMREAD_COLOR)
        images[i] = bgr[..., ::-1]
        anns = by_image[entry["id"]]
        boxes.append(np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2],
                                a["bbox"][1] + a["bbox"][3]] for a in anns], np.float32).reshape(-1, 4))
        classes.append(np.array([a["category_id"] - 1 for a in anns], np.int64))
        small = [cv2.resize(decode_annotation(a).astype(np.uint8) * 255, (ps, ps), interpolation=cv2.INTER_AREA)
                 for a in anns]
        masks.append(np.stack(small) if small else np.zeros((0, ps, ps), np.uint8))
    return TrainSet(images, boxes, classes, masks)


def _dihedral(img: np.ndarray, masks: np.ndarray, boxes: np.ndarray, code: int):
    """Applies one of the 8 flips/transpositions (``code`` in 0..7) to a square sample."""
    s = img.shape[0]
    b = boxes.copy()
    if code & 1:  # horizontal flip
        img, masks = img[:, ::-1], masks[:, :, ::-1]
        b[:, [0, 2]] = s - b[:, [2, 0]]
    if code & 2:  # vertical flip
        img, masks = img[::-1], masks[:, ::-1]
        b[:, [1, 3]] = s - b[:, [3, 1]]
    if code & 4:  # transpose (with the flips, gives the 90-degree rotations)
        img, masks = img.transpose(1, 0, 2), masks.transpose(0, 2, 1)
        b = b[:, [1, 0, 3, 2]]
    return img, masks, b


def make_batch(ts: TrainSet, idx: np.ndarray, rng: np.random.Generator | None) -> tuple[torch.Tensor, Targets]:
    """Builds one batch.

    Args:
        ts: The training set.
        idx: Image indices of the batch.
        rng: Augmentation randomness; ``None`` disables augmentation.

    Returns:
        ``(images (B, 3, S, S) float32 RGB in [0, 1], padded Targets)``.
    """
    n = len(idx)
    m = max(1, max(len(ts.classes[i]) for i in idx))
    s = ts.images.shape[1]
    ps = ts.masks[idx[0]].shape[-1] if len(ts.masks[idx[0]]) else s // 4
    imgs = np.zeros((n, s, s, 3), np.float32)
    boxes = np.zeros((n, m, 4), np.float32)
    classes = np.full((n, m), -1, np.int64)
    masks = np.zeros((n, m, ps, ps), np.float32)
    for j, i in enumerate(idx):
        img, mk, bx = ts.images[i], ts.masks[i], ts.boxes[i]
        if rng is not None:
            img, mk, bx = _dihedral(img, mk, bx, int(rng.integers(8)))
            img = img * rng.uniform(0.8, 1.2, 3).astype(np.float32) + np.float32(rng.uniform(-15, 15))
        k = len(bx)
        imgs[j] = img
        boxes[j, :k] = bx
        classes[j, :k] = ts.classes[i]
        masks[j, :k] = mk
    x = torch.from_numpy(np.clip(imgs, 0, 255) / np.float32(255.0)).permute(0, 3, 1, 2).contiguous()
    t = Targets(torch.from_numpy(boxes), torch.from_numpy(classes), torch.from_numpy(classes >= 0),
                torch.from_numpy(masks / np.float32(255.0)))
    return x, t
