"""Frame sources: image files, folders, video files, cameras and streams, as one iterator.

A source yields :class:`Frame` objects, each with a frame id (running over
all sources) and a capture timestamp. A frame that cannot be read carries
``error`` instead of an image, so the streaming loop logs it, counts it and
goes on. A source that keeps failing raises :class:`SourceError` with the
reason, which ends the run with a non-zero exit.

* Video files: a failed read in the middle of a file (a corrupt MJPG frame,
  a damaged packet) becomes one failed frame and reading goes on with the
  next one. OpenCV answers both "corrupt frame" and "end of file" with
  ``read() -> False``; the container's frame count tells them apart, and
  ``max_consecutive_failures`` failed reads in a row before that count is
  reached mean the file is broken (SourceError).
* Live sources (``camera:N``, ``rtsp://``/``http(s)://`` streams, GStreamer
  pipelines): after ``max_consecutive_failures`` failed reads the capture is
  released and reopened with exponential backoff; ``reopen_attempts`` failed
  reopens in a row end the run (SourceError).
* Output names never collide: each source gets a unique base name (``scene``,
  then ``scene_png`` for a second ``scene.*``, then ``scene_png_2``).

Hand-written on top of ``cv2.VideoCapture`` because OpenCV has no policy for
failed reads, reconnection or naming; there is no library for this part.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

log = logging.getLogger("edgeseg.sources")

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".mjpg", ".mjpeg")
STREAM_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "udp://", "tcp://", "rtmp://")


class SourceError(RuntimeError):
    """A source that keeps failing (or cannot be opened again); the message says why."""


@dataclass(frozen=True)
class Frame:
    """One input frame.

    Attributes:
        name: Unique stem for output files (image stem, or ``video_000012``).
        image: ``(H, W, 3)`` uint8 BGR, or ``None`` when unreadable.
        error: Why the frame could not be read, else ``None``.
        index: Frame id, running over all sources of one run.
        timestamp: When the frame was read (capture time), seconds since the Unix
            epoch; :attr:`timestamp_us` is the same stamp hooks put on the wire.
        live: True for cameras and streams (frames may be dropped, never waited for).
        source: Unique base name of the video or stream the frame comes
            from; empty for still images.
        fps: Frame rate the source reports (0 when unknown or a still image).
    """

    name: str
    image: np.ndarray | None
    error: str | None = None
    index: int = 0
    timestamp: float = 0.0
    live: bool = False
    source: str = ""
    fps: float = 0.0

    @property
    def timestamp_us(self) -> int:
        """The capture time in whole microseconds since the Unix epoch (the wire's ``t_us``)."""
        return int(round(self.timestamp * 1e6))


class CaptureSettings(Protocol):
    """Requested camera mode (the device config's ``camera`` section fits)."""

    width: int
    height: int
    fps: float


@dataclass(frozen=True)
class SourceOptions:
    """How sources are walked and how hard failing ones are retried.

    Attributes:
        recursive: Walk sub-folders of folder sources too.
        max_consecutive_failures: Failed reads in a row after which a video
            file counts as broken, or a live source is reopened.
        reopen_attempts: Failed reopens in a row after which a live source
            ends the run.
        backoff_s: First wait before a reopen; doubles per failed attempt.
        backoff_max_s: Longest wait between two reopen attempts.
    """

    recursive: bool = False
    max_consecutive_failures: int = 25
    reopen_attempts: int = 8
    backoff_s: float = 0.5
    backoff_max_s: float = 8.0

    def __post_init__(self) -> None:
        if self.max_consecutive_failures < 1 or self.reopen_attempts < 0:
            raise ValueError(
                f"max_consecutive_failures must be >= 1 and reopen_attempts >= 0, got "
                f"{self.max_consecutive_failures} and {self.reopen_attempts}"
            )
        if not 0 <= self.backoff_s <= self.backoff_max_s:
            raise ValueError(f"need 0 <= backoff_s <= backoff_max_s, got {self.backoff_s} and {self.backoff_max_s}")

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before reopen attempt ``attempt`` (0-based): 0.5, 1, 2, ... capped."""
        return min(self.backoff_s * (2**attempt), self.backoff_max_s)


class UniqueNames:
    """Hands out output base names that never collide within one run."""

    _FRAME = re.compile(r"^(.*)_\d{6}$")

    def __init__(self) -> None:
        self._images: set[str] = set()
        self._videos: set[str] = set()

    def _taken(self, name: str) -> bool:
        m = self._FRAME.match(name)
        clash_video = m is not None and m.group(1) in self._videos
        return name in self._images or name in self._videos or clash_video

    def take(self, stem: str, suffix: str = "", *, video: bool = False) -> str:
        """A free name for ``stem`` (``suffix`` like ``.png`` disambiguates first, then a counter)."""
        candidates = [stem, f"{stem}_{suffix.lstrip('.').lower()}"] if suffix else [stem]
        name = next((c for c in candidates if not self._taken(c)), None)
        n = 2
        while name is None:
            name = candidates[-1] + f"_{n}" if not self._taken(candidates[-1] + f"_{n}") else None
            n += 1
        (self._videos if video else self._images).add(name)
        return name


def is_live(spec: str) -> bool:
    """True for cameras, network streams and GStreamer pipelines."""
    return spec.startswith("camera:") or "!" in spec or spec.lower().startswith(STREAM_SCHEMES)


def _open_capture(spec: str | int, capture: CaptureSettings | None) -> cv2.VideoCapture:
    if isinstance(spec, str) and "!" in spec:
        cap = cv2.VideoCapture(spec, cv2.CAP_GSTREAMER)
    else:
        cap = cv2.VideoCapture(spec)
    if cap.isOpened() and capture is not None and isinstance(spec, int):
        # V4L2 cameras take the requested mode here; a GStreamer pipeline states its own caps.
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, capture.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, capture.height)
        cap.set(cv2.CAP_PROP_FPS, capture.fps)
    return cap


class _Counter:
    """Running frame id shared by all sources of one run."""

    def __init__(self) -> None:
        self.next = 0

    def take(self) -> int:
        i, self.next = self.next, self.next + 1
        return i


def _image(path: Path, name: str, ids: _Counter) -> Frame:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    err = None if image is not None else f"cannot read {path} as an image (missing, corrupt or unsupported)"
    return Frame(name, image, err, ids.take(), time.time())


def _video_file(path: str, name: str, ids: _Counter, opts: SourceOptions) -> Iterator[Frame]:
    cap = _open_capture(path, None)
    if not cap.isOpened():
        yield Frame(name, None, f"cannot open video {path!r}", ids.take(), time.time())
        return
    expected = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))  # 0 or negative when the container does not say
    fps = max(float(cap.get(cv2.CAP_PROP_FPS) or 0.0), 0.0)
    seen = pending = 0  # frames accounted for; failed reads not yet known to be failures rather than the end
    try:
        while True:
            ok, image = cap.read()
            if ok:
                for _ in range(pending):
                    yield Frame(f"{name}_{seen:06d}", None, f"{path}: frame {seen} failed to decode", ids.take(),
                                time.time(), source=name, fps=fps)
                    seen += 1
                pending = 0
                yield Frame(f"{name}_{seen:06d}", image, None, ids.take(), time.time(), source=name, fps=fps)
                seen += 1
                continue
            if expected > 0 and seen + pending >= expected:
                break  # the end of the file
            pending += 1
            if pending >= opts.max_consecutive_failures:
                if expected > 0:
                    raise SourceError(
                        f"video {path}: {pending} reads in a row failed at frame {seen} of {expected}; file is broken"
                    )
                break  # no frame count: a run of failures is the end
    finally:
        cap.release()
    for _ in range(pending if expected > 0 else 0):  # corrupt frames at the very end of the file
        yield Frame(f"{name}_{seen:06d}", None, f"{path}: frame {seen} failed to decode", ids.take(), time.time(),
                      source=name, fps=fps)
        seen += 1


def _live(spec: str | int, name: str, ids: _Counter, opts: SourceOptions, capture: CaptureSettings | None,
          sleep: Callable[[float], None] = time.sleep) -> Iterator[Frame]:
    """Frames from a camera or stream; reopened with backoff when it stops delivering."""
    i = attempt = 0
    label = f"camera:{spec}" if isinstance(spec, int) else spec
    cap = _open_capture(spec, capture)
    try:
        while True:
            if not cap.isOpened():
                if attempt >= opts.reopen_attempts:
                    raise SourceError(f"live source {label!r} could not be opened ({attempt} reopen attempts failed)")
                wait = opts.backoff(attempt)
                log.warning("live source %r unavailable; reopening in %.1f s (attempt %d of %d)",
                            label, wait, attempt + 1, opts.reopen_attempts)
                sleep(wait)
                attempt += 1
                cap.release()
                cap = _open_capture(spec, capture)
                continue
            failed = 0
            fps = max(float(cap.get(cv2.CAP_PROP_FPS) or 0.0), 0.0)
            while failed < opts.max_consecutive_failures:
                ok, image = cap.read()
                if ok:
                    attempt = failed = 0
                    yield Frame(f"{name}_{i:06d}", image, None, ids.take(), time.time(),
                                live=True, source=name, fps=fps)
                else:
                    failed += 1
                    yield Frame(f"{name}_{i:06d}", None, f"{label}: read failed", ids.take(), time.time(),
                                live=True, source=name, fps=fps)
                i += 1
            log.warning("live source %r: %d reads in a row failed; reopening", label, failed)
            cap.release()
    finally:
        cap.release()


def list_images(sources: Iterable[str | Path], *, recursive: bool = False, limit: int = 0) -> list[Path]:
    """Image files from files and folders: the one image listing (run, bench, export calibration and validation).

    Args:
        sources: Image files (taken as given) and folders (their images by
            :data:`IMAGE_SUFFIXES`, case-insensitive, sorted by path).
        recursive: Also walk the folders' sub-folders.
        limit: Keep at most this many (0 = all).

    Raises:
        ValueError: A source does not exist, or no image was found (names the sources and the suffixes).
    """
    sources = [Path(s) for s in sources]
    paths: list[Path] = []
    for src in sources:
        if src.is_dir():
            walk = src.rglob("*") if recursive else src.iterdir()
            paths += sorted(p for p in walk if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        elif src.is_file():
            paths.append(src)
        else:
            raise ValueError(f"image source {src} does not exist")
    if not paths:
        where = " (sub-folders included)" if recursive else ""
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {[str(s) for s in sources]}{where}")
    return paths[:limit] if limit else paths


def _folder(path: Path, names: UniqueNames, ids: _Counter, opts: SourceOptions) -> Iterator[Frame]:
    walk = path.rglob("*") if opts.recursive else path.iterdir()
    files = sorted(p for p in walk if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES)
    if not files:
        kinds = ", ".join(IMAGE_SUFFIXES + VIDEO_SUFFIXES)
        where = "or its sub-folders " if opts.recursive else ""
        yield Frame(path.name, None, f"folder {path} {where}holds no images or videos ({kinds})", ids.take(), time.time())
        return
    for p in files:
        yield from _file(p, names, ids, opts)


def _file(path: Path, names: UniqueNames, ids: _Counter, opts: SourceOptions) -> Iterator[Frame]:
    if path.suffix.lower() in VIDEO_SUFFIXES:
        yield from _video_file(str(path), names.take(path.stem, path.suffix, video=True), ids, opts)
    else:
        yield _image(path, names.take(path.stem, path.suffix), ids)


def _camera_index(src: str) -> int:
    index = src.split(":", 1)[1]
    if not index.isdigit():
        raise ValueError(f"camera source must be camera:N with N a V4L2 index, got {src!r}")
    return int(index)


def check_sources(sources: list[str]) -> None:
    """Raises ValueError for a source that can never open (``camera:abc``), before anything loads."""
    for src in sources:
        if src.startswith("camera:"):
            _camera_index(src)


def iter_frames(sources: list[str], *, capture: CaptureSettings | None = None,
                options: SourceOptions | None = None) -> Iterator[Frame]:
    """Yields frames from each source in order.

    Args:
        sources: Image files, folders (their images and videos, sorted;
            sub-folders with ``options.recursive``), video files,
            ``camera:N`` for a V4L2 index, ``rtsp://`` / ``http(s)://``
            streams, or a GStreamer pipeline (contains ``!``).
        capture: Width, height and frame rate to request from ``camera:N``
            sources (e.g. ``DeviceConfig.camera``).
        options: Folder walking and failure handling (defaults: :class:`SourceOptions`).

    Raises:
        SourceError: A video file or live source kept failing (raised while iterating).
    """
    opts = options or SourceOptions()
    names, ids = UniqueNames(), _Counter()
    for src in sources:
        if src.startswith("camera:"):
            index = _camera_index(src)
            yield from _live(index, names.take(f"camera{index}", video=True), ids, opts, capture)
        elif "!" in src:
            yield from _live(src, names.take("gst", video=True), ids, opts, None)
        elif src.lower().startswith(STREAM_SCHEMES):
            yield from _live(src, names.take("stream", video=True), ids, opts, None)
        else:
            path = Path(src)
            if path.is_dir():
                yield from _folder(path, names, ids, opts)
            else:
                yield from _file(path, names, ids, opts)
