"""The ``proto`` family: per-anchor boxes, scores and mask coefficients plus a prototype map.

YOLOv5/v8/11-seg, YOLO26-seg, YOLACT and edgeseg-nano. The roles may be
separate tensors or channel ranges of one shared tensor (Ultralytics'
``output0``: rows of ``4`` box values, ``nc`` class scores, ``K``
coefficients). Two optional roles cover the other layouts in the wild:

* ``objectness`` ``(A, 1)``: YOLOv5-seg's object probability; the score of
  a class is ``objectness x class probability``;
* ``labels`` ``(A, 1)``: end-to-end (NMS-free) models emit one detection per
  row: ``xyxy`` box, one score, its class id as a number, coefficients. The
  runtime then runs no NMS (manifest ``thresholds.nms: false``).

Decoding: :mod:`edgeseg.decode.reference` (the contract) and
:mod:`edgeseg.decode.cpath` (bit-exact C).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edgeseg.decode import cpath, reference
from edgeseg.decode.options import BOX_ENCODINGS, SCORE_ACTIVATIONS, DecodeOptions, ProtoOptions
from edgeseg.decode.sampling import SAMPLINGS, ultralytics_protos
from edgeseg.decode.tensors import ProtoTensors, QTensor, map_view, row_view
from edgeseg.families.base import MAP_LAYOUTS, ROW_LAYOUTS, Family, Role, channel_count
from edgeseg.manifest import Manifest, ManifestError
from edgeseg.maskforms import from_cropped
from edgeseg.preprocess import LetterboxInfo
from edgeseg.result import Result


class ProtoFamily(Family):
    name = "proto"
    roles = {
        "boxes": Role(ROW_LAYOUTS, keys={"encoding": ("xyxy", *(e for e in BOX_ENCODINGS if e != "xyxy")),
                                         "normalized": (False, True)}),
        "scores": Role(ROW_LAYOUTS, keys={"activation": ("none", *(a for a in SCORE_ACTIVATIONS if a != "none"))}),
        "coeffs": Role(ROW_LAYOUTS),
        "protos": Role(MAP_LAYOUTS, keys={"sampling": SAMPLINGS}),
        "objectness": Role(ROW_LAYOUTS, required=False),
        "labels": Role(ROW_LAYOUTS, required=False),
    }

    def check(self, manifest: Manifest) -> None:
        super().check(manifest)
        roles = {o.role: o for o in manifest.outputs}
        if "objectness" in roles and "labels" in roles:
            raise ManifestError("manifest: a proto model has 'objectness' (per-anchor) or 'labels' (per-detection rows), not both")
        if "objectness" in roles and (roles["scores"].activation or "none") != "none":
            raise ManifestError("manifest: scores multiplied by 'objectness' must be probabilities (activation 'none')")
        if (roles["boxes"].encoding or "xyxy") == "ltrb" and manifest.anchors is None:
            raise ManifestError("manifest: boxes with encoding 'ltrb' need 'anchors' (strides)")
        if roles["boxes"].encoding == "ltrb" and roles["boxes"].normalized:
            raise ManifestError("manifest: 'normalized' applies to xyxy/cxcywh boxes, not ltrb")
        expected = {"boxes": 4, "objectness": 1, "labels": 1,
                    "scores": 1 if "labels" in roles else len(manifest.classes)}
        for role, n in expected.items():
            if role in roles and channel_count(roles[role]) not in (None, n):
                raise ManifestError(
                    f"manifest output {roles[role].name!r} (role {role}) spans {channel_count(roles[role])} "
                    f"channels {list(roles[role].channels)}, expected {n}"
                )

    def check_output_shapes(self, manifest: Manifest, shapes) -> None:
        """Builds the canonical views of zero-size-in-memory arrays of these shapes (every shape check of a frame)."""
        raw = {name: np.broadcast_to(np.zeros((), np.float32), tuple(shape)) for name, shape in shapes.items()}
        anchor_count = ProtoDecoder(manifest, "numpy").anchor_count
        proto_tensors(raw, manifest, anchor_count)

    def comparable_outputs(self, raw: dict[str, np.ndarray], manifest: Manifest) -> dict[str, np.ndarray]:
        t = proto_tensors(raw, manifest, None)
        roles = ("boxes", "scores", "coeffs", "protos", "objectness", "labels")
        return {role: getattr(t, role).dequantize() for role in roles if getattr(t, role) is not None}

    def options(self, manifest: Manifest) -> ProtoOptions:
        boxes, inp = manifest.output("boxes"), manifest.input
        return ProtoOptions(
            **DecodeOptions.thresholds(manifest.thresholds),
            box_encoding=boxes.encoding or "xyxy",
            score_activation=manifest.output("scores").activation or "none",
            box_scale=(float(inp.width), float(inp.height)) if boxes.normalized else (1.0, 1.0),
            mask_sampling=manifest.output("protos").sampling or "exact",
        )

    def decoder(self, manifest: Manifest, path: str) -> ProtoDecoder:
        return ProtoDecoder(manifest, path)


class ProtoDecoder:
    """Per-bundle ``proto`` decoder: anchor grid built once, C or numpy decode per frame.

    Args:
        manifest: The bundle's manifest (roles, anchors, classes).
        path: ``"c"`` or ``"numpy"``.
    """

    def __init__(self, manifest: Manifest, path: str) -> None:
        self.manifest = manifest
        self.path = path
        self._decode = cpath.decode_proto if path == "c" else reference.decode_proto
        self.grid = None
        boxes = manifest.output("boxes")
        if boxes.encoding == "ltrb":
            inp, anchors = manifest.input, manifest.anchors
            self.grid = reference.anchor_grid((inp.height, inp.width), anchors.strides, anchors.offset)

    @property
    def anchor_count(self) -> int | None:
        """Anchors the grid implies (``ltrb`` models), else ``None``."""
        return None if self.grid is None else int(self.grid[0].shape[0])

    def tensors(self, raw: dict[str, np.ndarray]) -> ProtoTensors:
        """The frame's canonical tensors (views, no copies)."""
        return proto_tensors(raw, self.manifest, self.anchor_count)

    def _prepare(self, raw: dict[str, np.ndarray], letterbox: LetterboxInfo, options: ProtoOptions):
        t, mask_lb = self.tensors(raw), None
        if options.mask_sampling == "ultralytics" and options.with_masks:
            t, mask_lb = ultralytics_protos(t, letterbox)
        return t, {"class_names": self.manifest.classes, "mask_letterbox": mask_lb}

    def __call__(self, raw: dict[str, np.ndarray], letterbox: LetterboxInfo, options: ProtoOptions) -> Result:
        t, kw = self._prepare(raw, letterbox, options)
        return self._decode(t, letterbox, options, self.grid, **kw)

    def decode_as(self, raw: dict[str, np.ndarray], letterbox: LetterboxInfo, options: ProtoOptions, masks: str,
                  out: np.ndarray | None) -> Result:
        """Masks as COCO RLE or full frames into ``out``, written by the C core while rendering (see
        :mod:`edgeseg.maskforms`); the numpy path converts its cropped masks."""
        if self.path != "c" or masks == "cropped":
            return from_cropped(self(raw, letterbox, options), masks, out)
        t, kw = self._prepare(raw, letterbox, options)
        if masks == "rle":
            result, rles = cpath.decode_proto_rle(t, letterbox, options, self.grid, **kw)
            return dataclasses.replace(result, mask_rles=tuple(rles))
        result, frames = cpath.decode_proto_full(t, letterbox, options, self.grid, out, **kw)
        return dataclasses.replace(result, mask_frames=frames)


def proto_tensors(raw: dict[str, np.ndarray], manifest: Manifest, anchor_count: int | None) -> ProtoTensors:
    """Builds canonical :class:`ProtoTensors` from a backend's named outputs.

    Args:
        raw: Output name -> array, as the backend returned them.
        manifest: The bundle manifest (roles, layouts, channel ranges, quantization).
        anchor_count: Expected A (from the anchor grid), or ``None`` to skip.

    Raises:
        ValueError: naming the output and the expected vs. found shape.
    """
    specs = {o.role: o for o in manifest.outputs}
    has_labels = "labels" in specs
    channels = {"boxes": 4, "scores": 1 if has_labels else len(manifest.classes), "objectness": 1, "labels": 1}
    views = {
        role: QTensor(map_view(raw, spec) if role == "protos" else row_view(raw, spec, channels.get(role)), spec.quant)
        for role, spec in specs.items()
    }
    t = ProtoTensors(**views)
    a = t.boxes.data.shape[0]
    rows = {role: v.data.shape for role, v in views.items() if role != "protos"}
    if any(shape[0] != a for shape in rows.values()):
        raise ValueError(f"per-anchor outputs disagree on anchor count: {rows}")
    if anchor_count is not None and a != anchor_count:
        raise ValueError(f"model gave {a} anchors, the manifest's strides and input size imply {anchor_count}")
    if t.coeffs.data.shape[1] != t.protos.data.shape[0]:
        raise ValueError(f"coeffs have {t.coeffs.data.shape[1]} channels but protos have {t.protos.data.shape[0]}")
    return t


FAMILY = ProtoFamily()
