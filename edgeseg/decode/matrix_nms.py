"""Matrix NMS (SOLOv2, Wang et al. 2020): every mask's score decays by its overlap with better masks of its class.

Numpy reference; ``es_matrix_nms.c`` is the C version, equal bit for bit.
For ``n`` masks sorted by score (descending, stable: ties keep input order),
``iou_ij`` the mask IoU (``|B_i & B_j| / (a_i + a_j - |B_i & B_j|)``, float64
of exact integer counts) and only pairs ``i < j`` of the same class counted
(class-aware, as mmdet's ``mask_matrix_nms``):

* compensation ``c_i = max_{k < i, same class} iou_ki`` (0 when none): how
  much ``i`` is itself suppressed;
* ``decay_j = min(1, min_{i < j, same class} f(iou_ij) / f(c_i))``; the
  paper's formula, and what mmdet's matrix (whose first row is 1 for other
  classes and all other non-pair entries are ``>= 1``) computes;
* ``gaussian``: ``f(x) = exp(-sigma x^2)`` (mmdet's convention, sigma 2.0);
  the ratio is ``exp(sigma (c_i^2 - iou_ij^2))`` and, ``exp`` being
  increasing, ``decay_j = exp(min(0, min_i sigma (c_i^2 - iou_ij^2)))``:
  one exponential per mask, evaluated by Python's :func:`math.exp` here and
  by the C library's ``exp`` in C -- the same function of the same libm in
  the same process, so the same bits (the float64 argument is formed with the
  same operations: ``(c * c - iou * iou) * sigma``);
* ``linear``: ``f(x) = 1 - x``: the ratio ``(1 - iou_ij) / (1 - c_i)``; a mask
  with ``c_i = 1`` (a duplicate of a better one, itself decayed to 0)
  suppresses nothing;
* decayed score ``float32(float64(s_j) * decay_j)``; kept when ``>=
  float32(update_threshold)``; the kept ones sorted by decayed score
  (descending, stable), the first ``max_keep``.

Hand-written: no library here implements Matrix NMS (mmdet's needs torch and
mmcv); intersections are one float32 matrix product of 0/1 masks, exact for
masks under 2^24 cells whatever the summation order.
"""

from __future__ import annotations

import math

import numpy as np

KERNELS = ("gaussian", "linear")


def mask_iou(binary: np.ndarray, area: np.ndarray) -> np.ndarray:
    """``(n, n)`` float64 IoU of ``(n, P)`` bool masks with ``(n,)`` cell counts (0 where both are empty)."""
    b = binary.astype(np.float32)
    inter = (b @ b.T).astype(np.float64)
    a = area.astype(np.float64)
    union = a[:, None] + a[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def decay_factors(iou: np.ndarray, labels: np.ndarray, *, kernel: str, sigma: float) -> np.ndarray:
    """``(n,)`` float64 decay of each mask, rows/columns of ``iou`` in score order (module docstring)."""
    n = iou.shape[0]
    if n == 0:
        return np.zeros(0)
    pair = np.triu(labels[:, None] == labels[None, :], k=1)
    comp = np.where(pair, iou, 0.0).max(axis=0)[:, None]
    if kernel == "gaussian":
        exponent = np.where(pair, (comp * comp - iou * iou) * sigma, 0.0).min(axis=0)
        return np.array([math.exp(v) for v in exponent.tolist()], np.float64)
    if kernel == "linear":
        valid = pair & (comp < 1.0)
        ratio = np.divide(1.0 - iou, 1.0 - comp, out=np.ones_like(iou), where=valid)
        return np.where(valid, ratio, 1.0).min(axis=0)
    raise ValueError(f"Matrix NMS kernel must be one of {KERNELS}, got {kernel!r}")


def matrix_nms(binary: np.ndarray, area: np.ndarray, labels: np.ndarray, scores: np.ndarray, *, kernel: str = "gaussian",
               sigma: float = 2.0, update_threshold: float = 0.0, max_keep: int | None = None,
               ) -> tuple[np.ndarray, np.ndarray]:
    """Matrix NMS of ``n`` masks.

    Args:
        binary: ``(n, P)`` bool masks (flattened).
        area: ``(n,)`` int64 cell counts of ``binary``.
        labels: ``(n,)`` int class ids.
        scores: ``(n,)`` float32 scores.
        kernel: ``gaussian`` or ``linear``.
        sigma: Gaussian width.
        update_threshold: Keep decayed scores ``>=`` this.
        max_keep: Most masks kept (``None``: all).

    Returns:
        ``(index (N,) int64 into the inputs, decayed score (N,) float32)``, best first.
    """
    order = np.argsort(-scores, kind="stable")
    decay = decay_factors(mask_iou(binary[order], area[order]), labels[order], kernel=kernel, sigma=sigma)
    decayed = (scores[order].astype(np.float64) * decay).astype(np.float32)
    kept = np.flatnonzero(decayed >= np.float32(update_threshold))
    kept = kept[np.argsort(-decayed[kept], kind="stable")][:max_keep]
    return order[kept].astype(np.int64), decayed[kept]
