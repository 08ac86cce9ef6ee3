"""Training loss of solo-nano: focal loss on the category grids, dice on the dynamic-kernel masks.

As SOLOv2: sigmoid focal loss (torchvision's ``sigmoid_focal_loss``) over
every cell and class, normalized by the number of positive cells plus one;
dice loss (SOLO's form, squares in the denominator) between
``sigmoid(kernel . mask_features)`` of each positive cell and its object's
mask at the mask-feature resolution, averaged over positive cells. Cell
targets come from :func:`export.solo_targets.assign_cells`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.ops import sigmoid_focal_loss

from export.losses import Targets
from export.models.solo_nano import SoloConfig
from export.solo_targets import assign_cells


@dataclass(frozen=True)
class SoloLossConfig:
    """Loss weights (SOLOv2's defaults).

    Attributes:
        cate: Weight of the focal category loss.
        dice: Weight of the mask dice loss.
        alpha: Focal loss alpha.
        gamma: Focal loss gamma.
    """

    cate: float = 1.0
    dice: float = 3.0
    alpha: float = 0.25
    gamma: float = 2.0


def dice_loss(prob: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """SOLO's dice loss per mask: ``1 - 2 sum(p t) / (sum(p^2) + sum(t^2))``.

    Args:
        prob: ``(N, h, w)`` probabilities.
        target: ``(N, h, w)`` targets in [0, 1].

    Returns:
        ``(N,)`` losses.
    """
    p, t = prob.flatten(1), target.flatten(1)
    return 1.0 - 2.0 * (p * t).sum(1) / ((p * p).sum(1) + eps + (t * t).sum(1) + eps)


class SoloLoss:
    """Total loss of one batch (call signature of :class:`export.losses.NanoLoss`).

    Args:
        model_cfg: Model config (grids, assignment settings).
        cfg: Loss weights.
    """

    def __init__(self, model_cfg: SoloConfig, cfg: SoloLossConfig = SoloLossConfig()):
        self.model_cfg, self.cfg = model_cfg, cfg

    def __call__(self, outputs, targets: Targets, input_hw: tuple[int, int]) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss of one batch.

        Args:
            outputs: The model's training outputs ``(cate logits per level, kernels per level, mask features)``.
            targets: Padded ground truth, masks at the mask-feature resolution.
            input_hw: ``(H, W)`` of the input batch (unused; the config fixes the grids).

        Returns:
            ``(total loss scalar, {name: float} parts for logging)``.
        """
        cates, kernels, mask_features = outputs
        logits = torch.cat([c.flatten(2) for c in cates], 2).transpose(1, 2)   # (B, S, C)
        kern = torch.cat([k.flatten(2) for k in kernels], 2).transpose(1, 2)   # (B, S, E)
        cells = assign_cells(targets, self.model_cfg)
        pos = cells.classes >= 0
        onehot = torch.zeros_like(logits)
        bi, si = pos.nonzero(as_tuple=True)
        onehot[bi, si, cells.classes[bi, si]] = 1.0
        n_pos = float(bi.numel())
        loss_cate = sigmoid_focal_loss(logits, onehot, self.cfg.alpha, self.cfg.gamma, reduction="sum") / (n_pos + 1.0)
        if not n_pos:
            zero = kern.sum() * 0.0 + mask_features.sum() * 0.0
            return self.cfg.cate * loss_cate + zero, {"cate": loss_cate.item(), "dice": 0.0, "pos": 0.0}
        e, h, w = mask_features.shape[1:]
        gi = cells.gt_index[bi, si]
        dice_sum = mask_features.sum() * 0.0
        for b in bi.unique().tolist():
            sel = bi == b
            prob = torch.sigmoid(kern[b, si[sel]] @ mask_features[b].reshape(e, -1)).reshape(-1, h, w)
            dice_sum = dice_sum + dice_loss(prob, targets.masks[b, gi[sel]]).sum()
        loss_dice = dice_sum / n_pos
        total = self.cfg.cate * loss_cate + self.cfg.dice * loss_dice
        return total, {"cate": loss_cate.item(), "dice": loss_dice.item(), "pos": n_pos / len(cates[0])}
