"""A toy model family defined outside the runtime: circles as ``(x, y, r, score, class)`` rows.

The plug-in test registers it with :data:`edgeseg.families.FAMILIES` at run
time; no runtime module names it. Masks are disks rasterized at the original
resolution, so the rest of the runtime (Result, grasps, overlays, RLE) gets
ordinary cropped masks.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edgeseg.decode.options import DecodeOptions
from edgeseg.decode.tensors import row_view
from edgeseg.families import Family, Role
from edgeseg.manifest import Manifest
from edgeseg.preprocess import LetterboxInfo
from edgeseg.result import CroppedMask, Result


@dataclasses.dataclass(frozen=True)
class CircleOptions(DecodeOptions):
    """Toy options: the shared thresholds plus a radius margin in input pixels."""

    radius_margin: float = 0.0


class CircleFamily(Family):
    name = "toy-circles"
    roles = {"circles": Role(("BAC",))}

    def options(self, manifest: Manifest) -> CircleOptions:
        return CircleOptions(**DecodeOptions.thresholds(manifest.thresholds))

    def decoder(self, manifest: Manifest, path: str):
        spec = manifest.output("circles")

        def decode(raw: dict, lb: LetterboxInfo, opts: CircleOptions) -> Result:
            rows = row_view(raw, spec, 5).astype(np.float32)
            keep = np.flatnonzero(rows[:, 3] >= opts.score_threshold)[: opts.max_detections]
            rows = rows[keep]
            x = (rows[:, 0] - lb.pad_left) / np.float32(lb.scale_x)
            y = (rows[:, 1] - lb.pad_top) / np.float32(lb.scale_y)
            r = (rows[:, 2] + opts.radius_margin) / np.float32(lb.scale_x)
            h, w = lb.orig_size
            boxes = np.stack([x - r, y - r, x + r, y + r], 1).clip(0, [w, h, w, h]).astype(np.float32)
            masks = []
            for (x1, y1, x2, y2), cx, cy, rr in zip(boxes, x, y, r, strict=True):
                x0, y0 = int(np.ceil(x1)), int(np.ceil(y1))
                ys, xs = np.mgrid[y0 : int(np.ceil(y2)), x0 : int(np.ceil(x2))]
                masks.append(CroppedMask(x0, y0, (xs + 0.5 - cx) ** 2 + (ys + 0.5 - cy) ** 2 <= rr**2, (h, w)))
            return Result(boxes=boxes, scores=rows[:, 3].copy(), class_ids=rows[:, 4].astype(np.int32),
                          masks=tuple(masks), class_names=manifest.classes, image_size=(h, w))

        return decode


FAMILY = CircleFamily()
