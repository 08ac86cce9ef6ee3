"""The ``kernel`` family's steps 2-3 in C (``es_kernel.c``, ``es_matrix_nms.c``): same results as the reference.

:func:`decode_kernel` has :func:`edgeseg.decode.reference_kernel.decode_kernel`'s
contract and returns the same bits (tests/test_cdecode_kernel.py): candidate
masks from the dynamic kernels, area filter, maskness, Matrix NMS and the
survivors' logit maps, with the GIL released. The C core reads float32 or
int8/uint8 tensors in place (any strides: ``BCA`` rows, ``NHWC`` maps) and
dequantizes as :class:`~edgeseg.decode.tensors.QTensor` does.
"""

from __future__ import annotations

import numpy as np

from edgeseg.decode import cpath
from edgeseg.decode.kernel_candidates import Candidates
from edgeseg.decode.matrix_nms import KERNELS  # index = ES_NMS_GAUSSIAN, ES_NMS_LINEAR
from edgeseg.decode.reference_kernel import logit_threshold
from edgeseg.decode.tensors import QTensor

#: Largest store of every candidate's logits (bytes) kept for the survivors; beyond, theirs are computed again.
KEEP_LOGITS_BYTES = 64 << 20


def decode_kernel(cand: Candidates, kernels: QTensor, features: QTensor, *, mask_threshold: float, nms_kernel: str,
                  sigma: float, update_threshold: float, max_detections: int, class_agnostic: bool = False,
                  keep_logits: bool | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """C version of :func:`edgeseg.decode.reference_kernel.decode_kernel` (same arguments, same results).

    Args:
        keep_logits: Keep every candidate's logit map for the survivors instead of computing theirs again
            (``None``: when they fit in :data:`KEEP_LOGITS_BYTES`); the same bits either way.
    """
    cpath._require()
    if keep_logits is None:
        keep_logits = len(cand) * int(np.prod(features.data.shape[1:])) * 4 <= KEEP_LOGITS_BYTES
    if nms_kernel not in KERNELS:
        raise ValueError(f"Matrix NMS kernel must be one of {KERNELS}, got {nms_kernel!r}")
    index, score, logits, n = cpath._cdecode.kernel_decode(
        *cpath._c_tensor(kernels), *cpath._c_tensor(features), cand.cell, cand.cls, cand.score, cand.min_area,
        float(logit_threshold(mask_threshold)), KERNELS.index(nms_kernel), float(sigma), float(update_threshold),
        int(max_detections), bool(class_agnostic), bool(keep_logits))
    return index[:n], score[:n], logits[:n]


def pack_masks(binary: np.ndarray) -> np.ndarray:
    """``(n, P)`` bool masks as ``(n, ceil(P / 64))`` uint64 bit rows (cell ``q`` at bit ``q % 64`` of word ``q // 64``)."""
    n, p = binary.shape
    words = (p + 63) // 64
    packed = np.zeros((n, words * 8), np.uint8)
    packed[:, : (p + 7) // 8] = np.packbits(binary, axis=1, bitorder="little")
    return packed.view("<u8").astype(np.uint64)


def matrix_nms(binary: np.ndarray, area: np.ndarray, labels: np.ndarray, scores: np.ndarray, *, kernel: str = "gaussian",
               sigma: float = 2.0, update_threshold: float = 0.0, max_keep: int | None = None,
               ) -> tuple[np.ndarray, np.ndarray]:
    """C version of :func:`edgeseg.decode.matrix_nms.matrix_nms` (same arguments, same results)."""
    cpath._require()
    if kernel not in KERNELS:
        raise ValueError(f"Matrix NMS kernel must be one of {KERNELS}, got {kernel!r}")
    n = binary.shape[0]
    index, decayed, kept = cpath._cdecode.matrix_nms(
        pack_masks(binary), area, labels, scores, KERNELS.index(kernel), float(sigma), float(update_threshold),
        n if max_keep is None else int(max_keep))
    return index[:kept], decayed[:kept]
