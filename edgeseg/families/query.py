"""The ``query`` family: per-query class logits and per-query mask logits over the whole input.

Two ways of scoring the queries, by the ``activation`` of the ``class_logits``
output (:data:`SCORINGS`, a registry):

* ``softmax`` (the default): Mask2Former as Hugging Face transformers builds it
  (``Mask2FormerForUniversalSegmentation``): ``class_queries_logits`` ``(1, Q,
  C + 1)`` (role ``class_logits``, layout ``BAC``; the last column is "no
  object") and ``masks_queries_logits`` ``(1, Q, Hm, Wm)`` (role
  ``mask_logits``, ``NCHW`` with one channel per query) over the whole model
  input, usually at a quarter of its resolution. There is no box: each
  instance's box comes from its mask.

  Decode: candidates and scores as transformers' ``post_process_instance_segmentation``
  (:mod:`edgeseg.decode.queries`), then the survivors' masks: ``exact``
  (default) through the mask-first path (:mod:`edgeseg.decode.maskfirst`: numpy
  reference and C, bit-exact), rendered once at the original resolution from
  the logits with the resize undone; or ``transformers`` (what an import from
  transformers sets): the library's own masks, thresholded on its 384 x 384
  score grid and resized with nearest (numpy, indexing only each mask's region).
  No NMS (the queries do not overlap by construction: the manifest says
  ``nms: false``). A box is its mask's box, so masks are rendered even when a
  caller asks for none (``with_masks=False`` only leaves them out of the result).

* ``sigmoid``: RF-DETR-Seg as rfdetr exports it: ``labels`` ``(1, Q, C)``
  class logits scored by a sigmoid (no no-object column), ``masks`` ``(1, Q,
  Hm, Wm)``, and an optional ``boxes`` output (``dets`` ``(1, Q, 4)``,
  ``cxcywh`` fractions of the input: encoding ``cxcywh``, normalized). Scores
  as rfdetr's ``PostProcess`` (:mod:`edgeseg.decode.detr_queries`): the top
  ``Q`` (query, class) pairs by sigmoid, kept above the threshold; masks
  ``exact`` (rfdetr itself resizes the logits bilinearly to the image and
  thresholds at 0); each box is the model's box when a ``boxes`` output is
  there, else its mask's box.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from edgeseg.decode import detr_queries, maskfirst, queries
from edgeseg.decode.options import DecodeOptions
from edgeseg.decode.reference_maskfirst import tighten_all
from edgeseg.decode.tensors import QTensor, map_view, row_view
from edgeseg.families.base import ROW_LAYOUTS, Family, Role
from edgeseg.manifest import Manifest, ManifestError
from edgeseg.preprocess import LetterboxInfo
from edgeseg.result import Result

#: How survivors' masks are made (``QueryOptions.mask_sampling``, manifest ``sampling`` of ``mask_logits``).
MASK_SAMPLINGS = ("exact", "transformers")


@dataclasses.dataclass(frozen=True)
class QueryOptions(DecodeOptions):
    """``query`` options: the shared thresholds plus where mask scores are measured.

    Attributes:
        score_grid: ``(H, W)`` grid the mask logits are upsampled to for the
            mask score (transformers: 384 x 384 for every model).
        mask_sampling: ``exact`` (bilinear from the logits to the original
            pixels, the mask-first path) or ``transformers`` (the library's
            masks: ``> 0`` on the score grid, then nearest to the image).
    """

    score_grid: tuple[int, int] = queries.SCORE_GRID
    mask_sampling: str = "exact"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mask_sampling not in MASK_SAMPLINGS:
            raise ValueError(f"mask_sampling must be one of {MASK_SAMPLINGS}, got {self.mask_sampling!r}")
        if len(self.score_grid) != 2 or not all(isinstance(v, int) and 1 <= v <= 4096 for v in self.score_grid):
            raise ValueError(f"score_grid must be (H, W) ints in [1, 4096], got {self.score_grid!r}")


#: ``(query (n,) int64, class (n,) int32, score (n,) float32)`` of the pairs that may pass the threshold.
Pairs = tuple[np.ndarray, np.ndarray, np.ndarray]


def _softmax_pairs(logits: np.ndarray, maps: QTensor, options: QueryOptions) -> Pairs:
    """transformers' scores: softmax without "no object", top ``Q`` pairs, x mean sigmoid inside the mask."""
    probs = queries.class_probabilities(logits)
    query, cls, prob = queries.top_pairs(probs, logits.shape[0], options.score_threshold, strict=options.score_strict)
    unique, where = np.unique(query, return_inverse=True)
    return query, cls, (prob * queries.mask_scores(maps.rows(unique), options.score_grid)[where]).astype(np.float32)


def _sigmoid_pairs(logits: np.ndarray, maps: QTensor, options: QueryOptions) -> Pairs:
    """rfdetr's scores: sigmoid of every column, top ``Q`` pairs (``num_select`` of its Seg models)."""
    return queries.top_pairs(detr_queries.sigmoid_scores(logits), logits.shape[0], options.score_threshold,
                             strict=options.score_strict)


@dataclasses.dataclass(frozen=True)
class Scoring:
    """How one library scores (query, class) pairs.

    Attributes:
        extra_columns: Class-logit columns beyond the classes (Mask2Former's "no object": 1).
        pairs: ``(class logits (Q, C + extra) float32, mask logits, options) -> Pairs``.
    """

    extra_columns: int
    pairs: Callable[[np.ndarray, QTensor, QueryOptions], Pairs]


#: Scoring per ``activation`` of the ``class_logits`` output (``None``: ``softmax``).
SCORINGS = {"softmax": Scoring(1, _softmax_pairs), "sigmoid": Scoring(0, _sigmoid_pairs)}


def scoring(manifest: Manifest) -> Scoring:
    return SCORINGS[manifest.output("class_logits").activation or "softmax"]


class QueryFamily(Family):
    name = "query"
    roles = {
        "class_logits": Role(ROW_LAYOUTS, keys={"activation": tuple(SCORINGS)}),
        "mask_logits": Role(("NCHW",), keys={"sampling": MASK_SAMPLINGS}),
        "boxes": Role(ROW_LAYOUTS, required=False, keys={"encoding": ("cxcywh",), "normalized": (True,)}),
    }

    def check(self, manifest: Manifest) -> None:
        super().check(manifest)
        if manifest.thresholds.nms:
            raise ManifestError("manifest: a query model's instances are not suppressed: thresholds.nms must be false")

    def check_output_shapes(self, manifest: Manifest, shapes) -> None:
        raw = {name: np.broadcast_to(np.zeros((), np.float32), tuple(shape)) for name, shape in shapes.items()}
        logits, _ = query_tensors(raw, manifest)
        boxes = box_rows(raw, manifest)
        if boxes is not None and boxes.data.shape[0] != logits.data.shape[0]:
            raise ValueError(f"class logits have {logits.data.shape[0]} queries but boxes have {boxes.data.shape[0]}")

    def options(self, manifest: Manifest) -> QueryOptions:
        return QueryOptions(**DecodeOptions.thresholds(manifest.thresholds),
                            mask_sampling=manifest.output("mask_logits").sampling or "exact")

    def decoder(self, manifest: Manifest, path: str) -> QueryDecoder:
        return QueryDecoder(manifest, path)


def query_tensors(raw: dict[str, np.ndarray], manifest: Manifest) -> tuple[QTensor, QTensor]:
    """``(class logits (Q, C + extra), mask logits (Q, Hm, Wm))`` views of a backend's outputs.

    ``extra`` is the scoring's :attr:`Scoring.extra_columns` (1 for Mask2Former's no-object column).

    Raises:
        ValueError: naming the output and the expected vs. found shape.
    """
    cls_spec, mask_spec = manifest.output("class_logits"), manifest.output("mask_logits")
    logits = QTensor(row_view(raw, cls_spec, len(manifest.classes) + scoring(manifest).extra_columns), cls_spec.quant)
    maps = QTensor(map_view(raw, mask_spec), mask_spec.quant)
    if logits.data.shape[0] != maps.data.shape[0]:
        raise ValueError(f"class logits have {logits.data.shape[0]} queries but mask logits have {maps.data.shape[0]} "
                         f"(shapes {logits.data.shape} and {maps.data.shape})")
    return logits, maps


def box_rows(raw: dict[str, np.ndarray], manifest: Manifest) -> QTensor | None:
    """``(Q, 4)`` view of the ``boxes`` output (normalized ``cxcywh``), or ``None`` without one.

    Raises:
        ValueError: the output is not ``(Q, 4)``.
    """
    spec = next((o for o in manifest.outputs if o.role == "boxes"), None)
    return None if spec is None else QTensor(row_view(raw, spec, 4), spec.quant)


def query_boxes(raw: dict[str, np.ndarray], manifest: Manifest, rows: np.ndarray,
                letterbox: LetterboxInfo) -> np.ndarray | None:
    """The model's own boxes of queries ``rows`` in original pixels (``(n, 4)`` float32 XYXY, clipped to the
    image), or ``None`` without a ``boxes`` output."""
    boxes = box_rows(raw, manifest)
    if boxes is None:
        return None
    h, w = letterbox.input_size
    xyxy = detr_queries.boxes_xyxy(boxes.dequantize()[rows]) * np.array([w, h, w, h], np.float32)
    return letterbox.boxes_to_original(xyxy)


class QueryDecoder:
    """Per-bundle ``query`` decoder.

    Args:
        manifest: The bundle's manifest.
        path: ``"c"`` or ``"numpy"`` (the mask rendering).
    """

    def __init__(self, manifest: Manifest, path: str) -> None:
        self.manifest = manifest
        self.path = path

    def __call__(self, raw: dict[str, np.ndarray], letterbox: LetterboxInfo, options: QueryOptions) -> Result:
        cls_q, maps = query_tensors(raw, self.manifest)
        logits = cls_q.dequantize()
        nonfinite = int((~np.isfinite(logits)).any(axis=1).sum())
        query, cls, score = scoring(self.manifest).pairs(logits, maps, options)
        thr = np.float32(options.score_threshold)
        kept = np.flatnonzero(score > thr if options.score_strict else score >= thr)
        kept = kept[np.argsort(-score[kept], kind="stable")][: options.max_detections]
        if options.min_score is not None:  # before any mask is made (the Decoder's floor then finds nothing to drop)
            kept = kept[score[kept] >= np.float32(options.min_score)]
        survivors = QTensor(maps.rows(query[kept]))
        if options.mask_sampling == "transformers":
            boxes, masks = tighten_all(queries.library_masks(survivors.data, letterbox.orig_size, options.score_grid))
        else:
            boxes, masks = maskfirst.decode_masks(survivors, letterbox, self.path)
        own = query_boxes(raw, self.manifest, query[kept], letterbox)
        boxes = boxes if own is None else own
        return Result(
            boxes=boxes, scores=score[kept], class_ids=cls[kept], masks=masks if options.with_masks else (),
            class_names=self.manifest.classes, image_size=letterbox.orig_size, nonfinite=nonfinite,
        )


FAMILY = QueryFamily()
