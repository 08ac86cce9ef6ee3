"""COCO run-length encoding, compatible with pycocotools, without pycocotools.

The runtime must not depend on pycocotools (it is a build-from-source package
on many boards), so the few lines of its RLE format live here; the test suite
holds them to pycocotools' own ``mask.encode`` / ``mask.decode``.

COCO RLE counts runs over the image in column-major (Fortran) order, starting
with a run of zeros, and compresses the counts into an ASCII string (LEB128
like, 5 bits per char, deltas against the count two places back).
"""

from __future__ import annotations

import numpy as np


def _runs(flat: np.ndarray, offset: int, total: int) -> list[int]:
    """Run lengths of a 0/1 vector placed at ``offset`` in a zero vector of ``total``."""
    changes = np.flatnonzero(np.diff(flat, prepend=np.uint8(0), append=np.uint8(0))) + offset
    bounds = np.concatenate(([0], changes))
    if bounds[-1] != total:  # a mask ending in foreground ends its last run at `total`
        bounds = np.append(bounds, total)
    return np.diff(bounds).tolist()


def encode_cropped(bitmap: np.ndarray, x0: int, y0: int, image_size: tuple[int, int]) -> dict:
    """Encodes a cropped mask as COCO RLE of the full image.

    Args:
        bitmap: ``(h, w)`` bool mask whose top-left pixel is at ``(x0, y0)``.
        x0: Column offset of the bitmap in the image.
        y0: Row offset of the bitmap in the image.
        image_size: ``(H, W)`` of the full image.

    Returns:
        ``{"size": [H, W], "counts": str}`` exactly as ``pycocotools.mask.encode``
        gives for the full-frame mask.
    """
    ih, iw = image_size
    h, w = bitmap.shape
    # Only the columns the bitmap spans can hold foreground: encode that strip.
    strip = np.zeros((ih, w), dtype=np.uint8)
    strip[y0 : y0 + h] = bitmap
    counts = _runs(strip.ravel(order="F"), x0 * ih, ih * iw)
    return {"size": [int(ih), int(iw)], "counts": counts_to_string(counts)}


def encode(mask: np.ndarray) -> dict:
    """Encodes a full ``(H, W)`` bool mask as COCO RLE."""
    if mask.ndim != 2:
        raise ValueError(f"expected a 2-D mask, got shape {mask.shape}")
    return encode_cropped(mask.astype(bool, copy=False), 0, 0, mask.shape)


def counts_to_string(counts: list[int]) -> str:
    """Compresses run lengths into pycocotools' ASCII form."""
    chars = []
    for i, count in enumerate(counts):
        x = int(count)
        if i > 2:
            x -= int(counts[i - 2])
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            chars.append(chr(c + 48))
    return "".join(chars)


def string_to_counts(s: str) -> list[int]:
    """Inverse of :func:`counts_to_string`."""
    counts: list[int] = []
    p = 0
    while p < len(s):
        x = 0
        k = 0
        more = True
        while more:
            if p >= len(s):
                raise ValueError("truncated RLE string")
            c = ord(s[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def decode(rle: dict) -> np.ndarray:
    """Decodes COCO RLE (compressed string or list counts) to an ``(H, W)`` bool mask."""
    ih, iw = rle["size"]
    counts = rle["counts"]
    if isinstance(counts, (bytes, str)):
        counts = string_to_counts(counts.decode() if isinstance(counts, bytes) else counts)
    if sum(counts) != ih * iw:
        raise ValueError(f"RLE counts sum to {sum(counts)}, expected {ih * iw}")
    values = np.zeros(len(counts), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, counts)
    return flat.reshape((iw, ih)).T.copy()
