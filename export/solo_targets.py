"""SOLO's grid-cell targets: which cells of which level predict which object.

SOLOv2's assignment (the paper, section 3.2 of SOLO, as mmdet's
``SOLOHead._get_targets_single`` does it), written here for the padded
:class:`export.losses.Targets` batches of the nano training loop (there is no
library for it without mmdet). For each object and each level whose scale
range holds ``sqrt(box w * box h)``: the centre is the mask's centre of mass;
the centre region is ``sigma`` times the box around it, cut to at most the
3x3 cells around the centre cell; those cells get the object's class and mask.
Larger objects are assigned first so a smaller one wins a shared cell.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from export.losses import Targets
from export.models.solo_nano import SoloConfig


@dataclass(frozen=True)
class CellTargets:
    """Targets of one batch over the flattened cells of all levels.

    Attributes:
        classes: ``(B, S)`` int64 class id per cell, ``-1`` for background.
        gt_index: ``(B, S)`` int64 index into the batch's padded objects, ``-1`` for background.
    """

    classes: torch.Tensor
    gt_index: torch.Tensor


def centre_of_mass(mask: np.ndarray, stride: float) -> tuple[float, float]:
    """``(cy, cx)`` in input pixels of a ``(h, w)`` soft mask sampled at pixel centres of ``stride``."""
    total = float(mask.sum())
    if total <= 0.0:
        return float("nan"), float("nan")
    ys = (np.arange(mask.shape[0], dtype=np.float64) + 0.5) * stride
    xs = (np.arange(mask.shape[1], dtype=np.float64) + 0.5) * stride
    return float(mask.sum(1) @ ys / total), float(mask.sum(0) @ xs / total)


def _cells(cy: float, cx: float, half_h: float, half_w: float, size: float, g: int) -> tuple[int, int, int, int]:
    """Centre-region cell rows/cols ``(top, bottom, left, right)``, inclusive, of one object on a ``g`` grid."""
    cell = size / g
    row, col = min(g - 1, int(cy // cell)), min(g - 1, int(cx // cell))
    top = max(0, int((cy - half_h) // cell), row - 1)
    bottom = min(g - 1, int((cy + half_h) // cell), row + 1)
    left = max(0, int((cx - half_w) // cell), col - 1)
    right = min(g - 1, int((cx + half_w) // cell), col + 1)
    return top, bottom, left, right


def assign_cells(targets: Targets, cfg: SoloConfig) -> CellTargets:
    """Builds the cell targets of a batch.

    Args:
        targets: Padded ground truth; ``masks`` at ``cfg.mask_stride``.
        cfg: Model config (grids, scale ranges, sigma, input size).

    Returns:
        :class:`CellTargets` over ``S = cfg.num_cells`` cells.
    """
    boxes = targets.boxes.numpy()
    classes = targets.classes.numpy()
    valid = targets.valid.numpy()
    masks = targets.masks.numpy()
    b = boxes.shape[0]
    out_cls = np.full((b, cfg.num_cells), -1, np.int64)
    out_gt = np.full((b, cfg.num_cells), -1, np.int64)
    offsets = np.cumsum([0] + [g * g for g in cfg.grids])
    size = float(cfg.imgsz)
    for i in range(b):
        idx = np.nonzero(valid[i])[0]
        wh = boxes[i, idx, 2:] - boxes[i, idx, :2]
        scale = np.sqrt(wh[:, 0] * wh[:, 1])
        for j in idx[np.argsort(-scale, kind="stable")]:
            w, h = boxes[i, j, 2] - boxes[i, j, 0], boxes[i, j, 3] - boxes[i, j, 1]
            cy, cx = centre_of_mass(masks[i, j], cfg.mask_stride)
            if not np.isfinite(cy):
                continue
            s = float(np.sqrt(max(0.0, float(w * h))))
            for level, (g, (lo, hi)) in enumerate(zip(cfg.grids, cfg.scale_ranges, strict=True)):
                if not lo <= s <= hi:
                    continue
                top, bottom, left, right = _cells(cy, cx, 0.5 * cfg.sigma * h, 0.5 * cfg.sigma * w, size, g)
                rows = np.arange(top, bottom + 1)[:, None]
                cols = np.arange(left, right + 1)[None, :]
                flat = (offsets[level] + rows * g + cols).ravel()
                out_cls[i, flat] = classes[i, j]
                out_gt[i, flat] = j
    return CellTargets(torch.from_numpy(out_cls), torch.from_numpy(out_gt))

