"""Model families as plug-ins: one registry, asked by the manifest, the Decoder, bench, export and import.

======== ===================================================== ==========================================
family   outputs (roles)                                        decoded by
======== ===================================================== ==========================================
proto    boxes, scores, coeffs per anchor + protos; optional    NMS (none when end-to-end), coefficients x
         objectness (YOLOv5-seg) or labels (end-to-end rows)    prototypes inside each box, letterbox undo
roi      boxes, scores, labels per detection + per-ROI mask     paste each ROI's logits into its box
         logits (Mask R-CNN)
query    class logits with a no-object column + mask logits     transformers' scores, survivors' masks
         per query over the whole input (Mask2Former)           upsampled once, box from the mask
prompt   image embeddings (encoder); a second model, the prompt  embeddings cached per frame, decoder batched
         decoder: low-res mask logits + IoU per prompt (SAM)    over prompts, upsampled inside each mask
kernel   cell scores per grid cell and class, a dynamic kernel  candidate cells, kernel x features masks,
         per cell, mask features (SOLOv2)                       maskness, Matrix NMS, survivors' masks
======== ===================================================== ==========================================

A new family subclasses :class:`~edgeseg.families.base.Family` and registers
itself, from any module, without editing this package::

    from edgeseg.families import FAMILIES
    FAMILIES.register("toy", ToyFamily())
"""

from __future__ import annotations

from edgeseg.families.base import Family, Role
from edgeseg.registry import Registry

FAMILIES: Registry[Family] = Registry(
    "model family",
    {
        "proto": "edgeseg.families.proto:FAMILY",
        "roi": "edgeseg.families.roi:FAMILY",
        "query": "edgeseg.families.query:FAMILY",
        "prompt": "edgeseg.families.prompt:FAMILY",
        "kernel": "edgeseg.families.kernel:FAMILY",
    },
)


def get_family(name: str) -> Family:
    """The family plug-in registered as ``name`` (raises naming the known families)."""
    return FAMILIES.get(name)


__all__ = ["FAMILIES", "Family", "Role", "get_family"]
