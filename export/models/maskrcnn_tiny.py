"""A small torchvision Mask R-CNN: MobileNetV3-Small backbone, narrow FPN and heads.

The reference ``roi`` model of edgeseg (``python -m export.train_maskrcnn``)
and the model behind the committed Mask R-CNN fixtures. It is a plain
``torchvision.models.detection.MaskRCNN``; only the widths are smaller than
torchvision's builders (FPN 48 channels instead of 256, box head 128 wide,
mask head 2 convolutions) so its ONNX export is about 6 MB. Random init: no
pretrained weights can be downloaded here.

Used as ``edgeseg export export.models.maskrcnn_tiny:build --weights W``.
"""

from __future__ import annotations

from torchvision.models import mobilenet_v3_small
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops import MultiScaleRoIAlign

#: Background + the six synthetic classes (export.data.shapes.CLASS_NAMES).
NUM_CLASSES = 7
#: Side the model's transform resizes to (min_size = max_size).
IMAGE_SIZE = 320


def build(num_classes: int = NUM_CLASSES, channels: int = 48, image_size: int = IMAGE_SIZE,
          score_thresh: float = 0.001) -> MaskRCNN:
    """The model, randomly initialised, in train mode.

    Args:
        num_classes: Classes including background (torchvision's convention).
        channels: FPN and mask-head width.
        image_size: ``min_size`` and ``max_size`` of the model's transform.
        score_thresh: ``box_score_thresh``: 0.001, the COCO evaluation threshold of the
            project (torchvision's default is 0.05).
    """
    feats = mobilenet_v3_small(weights=None).features
    stages = [i for i, b in enumerate(feats) if getattr(b, "_is_cn", False)] + [len(feats) - 1]
    picked = stages[-3:]  # strides 8, 16, 32
    backbone = BackboneWithFPN(
        feats, {str(i): str(k) for k, i in enumerate(picked)}, [feats[i].out_channels for i in picked], channels
    )
    levels = ["0", "1", "2"]
    return MaskRCNN(
        backbone,
        num_classes=None,
        min_size=image_size,
        max_size=image_size,
        rpn_anchor_generator=AnchorGenerator(((16,), (32,), (64,), (128,)), ((0.5, 1.0, 2.0),) * 4),
        box_roi_pool=MultiScaleRoIAlign(levels, 7, 2),
        mask_roi_pool=MultiScaleRoIAlign(levels, 14, 2),
        box_head=TwoMLPHead(channels * 49, 128),
        box_predictor=FastRCNNPredictor(128, num_classes),
        mask_head=MaskRCNNHeads(channels, (channels, channels), 1),
        mask_predictor=MaskRCNNPredictor(channels, channels, num_classes),
        box_score_thresh=score_thresh,
    )

