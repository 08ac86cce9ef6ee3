"""The mask-first decode step, C or numpy: survivors' whole-image logit maps -> boxes from masks, cropped masks.

Semantics: :mod:`edgeseg.decode.reference_maskfirst` (region of positive
cells, render through the letterbox, box from the mask). The region scan and
the tightening are the same numpy code on both paths; the rendering, where the
pixels are, runs in the C core (``ES_MODE_MAP``) or in the numpy reference,
equal bit for bit. Families whose instances are masks first (``query``,
SOLOv2-style kernels) call :func:`decode_masks` on their survivors only.
"""

from __future__ import annotations

import numpy as np

from edgeseg.decode import cpath, reference_maskfirst
from edgeseg.decode.tensors import QTensor
from edgeseg.preprocess import LetterboxInfo
from edgeseg.result import CroppedMask


def render_c(maps: QTensor, areas: np.ndarray, lb: LetterboxInfo, *, threads: int = 1,
             flags: int = 0) -> tuple[CroppedMask, ...]:
    """C version of :func:`reference_maskfirst.render` (same arguments, same masks)."""
    cpath._require()
    data, scale, zp = cpath._c_tensor(maps)
    areas = np.ascontiguousarray(areas, dtype=np.float32)
    if data.ndim != 3 or areas.shape != (data.shape[0], 4):
        raise ValueError(f"expected maps (N, Hm, Wm) and regions (N, 4), got {data.shape} and {areas.shape}")
    bits, spans, offsets = cpath._cdecode.masks(
        cpath._cdecode.CROPPED, cpath._cdecode.MAP, None, data, scale, zp, areas, cpath._letterbox(lb), None,
        int(threads), int(flags),
    )
    return cpath._cropped(bits, spans, offsets, lb.orig_size)


def _render_numpy(maps: QTensor, areas: np.ndarray, lb: LetterboxInfo, *, threads: int = 1,
                  flags: int = 0) -> tuple[CroppedMask, ...]:
    return reference_maskfirst.render(maps, areas, lb)


#: Renderer per decoding path (``edgeseg.decode.active_path``).
RENDERERS = {"c": render_c, "numpy": _render_numpy}


def decode_masks(maps: QTensor, lb: LetterboxInfo, path: str, *, threads: int = 1,
                 flags: int = 0) -> tuple[np.ndarray, tuple[CroppedMask, ...]]:
    """Masks and boxes of the surviving instances.

    Args:
        maps: ``(N, Hm, Wm)`` mask logits over the whole model input, one map
            per survivor, float32 or quantized.
        lb: The frame's letterbox (input pixels <-> original pixels).
        path: ``"c"`` or ``"numpy"``.
        threads: Worker threads of the C renderer.
        flags: ``_cdecode.NO_*`` bits (benchmarks).

    Returns:
        ``(boxes, masks)``: ``(N, 4)`` float32 XYXY original pixels, each the
        box of its mask, and the masks cut to their boxes (empty: 0x0 at (0, 0)).
    """
    logits = maps.dequantize()
    if logits.ndim != 3:
        raise ValueError(f"mask maps must be (N, Hm, Wm), got shape {logits.shape}")
    areas = reference_maskfirst.regions(logits, lb)
    rendered = RENDERERS[path](QTensor(logits), areas, lb, threads=threads, flags=flags)
    return reference_maskfirst.tighten_all(rendered)
