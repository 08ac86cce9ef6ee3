"""The ``kernel`` family: SOLOv2-style models (category grids, dynamic kernels, mask features, Matrix NMS).

Outputs (batch 1), by role:

* ``cell_scores`` ``(1, S, C)`` (row layout ``BAC`` or ``BCA``): per grid cell
  and class, probabilities after SOLO's points NMS (``activation: none``, the
  default) or raw logits (``activation: sigmoid``: the decoder applies the
  sigmoid and the points NMS). ``S = sum g_l^2`` over the manifest's
  ``kernel.grids``, the cells of each level row-major, levels in order.
* ``kernels`` ``(1, S, E)`` (``BAC`` or ``BCA``): each cell's dynamic 1x1
  kernel over the ``E`` mask-feature channels.
* ``mask_features`` ``(1, E, Hm, Wm)`` (``NCHW`` or ``NHWC``) over the whole
  model input (``Hm = H_in / mask_stride``).

Manifest block ``kernel`` (:class:`~edgeseg.manifest.KernelSpec`): ``grids``,
``strides`` (per level, the mask area in mask cells a candidate must exceed),
``mask_threshold``, ``matrix_nms`` (``kernel``, ``sigma``, ``pre_top_k``,
``update_threshold``). ``thresholds.score`` is the cell-score threshold,
``thresholds.max_detections`` the final top-k, ``thresholds.nms`` must be
``false`` (Matrix NMS is the family's own suppression).

Decode: candidates (:mod:`edgeseg.decode.kernel_candidates`), masks, maskness
and Matrix NMS (numpy reference :mod:`edgeseg.decode.reference_kernel`, C
:mod:`edgeseg.decode.ckernel`, bit-exact), then the survivors' logits through
the mask-first path (:mod:`edgeseg.decode.maskfirst`): a box is its mask's
box, so masks are rendered even when a caller asks for none
(``with_masks=False`` only leaves them out of the result).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edgeseg.decode import ckernel, kernel_candidates, maskfirst, reference_kernel
from edgeseg.decode.matrix_nms import KERNELS
from edgeseg.decode.options import SCORE_ACTIVATIONS, DecodeOptions
from edgeseg.decode.tensors import QTensor, map_view, row_view
from edgeseg.families.base import MAP_LAYOUTS, ROW_LAYOUTS, Family, Role
from edgeseg.manifest import KernelSpec, Manifest, ManifestError, MatrixNMS
from edgeseg.preprocess import LetterboxInfo
from edgeseg.result import Result


@dataclasses.dataclass(frozen=True)
class KernelOptions(DecodeOptions):
    """``kernel`` options: the shared thresholds (``pre_nms_topk`` = Matrix NMS's ``pre_top_k``) plus SOLOv2's.

    Attributes:
        score_activation: ``none`` (probabilities after points NMS) or ``sigmoid`` (raw logits).
        mask_threshold: A mask cell is inside when its probability is ``> mask_threshold``.
        nms_kernel: Matrix NMS decay, ``gaussian`` or ``linear``.
        sigma: Gaussian decay width.
        update_threshold: Keep instances whose decayed score is ``>=`` this.
    """

    score_activation: str = "none"
    mask_threshold: float = KernelSpec.mask_threshold
    nms_kernel: str = MatrixNMS.kernel
    sigma: float = MatrixNMS.sigma
    update_threshold: float = MatrixNMS.update_threshold

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.score_activation not in SCORE_ACTIVATIONS:
            raise ValueError(f"score_activation must be one of {SCORE_ACTIVATIONS}, got {self.score_activation!r}")
        if self.nms_kernel not in KERNELS:
            raise ValueError(f"nms_kernel must be one of {KERNELS}, got {self.nms_kernel!r}")
        if not 0.0 < self.mask_threshold < 1.0:
            raise ValueError(f"mask_threshold must be in (0, 1), got {self.mask_threshold}")
        if not 0.0 < self.sigma <= 1000.0 or not 0.0 <= self.update_threshold <= 1.0:
            raise ValueError(f"sigma must be in (0, 1000] and update_threshold in [0, 1], got {self.sigma}, "
                             f"{self.update_threshold}")


class KernelFamily(Family):
    name = "kernel"
    roles = {
        "cell_scores": Role(ROW_LAYOUTS, keys={"activation": ("none", "sigmoid")}),
        "kernels": Role(ROW_LAYOUTS),
        "mask_features": Role(MAP_LAYOUTS),
    }
    blocks = ("kernel",)

    def check(self, manifest: Manifest) -> None:
        super().check(manifest)
        if manifest.kernel is None:
            raise ManifestError("manifest: family 'kernel' needs the 'kernel' block (grids, strides, matrix_nms)")
        if manifest.thresholds.nms:
            raise ManifestError("manifest: a kernel model is suppressed by Matrix NMS (manifest 'kernel.matrix_nms'): "
                                "thresholds.nms must be false")

    def check_output_shapes(self, manifest: Manifest, shapes) -> None:
        raw = {name: np.broadcast_to(np.zeros((), np.float32), tuple(shape)) for name, shape in shapes.items()}
        kernel_tensors(raw, manifest)

    def comparable_outputs(self, raw: dict[str, np.ndarray], manifest: Manifest) -> dict[str, np.ndarray]:
        scores, kernels, features = kernel_tensors(raw, manifest)
        return {"cell_scores": scores.dequantize(), "kernels": kernels.dequantize(), "mask_features": features.dequantize()}

    def options(self, manifest: Manifest) -> KernelOptions:
        spec = manifest.kernel
        nms = spec.matrix_nms
        th = dataclasses.replace(manifest.thresholds, pre_nms_topk=nms.pre_top_k)
        return KernelOptions(**DecodeOptions.thresholds(th), score_activation=manifest.output("cell_scores").activation
                             or "none", mask_threshold=spec.mask_threshold, nms_kernel=nms.kernel, sigma=nms.sigma,
                             update_threshold=nms.update_threshold)

    def decoder(self, manifest: Manifest, path: str) -> KernelDecoder:
        return KernelDecoder(manifest, path)


def kernel_tensors(raw: dict[str, np.ndarray], manifest: Manifest) -> tuple[QTensor, QTensor, QTensor]:
    """``(cell scores (S, C), kernels (S, E), mask features (E, Hm, Wm))`` views of a backend's outputs.

    Raises:
        ValueError: naming the output and the expected vs. found shape.
    """
    s_spec, k_spec, f_spec = (manifest.output(r) for r in ("cell_scores", "kernels", "mask_features"))
    scores = QTensor(row_view(raw, s_spec, len(manifest.classes)), s_spec.quant)
    kernels = QTensor(row_view(raw, k_spec), k_spec.quant)
    features = QTensor(map_view(raw, f_spec), f_spec.quant)
    cells = int(kernel_candidates.level_bounds(manifest.kernel.grids)[-1])
    if scores.data.shape[0] != cells or kernels.data.shape[0] != cells:
        raise ValueError(f"kernel grids {list(manifest.kernel.grids)} have {cells} cells, but cell scores have "
                         f"{scores.data.shape[0]} rows and kernels {kernels.data.shape[0]} (shapes "
                         f"{scores.data.shape}, {kernels.data.shape})")
    if kernels.data.shape[1] != features.data.shape[0]:
        raise ValueError(f"kernels have {kernels.data.shape[1]} channels but mask features have "
                         f"{features.data.shape[0]} (shape {features.data.shape})")
    return scores, kernels, features


#: Steps 2-3 (masks, maskness, Matrix NMS) per decoding path; both give the same bits.
SURVIVORS = {"numpy": reference_kernel.decode_kernel, "c": ckernel.decode_kernel}


class KernelDecoder:
    """Per-bundle ``kernel`` decoder.

    Args:
        manifest: The bundle's manifest.
        path: ``"c"`` or ``"numpy"``.
    """

    def __init__(self, manifest: Manifest, path: str) -> None:
        self.manifest = manifest
        self.path = path

    def __call__(self, raw: dict[str, np.ndarray], letterbox: LetterboxInfo, options: KernelOptions) -> Result:
        scores, kernels, features = kernel_tensors(raw, self.manifest)
        spec = self.manifest.kernel
        cand, nonfinite = kernel_candidates.select(
            scores.dequantize(), spec.grids, spec.strides, activation=options.score_activation,
            threshold=options.score_threshold, strict=options.score_strict, pre_top_k=options.pre_nms_topk)
        index, score, logits = SURVIVORS[self.path](
            cand, kernels, features, mask_threshold=options.mask_threshold, nms_kernel=options.nms_kernel,
            sigma=options.sigma, update_threshold=options.update_threshold, max_detections=options.max_detections,
            class_agnostic=options.class_agnostic)
        if options.min_score is not None:  # before any mask is rendered (the Decoder's floor then finds nothing to drop)
            keep = score >= np.float32(options.min_score)
            index, score, logits = index[keep], score[keep], logits[keep]
        t = reference_kernel.logit_threshold(options.mask_threshold)
        if t != 0:
            logits = logits - t
        boxes, masks = maskfirst.decode_masks(QTensor(logits), letterbox, self.path)
        return Result(
            boxes=boxes, scores=score, class_ids=cand.cls[index], masks=masks if options.with_masks else (),
            class_names=self.manifest.classes, image_size=letterbox.orig_size, nonfinite=nonfinite,
        )


FAMILY = KernelFamily()
