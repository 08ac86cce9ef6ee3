"""What the exporter must know about a model to describe it in a manifest.

A :class:`ModelSpec` is the model-side half of a manifest: family, input size
and normalization, output names and their roles/encodings, anchor strides,
class names. Each supported model family provides one (``spec_for_nano``);
a user exporting their own model builds one by hand (see README
"Exporting your own model").
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgeseg.manifest import KernelSpec, MatrixNMS, ShortestEdge, Thresholds


@dataclass(frozen=True)
class ModelSpec:
    """Model description for export.

    Attributes:
        name: Model name written into the manifest.
        family: ``"proto"`` (boxes/scores/coeffs/protos) or ``"roi"``.
        imgsz: ``(height, width)`` of the export input.
        class_names: One name per class.
        output_names: Names of the forward's outputs, in the order it returns them.
        output_roles: Role of each output, same order.
        box_encoding: ``ltrb`` (stride units from anchor centres), ``xyxy`` or ``cxcywh``.
        score_activation: ``sigmoid`` if scores are logits, ``none`` if probabilities.
        strides: Anchor strides for ``ltrb`` boxes.
        scale: Pixel scale applied before mean/std (1/255: inputs in [0, 1]).
        mean: Per-channel mean (RGB), after scaling.
        std: Per-channel std (RGB), after scaling.
        thresholds: Default decode thresholds.
        source: Where the weights came from (provenance).
        shortest_edge: torchvision's detection resize instead of the letterbox
            (``imgsz`` is then the largest input; the model pads itself).
        mask_sampling: ``sampling`` of the mask output (``"torchvision"``: its paste).
        kernel: The manifest's ``kernel`` block (grids, area filter, Matrix NMS) of a
            ``kernel``-family (SOLOv2-style) model; ``None`` for other families.
    """

    name: str
    family: str
    imgsz: tuple[int, int]
    class_names: tuple[str, ...]
    output_names: tuple[str, ...] = ("boxes", "scores", "coeffs", "protos")
    output_roles: tuple[str, ...] = ("boxes", "scores", "coeffs", "protos")
    box_encoding: str = "ltrb"
    score_activation: str = "sigmoid"
    strides: tuple[int, ...] = (8, 16, 32)
    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    thresholds: Thresholds = field(default_factory=Thresholds)
    source: str = ""
    shortest_edge: ShortestEdge | None = None
    mask_sampling: str | None = None
    kernel: KernelSpec | None = None


def spec_for_nano(cfg, *, source: str = "") -> ModelSpec:
    """The :class:`ModelSpec` of an edgeseg-nano built from ``cfg`` (a NanoConfig)."""
    return ModelSpec(
        name="edgeseg-nano",
        family="proto",
        imgsz=(cfg.imgsz, cfg.imgsz),
        class_names=tuple(cfg.class_names),
        strides=tuple(cfg.strides),
        source=source,
    )


def spec_for_solo(cfg, *, source: str = "") -> ModelSpec:
    """The :class:`ModelSpec` of a solo-nano built from ``cfg`` (a SoloConfig): family ``kernel``.

    Cell scores leave the graph as probabilities after points NMS (``activation: none``);
    the decode thresholds are SOLOv2's (scores > 0.1, Matrix NMS gaussian sigma 2, 500
    candidates, update threshold 0.05, top 100).
    """
    return ModelSpec(
        name="solo-nano",
        family="kernel",
        imgsz=(cfg.imgsz, cfg.imgsz),
        class_names=tuple(cfg.class_names),
        output_names=("cate", "kernels", "mask_features"),
        output_roles=("cell_scores", "kernels", "mask_features"),
        box_encoding="none",
        score_activation="none",
        strides=(),
        thresholds=Thresholds(score=0.1, score_strict=True, max_detections=100, nms=False),
        source=source,
        kernel=KernelSpec(grids=tuple(cfg.grids), strides=tuple(cfg.min_area), mask_threshold=0.5,
                          matrix_nms=MatrixNMS(kernel="gaussian", sigma=2.0, pre_top_k=500, update_threshold=0.05)),
    )
