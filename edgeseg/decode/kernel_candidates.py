"""Step 1 of the ``kernel`` family decode (SOLOv2-style): grid cells and classes that become candidates.

Shared by the numpy reference and the C path (both decode the same
candidates; the C core starts at step 2), as the mask-first region scan is.

A model's ``cell_scores`` are ``(S, C)``: one row per grid cell, the cells of
every level in order (level ``l`` has ``g_l x g_l`` cells, row-major ``(y, x)``),
``S = sum g_l^2``. Per frame:

1. **Probabilities.** ``activation none``: the values are already
   probabilities after SOLO's "points NMS" (done in the graph). ``sigmoid``:
   raw logits; the decoder applies ``1 / (1 + exp(-x))`` (float32) and then
   the points NMS as mmdet's ``SOLOV2Head.predict_by_feat`` does: per level,
   a cell keeps its probability only when it equals the maximum over itself
   and its upper, left and upper-left neighbours (``max_pool2d(kernel 2,
   stride 1, padding 1)[:-1, :-1]``), else 0.
2. **Candidates.** ``(cell, class)`` pairs of cells without a NaN or infinite
   raw value (a model or quantization fault; counted) whose
   probability is ``>= threshold`` (``>`` when ``score_strict``, as SOLOv2's
   ``score > score_thr``), sorted by probability (descending, stable: ties keep
   the flat order ``cell * C + class``), the first ``pre_top_k``. mmdet
   computes masks for *every* candidate and cuts to ``nms_pre`` only inside
   Matrix NMS; cutting here bounds the mask work per frame (the kernel x
   feature product is the decode's dominant cost).

Each candidate carries its level's ``stride``: the mask area (in mask-grid
cells) it must exceed to stay (step 2 of :mod:`edgeseg.decode.reference_kernel`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Candidates:
    """Candidates of one frame, best first.

    Attributes:
        cell: ``(n,)`` int64 row of ``cell_scores`` / ``kernels``.
        cls: ``(n,)`` int32 class id.
        score: ``(n,)`` float32 cell probability.
        min_area: ``(n,)`` int64 level stride: the mask must have more cells than this.
    """

    cell: np.ndarray
    cls: np.ndarray
    score: np.ndarray
    min_area: np.ndarray

    def __len__(self) -> int:
        return int(self.cell.shape[0])


def level_bounds(grids: tuple[int, ...]) -> np.ndarray:
    """``(L + 1,)`` int64 first row of each level, and ``S`` last."""
    return np.concatenate([[0], np.cumsum(np.asarray(grids, np.int64) ** 2)])


def points_nms(probs: np.ndarray, grids: tuple[int, ...]) -> np.ndarray:
    """SOLO's points NMS: ``(S, C)`` probabilities with every cell that is not a local maximum set to 0.

    A cell is a local maximum when it equals the maximum over itself and its
    upper, left and upper-left neighbours within its level (NaN propagates: a
    cell next to a NaN is not kept).
    """
    out = np.zeros_like(probs)
    bounds = level_bounds(grids)
    for g, a, b in zip(grids, bounds[:-1], bounds[1:], strict=True):
        m = probs[a:b].reshape(g, g, -1)
        pad = np.full((g + 1, g + 1, m.shape[2]), -np.inf, probs.dtype)
        pad[1:, 1:] = m
        local = np.maximum(np.maximum(pad[:-1, :-1], pad[:-1, 1:]), np.maximum(pad[1:, :-1], pad[1:, 1:]))
        out[a:b] = np.where(local == m, m, 0).reshape(g * g, -1)
    return out


def select(raw: np.ndarray, grids: tuple[int, ...], strides: tuple[int, ...], *, activation: str, threshold: float,
           strict: bool, pre_top_k: int) -> tuple[Candidates, int]:
    """Steps 1-2 of the module docstring.

    Args:
        raw: ``(S, C)`` float32 cell scores (dequantized).
        grids: Grid size per level (``S = sum g^2``).
        strides: Minimum-area stride per level.
        activation: ``none`` (probabilities, points NMS done) or ``sigmoid`` (raw logits).
        threshold: Score threshold on probabilities.
        strict: ``>`` instead of ``>=``.
        pre_top_k: Most candidates.

    Returns:
        ``(candidates, nonfinite)``: nonfinite counts cells with a NaN or infinite score.
    """
    finite = np.isfinite(raw).all(axis=1, keepdims=True)
    nonfinite = int((~finite).sum())
    if activation == "sigmoid":
        with np.errstate(over="ignore"):
            probs = (np.float32(1) / (np.float32(1) + np.exp(-raw))).astype(np.float32)
        probs = points_nms(probs, grids)
    else:
        probs = raw
    thr = np.float32(threshold)
    with np.errstate(invalid="ignore"):
        passed = finite & (probs > thr if strict else probs >= thr)
    flat = np.flatnonzero(passed.ravel())
    p = probs.ravel()[flat]
    order = np.argsort(-p, kind="stable")[:pre_top_k]
    flat, p = flat[order], p[order]
    c = raw.shape[1]
    cell = flat // c
    level = np.searchsorted(level_bounds(grids), cell, "right") - 1
    return Candidates(cell.astype(np.int64), (flat % c).astype(np.int32), p.astype(np.float32),
                      np.asarray(strides, np.int64)[level]), nonfinite
