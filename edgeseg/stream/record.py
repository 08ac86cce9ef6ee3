"""What travels down the pipeline: one frame and everything computed from it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeseg.result import Result
from edgeseg.sources import Frame


@dataclass
class FrameRecord:
    """One frame on its way through the stages (each stage fills its part).

    Attributes:
        frame: The input frame (image, id, timestamp, name).
        result: The segmentation (tracked when a tracker runs), or None
            when the frame failed before it.
        grasps: Planned grasps, best first; None when no planner runs.
        counts: Line / zone counts after this frame (``{"line": {"box": 3}}``), or None.
        extras: Other per-frame data a step wants in the JSON outputs.
        labels: The overlay's tag placer (:class:`edgeseg.overlay.Labels`)
            while the overlay is drawn, for drawers that add tags.
    """

    frame: Frame
    result: Result | None = None
    grasps: tuple | None = None
    counts: dict[str, dict[str, int]] | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    labels: Any = field(default=None, repr=False)
    _overlay: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        """JSON-ready: the result's dict plus name, timestamp, grasps (when planned) and counts.

        The format is published as a JSON Schema: ``docs/frame.schema.json``.
        """
        d = self.result.to_dict() if self.result is not None else {"frame_id": self.frame.index}
        d = {"name": self.frame.name, "timestamp": round(self.frame.timestamp, 6), **d}
        if self.grasps is not None:
            d["grasps"] = [g.to_dict(rank) for rank, g in enumerate(self.grasps)]
        if self.counts is not None:
            d["counts"] = self.counts
        return {**d, **self.extras}


#: Draws on a BGR image (in place or returning a new one) from a record.
Drawer = Callable[[np.ndarray, FrameRecord], np.ndarray]


class Renderer:
    """Builds a record's overlay once (masks, boxes, labels, then each drawer), shared by sinks.

    Args:
        drawers: Called in order on the annotated image (grasps, count lines ...).
    """

    def __init__(self, drawers: Sequence[Drawer] = ()) -> None:
        from edgeseg.overlay import Labels, MaskAnnotator

        self.annotator = MaskAnnotator()
        self._labels = Labels
        self.drawers = tuple(drawers)

    def __call__(self, record: FrameRecord) -> np.ndarray:
        if record._overlay is None:
            record.labels = self._labels(record.frame.image.shape)
            image = self.annotator.annotate(record.frame.image, record.result, record.labels)
            for draw in self.drawers:
                image = draw(image, record)
            record._overlay = image
        return record._overlay
