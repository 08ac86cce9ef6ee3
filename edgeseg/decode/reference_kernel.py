"""Numpy reference of the ``kernel`` family decode (SOLOv2-style dynamic kernels): the contract the C path meets.

Inputs per frame: the candidates of step 1 (:mod:`edgeseg.decode.kernel_candidates`),
``kernels`` ``(S, E)`` (each cell's dynamic 1x1 kernel over the ``E`` mask
feature channels) and ``mask_features`` ``(E, Hm, Wm)``, float32 or
dequantized int8/uint8 (``(q - zero_point) * scale`` in float32, as
:class:`~edgeseg.decode.tensors.QTensor`). ``P = Hm * Wm`` cells, row-major.

2. **Masks and maskness**, per candidate ``n`` (cell ``s``, score ``p``):

   * logits ``L[q] = sum_e K[s, e] * F[e, q]``, float32, ``e`` ascending from
     ``0.0f``, each product rounded before its addition (no fused
     multiply-add: the C core is compiled with ``-ffp-contract=off``);
   * the mask: cells with ``L > t``, ``t = float32(log(m / (1 - m)))`` for the
     manifest's ``mask_threshold`` ``m`` (``sigmoid(L) > m`` decided on the
     logit, so no exponential decides a pixel; ``t = 0`` for ``m = 0.5``;
     NaN is never inside);
   * ``area`` = its cell count; the candidate is dropped when ``area <=`` its
     level's stride;
   * ``maskness = (sum of sigmoid(L) over the mask's cells) / area``: the
     sigmoid in float64 from :func:`exp64` (below), summed one cell after the
     other in row-major order in float64 (``np.cumsum``, sequential by
     definition, not ``np.sum``'s pairwise order; the C core runs the same loop);
   * ``score = float32(float64(p) * maskness)``.

3. **Matrix NMS** (:mod:`edgeseg.decode.matrix_nms`) on the kept candidates.

4. The survivors' logit maps, shifted by ``-t``, go through the mask-first
   path (:mod:`edgeseg.decode.maskfirst`): rendered at the original
   resolution with the letterbox undone, ``> 0``, box from the mask. (mmdet
   upsamples the sigmoid twice and thresholds it; rendering logits once is the
   runtime's mask-first convention, as for the ``query`` family.)

**Why a hand-written exponential.** ``np.exp`` (SIMD code of numpy's own) and
the C library's ``exp`` may differ in the last bit, and the maskness sums
thousands of sigmoids. :func:`exp64` uses only ``+ - * floor ldexp`` in
float64 (fdlibm's two-part ``ln 2`` range reduction, then a degree-13 Taylor
polynomial in Horner form, about 1e-16 relative error), each of which IEEE
754 rounds exactly one way; numpy evaluates it as separate ufuncs and
``es_kernel.c`` as separate C operations with contraction off, so both get
the same bits by construction. The argument is clamped to ``[-100, 100]``:
beyond, ``1 + exp(x)`` is 1 in float64 (or the sigmoid is below 4e-44, far
below any mask threshold the manifest accepts).
"""

from __future__ import annotations

import math

import numpy as np

from edgeseg.decode.kernel_candidates import Candidates
from edgeseg.decode.matrix_nms import matrix_nms
from edgeseg.decode.tensors import QTensor

#: fdlibm's split of ln 2 (high part has trailing zero bits, so ``n * LN2_HI`` is exact for ``|n| < 2^20``).
LN2_HI = 6.93147180369123816490e-01
LN2_LO = 1.90821492927058770002e-10
INV_LN2 = 1.44269504088896338700e00
#: Taylor coefficients ``1 / k!``, highest degree first (Horner order), as C's ``ES_EXP_POLY``.
EXP_POLY = tuple(1.0 / math.factorial(k) for k in range(13, -1, -1))
#: :func:`exp64`'s argument range.
EXP_CLAMP = 100.0
#: Candidates whose logit maps are held at once (bounds the reference's memory).
BLOCK = 64


def exp64(x: np.ndarray) -> np.ndarray:
    """``exp(x)`` of float64 values, bit-identical to ``es_exp64`` in ``es_kernel.c`` (see the module docstring)."""
    x = np.clip(np.asarray(x, np.float64), -EXP_CLAMP, EXP_CLAMP)
    n = np.floor(x * INV_LN2 + 0.5)
    r = (x - n * LN2_HI) - n * LN2_LO
    p = np.full_like(r, EXP_POLY[0])
    for c in EXP_POLY[1:]:
        p = p * r + c
    return np.ldexp(p, n.astype(np.int32))


def sigmoid64(logits: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp64(-L))`` in float64 of float32 logits."""
    return 1.0 / (1.0 + exp64(-np.asarray(logits, np.float64)))


def logit_threshold(mask_threshold: float) -> np.float32:
    """The float32 logit ``t`` with ``L > t`` meaning ``sigmoid(L) > mask_threshold`` (0 for 0.5)."""
    if not 0.0 < mask_threshold < 1.0:
        raise ValueError(f"mask_threshold must be in (0, 1), got {mask_threshold}")
    return np.float32(math.log(mask_threshold / (1.0 - mask_threshold)))


def kernel_logits(kernels: np.ndarray, features: np.ndarray) -> np.ndarray:
    """``(n, P)`` float32 logits ``K @ F`` summed over ``e`` ascending, one rounding per product and per sum.

    Args:
        kernels: ``(n, E)`` float32 kernels of the candidates.
        features: ``(E, P)`` float32 mask features.
    """
    out = np.zeros((kernels.shape[0], features.shape[1]), np.float32)
    product = np.empty_like(out)
    with np.errstate(over="ignore", invalid="ignore"):  # a model's Inf/NaN stays in the logits, as in C
        for e in range(kernels.shape[1]):
            np.multiply(kernels[:, e, None], features[e][None, :], out=product)
            out += product
    return out


def masks_and_maskness(logits: np.ndarray, t: np.float32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step 2 on ``(n, P)`` float32 logits: ``(binary (n, P) bool, area (n,) int64, maskness (n,) float64)``.

    ``maskness`` is 0 where the area is 0.
    """
    with np.errstate(invalid="ignore"):
        binary = logits > t
    area = binary.sum(axis=1, dtype=np.int64)
    probs = sigmoid64(logits[binary])  # the mask cells only, row after row, each row in row-major order
    ends = np.cumsum(area)
    sums = np.array([np.cumsum(probs[e - a : e])[-1] if a else 0.0 for a, e in zip(area.tolist(), ends.tolist(),
                                                                                  strict=True)], np.float64)
    maskness = np.divide(sums, area, out=np.zeros(len(area)), where=area > 0)
    return binary, area, maskness


def decode_kernel(cand: Candidates, kernels: QTensor, features: QTensor, *, mask_threshold: float, nms_kernel: str,
                  sigma: float, update_threshold: float, max_detections: int, class_agnostic: bool = False,
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Steps 2-3 of the module docstring, and the survivors' logits for step 4.

    Args:
        cand: Step 1's candidates, best first.
        kernels: ``(S, E)`` kernels, float32 or quantized.
        features: ``(E, Hm, Wm)`` mask features, float32 or quantized.
        mask_threshold: Mask probability threshold in (0, 1).
        nms_kernel: ``gaussian`` or ``linear``.
        sigma: Gaussian width.
        update_threshold: Keep decayed scores ``>=`` this.
        max_detections: Most survivors.
        class_agnostic: Matrix NMS across classes.

    Returns:
        ``(index (N,) int64 into cand, score (N,) float32, logits (N, Hm, Wm) float32)``, best first.
    """
    fmap = features.dequantize()
    e, hm, wm = fmap.shape
    if kernels.data.shape[1] != e:
        raise ValueError(f"kernels have {kernels.data.shape[1]} channels but mask features have {e}")
    flat = np.ascontiguousarray(fmap.reshape(e, hm * wm))
    t = logit_threshold(mask_threshold)
    kept, binaries, areas, scores, logits = [], [], [], [], []
    for start in range(0, len(cand), BLOCK):
        part = slice(start, start + BLOCK)
        block = kernel_logits(kernels.rows(cand.cell[part]), flat)
        binary, area, maskness = masks_and_maskness(block, t)
        keep = np.flatnonzero(area > cand.min_area[part])
        kept.append(start + keep)
        binaries.append(binary[keep])
        areas.append(area[keep])
        scores.append((cand.score[part][keep].astype(np.float64) * maskness[keep]).astype(np.float32))
        logits.append(block[keep])
    if not kept:
        return np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros((0, hm, wm), np.float32)
    kept_idx = np.concatenate(kept)
    labels = np.zeros(len(kept_idx), np.int32) if class_agnostic else cand.cls[kept_idx]
    order, decayed = matrix_nms(np.concatenate(binaries), np.concatenate(areas), labels, np.concatenate(scores),
                                kernel=nms_kernel, sigma=sigma, update_threshold=update_threshold,
                                max_keep=max_detections)
    return kept_idx[order], decayed, np.concatenate(logits)[order].reshape(len(order), hm, wm)
