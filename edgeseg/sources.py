"""Frame sources: image files, folders, video files and cameras, as one iterator.

A source yields :class:`Frame` objects; a frame that cannot be read carries
``error`` instead of an image, so the streaming loop logs it and goes on.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm")


@dataclass(frozen=True)
class Frame:
    """One input frame.

    Attributes:
        name: Stem used for output files (image stem, or ``video_000012``).
        image: ``(H, W, 3)`` uint8 BGR, or ``None`` when unreadable.
        error: Why the frame could not be read, else ``None``.
        index: Running frame number over all sources of one call, 0, 1, 2, ...
            (a gap means frames were skipped, never a numbering artefact).
        timestamp_us: When the frame was read (capture time), microseconds
            since the Unix epoch; hooks put this one stamp on the wire.
    """

    name: str
    image: np.ndarray | None
    error: str | None = None
    index: int = 0
    timestamp_us: int = field(default_factory=lambda: time.time_ns() // 1000)


def _read_image(path: Path, index: int) -> Frame:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        return Frame(path.stem, None, f"cannot read {path} as an image (missing, corrupt or unsupported)", index)
    return Frame(path.stem, image, None, index)


def _video(spec: str | int, name: str, start: int, capture: CaptureSettings | None = None) -> Iterator[Frame]:
    cap = cv2.VideoCapture(spec, cv2.CAP_GSTREAMER) if isinstance(spec, str) and "!" in spec else cv2.VideoCapture(spec)
    if not cap.isOpened():
        yield Frame(name, None, f"cannot open video source {spec!r}", start)
        return
    if capture is not None:
        # V4L2 cameras take the requested mode here; a GStreamer pipeline states its own caps.
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, capture.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, capture.height)
        cap.set(cv2.CAP_PROP_FPS, capture.fps)
    i = 0
    try:
        while True:
            ok, image = cap.read()
            if not ok:
                break
            yield Frame(f"{name}_{i:06d}", image, None, start + i)
            i += 1
    finally:
        cap.release()


class CaptureSettings(Protocol):
    """Requested camera mode (the device config's ``camera`` section fits)."""

    width: int
    height: int
    fps: float


def iter_frames(sources: list[str], *, capture: CaptureSettings | None = None) -> Iterator[Frame]:
    """Yields frames from each source in order.

    Args:
        sources: Image files, folders (their images, sorted), video files,
            ``camera:N`` for a V4L2 index, or a GStreamer pipeline (contains ``!``).
        capture: Width, height and frame rate to request from ``camera:N``
            sources (e.g. ``DeviceConfig.camera``).
    """
    index = 0
    for src in sources:
        if src.startswith("camera:"):
            frames: Iterator[Frame] = _video(int(src.split(":", 1)[1]), f"camera{src.split(':', 1)[1]}", index, capture)
        elif "!" in src:
            frames = _video(src, "gst", index)
        else:
            path = Path(src)
            if path.is_dir():
                files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
                if not files:
                    frames = iter([Frame(path.name, None, f"folder {path} holds no images ({', '.join(IMAGE_SUFFIXES)})", index)])
                else:
                    # Bind each index now: a lazy ``index + i`` would read ``index`` after the loop below
                    # has advanced it (ids 0, 2, 5, 9, ...).
                    frames = (_read_image(p, i) for i, p in enumerate(files, start=index))
            elif path.suffix.lower() in VIDEO_SUFFIXES:
                frames = _video(str(path), path.stem, index)
            else:
                frames = iter([_read_image(path, index)])
        for frame in frames:
            index = frame.index + 1
            yield frame
