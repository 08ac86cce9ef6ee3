"""Sinks: where finished frames go (per-frame JSON, overlays, annotated video, JSON lines, hooks, console).

A sink has a ``name``, ``write(record)`` and ``close()``. The pipeline calls
every sink for every finished frame; an exception from one sink is counted
as ``sink:<name>:<error>`` and the others still get the frame. Files are
written so that a full disk never leaves half files or temporary files
behind (:mod:`edgeseg.safe_write`).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Protocol, TextIO

import cv2

from edgeseg.result import json_text
from edgeseg.safe_write import append_line, open_lines, write_atomic
from edgeseg.stream.record import FrameRecord, Renderer

log = logging.getLogger("edgeseg.run")


class Sink(Protocol):
    name: str

    def write(self, record: FrameRecord) -> None: ...

    def close(self) -> None: ...


class FrameJsonSink:
    """``DIR/<frame name>.json`` per frame: instances with RLE masks, timings, track ids, counts."""

    name = "json"

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)

    def write(self, record: FrameRecord) -> None:
        write_atomic(self.out / f"{record.frame.name}.json", (json_text(record.to_dict()) + "\n").encode())

    def close(self) -> None:
        pass


class OverlaySink:
    """Overlays: ``DIR/<name>.png`` for still images, ``DIR/<source>.mp4`` for video and camera frames.

    Args:
        out: Output folder.
        render: Builds the overlay image of a record.
        png_frames: Write every video frame as a PNG instead of an annotated video.
        fourcc: Codec of annotated videos (OpenCV FourCC).
    """

    name = "overlay"

    def __init__(self, out: Path, render: Renderer, *, png_frames: bool = False, fourcc: str = "mp4v") -> None:
        self.out, self.render, self.png_frames, self.fourcc = Path(out), render, png_frames, fourcc
        self.out.mkdir(parents=True, exist_ok=True)
        self._videos: dict[str, cv2.VideoWriter] = {}
        self._sizes: dict[str, tuple[int, int]] = {}
        self.paths: list[Path] = []

    def path_of(self, record: FrameRecord) -> Path:
        f = record.frame
        return self.out / (f"{f.source}.mp4" if f.source and not self.png_frames else f"{f.name}.png")

    def write(self, record: FrameRecord) -> None:
        image = self.render(record)
        f = record.frame
        if not f.source or self.png_frames:
            ok, data = cv2.imencode(".png", image)
            if not ok:
                raise ValueError(f"cannot encode the overlay of {f.name} as PNG")
            write_atomic(self.path_of(record), data.tobytes())
            return
        writer = self._videos.get(f.source)
        h, w = image.shape[:2]
        if writer is None:
            path = self.path_of(record)
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*self.fourcc), f.fps or 25.0, (w, h))
            if not writer.isOpened():
                raise OSError(f"cannot open {path} for writing an annotated video ({self.fourcc})")
            self._videos[f.source] = writer
            self._sizes[f.source] = (w, h)
            self.paths.append(path)
        size = self._sizes[f.source]
        writer.write(image if (w, h) == size else cv2.resize(image, size))

    def close(self) -> None:
        for writer in self._videos.values():
            writer.release()
        self._videos.clear()


class JsonlSink:
    """One JSON object per frame appended to a file (``-`` for stdout); lines are never torn."""

    name = "jsonl"

    def __init__(self, path: str) -> None:
        self.path = path
        self._fh = None if path == "-" else open_lines(path)

    def write(self, record: FrameRecord) -> None:
        line = json_text(record.to_dict()) + "\n"
        if self._fh is None:
            sys.stdout.write(line)
            sys.stdout.flush()
        else:
            append_line(self._fh, line.encode())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


class HookSink:
    """Hands each frame's result and grasps to a robot hook or server (:mod:`edgeseg.hooks`, :mod:`edgeseg.cell`).

    Args:
        hook: The hook; called with the frame's capture stamp, so every hook
            puts the same ``t_us`` on the wire.
        url: How the user named it (for the closing summary).
    """

    def __init__(self, hook, url: str | None = None) -> None:
        self.hook = hook
        self.url = url or hook.name
        self.name = f"hook:{hook.name}"

    def write(self, record: FrameRecord) -> None:
        self.hook(record.result, record.grasps or (), timestamp_us=record.frame.timestamp_us)

    def close(self) -> None:
        self.hook.flush()
        self.hook.close()
        log.info("hook %s: %s", self.url, self.hook.stats.summary())


class ConsoleSink:
    """One human-readable line per frame (instances per class, stage timings, outputs)."""

    name = "console"

    def __init__(self, stream: TextIO, overlays: OverlaySink | None = None) -> None:
        self.stream, self.overlays = stream, overlays

    def write(self, record: FrameRecord) -> None:
        result, t = record.result, record.result.timings
        per_class: dict[str, int] = {}
        for name in (result.class_names[int(c)] for c in result.class_ids):
            per_class[name] = per_class.get(name, 0) + 1
        summary = ", ".join(f"{n} {c}" for c, n in sorted(per_class.items())) or "nothing"
        line = (f"{record.frame.name}: {len(result)} instances ({summary}) in {t.total_ms:.1f} ms "
                f"[pre {t.preprocess_ms:.1f} / infer {t.infer_ms:.1f} / decode {t.decode_ms:.1f}]")
        if self.overlays is not None:
            line += f" -> {self.overlays.path_of(record)}"
        if record.grasps:
            line += f" | {len(record.grasps)} grasps"
        if record.counts:
            line += " | counts " + json.dumps(record.counts, separators=(",", ":"))
        print(line, file=self.stream, flush=True)

    def close(self) -> None:
        pass
