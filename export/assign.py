"""Task-aligned label assignment (a lean version of TOOD / YOLOv8's assigner).

For every ground-truth object, the anchors whose centres fall inside its box
are ranked by ``score**alpha * iou**beta`` (predicted probability of the
object's class times the IoU of the predicted box); the ``topk`` best become
positives. An anchor claimed by several objects goes to the one it overlaps
most. Soft class targets are the alignment metric rescaled so that each
object's best anchor gets that object's best IoU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class AssignerConfig:
    """Task-aligned assigner settings.

    Attributes:
        topk: Positives per object at most.
        alpha: Exponent of the class probability in the alignment metric.
        beta: Exponent of the IoU in the alignment metric.
    """

    topk: int = 10
    alpha: float = 0.5
    beta: float = 6.0


@dataclass
class Assignment:
    """Per-anchor training targets.

    Attributes:
        fg: ``(B, A)`` bool, anchors assigned to an object.
        gt_index: ``(B, A)`` int64 index of the object (valid where ``fg``).
        target_scores: ``(B, A, C)`` float soft class targets (0 on background).
    """

    fg: torch.Tensor
    gt_index: torch.Tensor
    target_scores: torch.Tensor


def box_iou(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """IoU of broadcastable XYXY boxes ``(..., 4)`` -> ``(...)``."""
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1)
    area_b = (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)
    return inter / (area_a + area_b - inter + eps)


@torch.no_grad()
def assign(
    pred_scores: torch.Tensor,
    pred_boxes: torch.Tensor,
    anchors: torch.Tensor,
    gt_boxes: torch.Tensor,
    gt_classes: torch.Tensor,
    gt_valid: torch.Tensor,
    cfg: AssignerConfig = AssignerConfig(),
) -> Assignment:
    """Assigns anchors to ground-truth objects.

    Args:
        pred_scores: ``(B, A, C)`` class probabilities (after sigmoid).
        pred_boxes: ``(B, A, 4)`` predicted XYXY boxes in input pixels.
        anchors: ``(A, 2)`` anchor centres, XY input pixels.
        gt_boxes: ``(B, M, 4)`` XYXY boxes in input pixels (padded).
        gt_classes: ``(B, M)`` int64 class ids (padded).
        gt_valid: ``(B, M)`` bool, which of the ``M`` slots hold an object.
        cfg: Assigner settings.

    Returns:
        The :class:`Assignment`.
    """
    b, a, c = pred_scores.shape
    m = gt_boxes.shape[1]
    if m == 0:
        return Assignment(
            torch.zeros(b, a, dtype=torch.bool), torch.zeros(b, a, dtype=torch.long), torch.zeros_like(pred_scores)
        )
    ax, ay = anchors[:, 0], anchors[:, 1]
    g = gt_boxes.unsqueeze(-1)  # (B, M, 4, 1)
    inside = (ax > g[:, :, 0]) & (ax < g[:, :, 2]) & (ay > g[:, :, 1]) & (ay < g[:, :, 3])
    inside &= gt_valid.unsqueeze(-1)  # (B, M, A)
    iou = box_iou(gt_boxes.unsqueeze(2), pred_boxes.unsqueeze(1)).clamp(min=0) * inside
    cls_idx = gt_classes.clamp(min=0).unsqueeze(-1).expand(b, m, a)
    score = pred_scores.transpose(1, 2).gather(1, cls_idx)  # (B, M, A)
    align = score.pow(cfg.alpha) * iou.pow(cfg.beta) * inside
    k = min(cfg.topk, a)
    # Small epsilon ranks by IoU-free "inside" first so tiny-metric objects still get anchors.
    top = (align + inside * 1e-9).topk(k, dim=-1).indices
    cand = torch.zeros_like(inside).scatter_(-1, top, True) & inside
    multi = cand.sum(1, keepdim=True) > 1  # (B, 1, A)
    best = torch.nn.functional.one_hot(iou.argmax(1), m).transpose(1, 2).bool()  # (B, M, A)
    cand = torch.where(multi, best & inside, cand)
    fg = cand.any(1)
    gt_index = cand.float().argmax(1)
    align = align * cand
    norm = align * (iou * cand).amax(-1, keepdim=True) / (align.amax(-1, keepdim=True) + 1e-9)
    quality = norm.amax(1)  # (B, A)
    cls = gt_classes.gather(1, gt_index).clamp(min=0)
    target = torch.nn.functional.one_hot(cls, c).float() * (quality * fg).unsqueeze(-1)
    return Assignment(fg, gt_index, target)
