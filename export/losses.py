"""Training losses of edgeseg-nano: class BCE on soft targets, GIoU boxes, mask BCE + dice.

Masks are assembled exactly like the runtime does (``coeffs @ protos`` at proto
resolution) and supervised only inside the ground-truth box, which is where the
runtime crops them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from export.assign import AssignerConfig, assign, box_iou
from export.models.nano import NanoConfig, make_anchors


@dataclass(frozen=True)
class LossConfig:
    """Loss weights and assigner settings.

    Attributes:
        cls: Weight of the class loss.
        box: Weight of the GIoU box loss.
        mask_bce: Weight of the per-pixel mask BCE.
        mask_dice: Weight of the mask dice loss.
        assigner: Task-aligned assigner settings.
    """

    cls: float = 1.0
    box: float = 5.0
    mask_bce: float = 5.0
    mask_dice: float = 2.0
    assigner: AssignerConfig = AssignerConfig()


@dataclass
class Targets:
    """A padded batch of ground truth.

    Attributes:
        boxes: ``(B, M, 4)`` float32 XYXY input pixels.
        classes: ``(B, M)`` int64 class ids (-1 in padding).
        valid: ``(B, M)`` bool.
        masks: ``(B, M, H/ps, W/ps)`` float32 in [0, 1] at prototype resolution.
    """

    boxes: torch.Tensor
    classes: torch.Tensor
    valid: torch.Tensor
    masks: torch.Tensor


def giou(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Generalized IoU of paired XYXY boxes ``(N, 4)`` -> ``(N,)``."""
    iou = box_iou(a, b, eps)
    lt = torch.minimum(a[:, :2], b[:, :2])
    rb = torch.maximum(a[:, 2:], b[:, 2:])
    hull = (rb - lt).clamp(min=0).prod(-1)
    lt_i = torch.maximum(a[:, :2], b[:, :2])
    rb_i = torch.minimum(a[:, 2:], b[:, 2:])
    inter = (rb_i - lt_i).clamp(min=0).prod(-1)
    union = inter / (iou + eps)
    return iou - (hull - union) / (hull + eps)


def decode_boxes(dist: torch.Tensor, centres: torch.Tensor, strides: torch.Tensor) -> torch.Tensor:
    """``(B, A, 4)`` ltrb distances (stride units) -> ``(B, A, 4)`` XYXY input pixels."""
    s = strides.unsqueeze(-1)
    return torch.cat([centres - dist[..., :2] * s, centres + dist[..., 2:] * s], -1)


class NanoLoss:
    """Computes the total training loss of edgeseg-nano for one batch.

    Args:
        model_cfg: Model config (strides, proto stride, input size).
        cfg: Loss settings.
    """

    def __init__(self, model_cfg: NanoConfig, cfg: LossConfig = LossConfig()):
        self.model_cfg, self.cfg = model_cfg, cfg
        self._anchors: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}

    def anchors(self, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
        if (h, w) not in self._anchors:
            self._anchors[(h, w)] = make_anchors(self.model_cfg, h, w)
        return self._anchors[(h, w)]

    def __call__(self, outputs, targets: Targets, input_hw: tuple[int, int]) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss of one batch.

        Args:
            outputs: The model's ``(boxes, scores, coeffs, protos)``.
            targets: Padded ground truth.
            input_hw: ``(H, W)`` of the input batch.

        Returns:
            ``(total loss scalar, {name: float} parts for logging)``.
        """
        dist, logits, coeffs, protos = outputs
        centres, strides = self.anchors(*input_hw)
        pred_boxes = decode_boxes(dist, centres, strides)
        asg = assign(logits.detach().sigmoid(), pred_boxes.detach(), centres, targets.boxes,
                     targets.classes, targets.valid, self.cfg.assigner)
        tss = asg.target_scores.sum().clamp(min=1.0)
        loss_cls = F.binary_cross_entropy_with_logits(logits, asg.target_scores, reduction="sum") / tss
        fg = asg.fg
        zero = logits.sum() * 0.0
        if not fg.any():
            parts = {"cls": loss_cls.item(), "box": 0.0, "mask": 0.0}
            return self.cfg.cls * loss_cls + zero, parts
        bi, ai = fg.nonzero(as_tuple=True)
        gi = asg.gt_index[bi, ai]
        gt_b = targets.boxes[bi, gi]
        weight = asg.target_scores[bi, ai].sum(-1)
        loss_box = ((1.0 - giou(pred_boxes[bi, ai], gt_b)) * weight).sum() / tss
        bce, dice = self._mask_loss(coeffs, protos, targets, bi, ai, gi)
        total = (self.cfg.cls * loss_cls + self.cfg.box * loss_box
                 + self.cfg.mask_bce * bce + self.cfg.mask_dice * dice)
        return total, {"cls": loss_cls.item(), "box": loss_box.item(), "bce": bce.item(), "dice": dice.item()}

    def _mask_loss(self, coeffs, protos, targets: Targets, bi, ai, gi) -> tuple[torch.Tensor, torch.Tensor]:
        """Mask BCE and dice inside the GT box, averaged over positive anchors."""
        ps = float(self.model_cfg.proto_stride)
        _, k, ph, pw = protos.shape
        ys = (torch.arange(ph, dtype=torch.float32) + 0.5) * ps
        xs = (torch.arange(pw, dtype=torch.float32) + 0.5) * ps
        bce_sum, dice_sum = protos.sum() * 0.0, protos.sum() * 0.0
        for b in bi.unique().tolist():
            sel = bi == b
            logits = (coeffs[b, ai[sel]] @ protos[b].reshape(k, -1)).reshape(-1, ph, pw)
            g = gi[sel]
            tgt = targets.masks[b, g]
            box = targets.boxes[b, g]
            crop = ((xs >= box[:, 0:1]) & (xs <= box[:, 2:3])).unsqueeze(1) & (
                (ys >= box[:, 1:2]) & (ys <= box[:, 3:4])).unsqueeze(2)
            crop = crop.float()
            area = crop.sum((1, 2)).clamp(min=1.0)
            bce = F.binary_cross_entropy_with_logits(logits, tgt, reduction="none")
            bce_sum = bce_sum + ((bce * crop).sum((1, 2)) / area).sum()
            p = logits.sigmoid() * crop
            inter = (p * tgt).sum((1, 2))
            dice = 1.0 - (2.0 * inter + 1.0) / (p.sum((1, 2)) + (tgt * crop).sum((1, 2)) + 1.0)
            dice_sum = dice_sum + dice.sum()
        n = float(bi.numel())
        return bce_sum / n, dice_sum / n
