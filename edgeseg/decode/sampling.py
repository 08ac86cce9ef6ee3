"""How prototype maps are sampled at the original resolution: ``exact`` or ``ultralytics``.

``exact`` (the default, :mod:`edgeseg.decode.reference` step 5): one bilinear
interpolation of the mask logits with the exact letterbox mapping, clamped to
the whole prototype map.

``ultralytics`` reproduces what Ultralytics' ``predict`` (``retina_masks``,
``process_mask_native`` in 8.4) does, so that imported models give its masks
pixel for pixel:

1. when the letterbox padding does not fall on whole prototype pixels, the
   map is first upsampled by the smallest factor ``f`` in (2, 4) that makes
   it whole (bilinear, half-pixel centres: ``cv2.resize`` ``INTER_LINEAR``,
   the convention of ``torch.nn.functional.interpolate``);
2. the padding is cropped off (whole pixels at ``f`` times the prototype
   resolution) and the content is interpolated to the original size, clamped
   to the content rows and columns, not to the padding.

Step 1 is applied to the ``K`` prototypes rather than to each instance's
logits: bilinear interpolation is linear, so ``sum_k c_k up(P_k) = up(sum_k
c_k P_k)`` (equal up to float rounding), and it costs one resize per frame
instead of one per instance. Step 2 is the decoder's own sampling, given the
cropped map and a letterbox that maps original pixels onto it
(``mask_letterbox``), so the C path does it with every speed trick intact.
Hand-written: no library offers this conversion; it is 30 lines of geometry.
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

from edgeseg.decode.tensors import ProtoTensors, QTensor
from edgeseg.preprocess import LetterboxInfo

SAMPLINGS = ("exact", "ultralytics")


def _content(size: tuple[int, int], orig: tuple[int, int]) -> tuple[int, int]:
    """Rows and columns the original image covers in a letterboxed ``size`` map (Ultralytics' rounding)."""
    gain = min(size[0] / orig[0], size[1] / orig[1])
    return max(round(orig[0] * gain), 1), max(round(orig[1] * gain), 1)


def upsample_factor(lb: LetterboxInfo, proto_size: tuple[int, int]) -> int:
    """Smallest factor in (1, 2, 4) that puts the letterbox padding on whole pixels of the upsampled map."""
    ih, iw = lb.input_size
    stride = max(1, round(ih / proto_size[0]))
    ch, cw = _content((ih, iw), lb.orig_size)
    pad = (ih - ch) | (iw - cw)
    return stride // math.gcd(stride, pad | pad // 2)


def ultralytics_protos(t: ProtoTensors, lb: LetterboxInfo) -> tuple[ProtoTensors, LetterboxInfo]:
    """The prototype map as Ultralytics samples it, and the letterbox that maps original pixels onto it.

    Args:
        t: Canonical tensors; ``t.protos`` is ``(K, Hp, Wp)``.
        lb: The frame's letterbox.

    Returns:
        ``(tensors with protos upsampled and cropped to the content, mask letterbox)``:
        the mask letterbox has no padding and the resized image's size as its
        input size, so ``u = (x + 0.5) * scale`` spans exactly the cropped map.
    """
    k, hp, wp = t.protos.data.shape
    f = upsample_factor(lb, (hp, wp))
    protos = t.protos
    if f > 1:
        maps = np.ascontiguousarray(t.protos.dequantize().transpose(1, 2, 0))  # (Hp, Wp, K) for cv2
        up = cv2.resize(maps, (wp * f, hp * f), interpolation=cv2.INTER_LINEAR)
        protos = QTensor(up.reshape(hp * f, wp * f, k).transpose(2, 0, 1))
    fh, fw = hp * f, wp * f
    ch, cw = _content((fh, fw), lb.orig_size)
    top, left = round((fh - ch) / 2 - 0.1), round((fw - cw) / 2 - 0.1)
    cropped = QTensor(protos.data[:, top : top + ch, left : left + cw], protos.quant)
    oh, ow = lb.orig_size
    # u = (x + 0.5) * (cw / ow) spans the cropped map exactly: scale cw/ow over an "input" of cw columns
    mask_lb = LetterboxInfo(lb.orig_size, (ch, cw), cw / ow, ch / oh, 0, 0)
    return dataclasses.replace(t, protos=cropped), mask_lb
