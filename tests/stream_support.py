"""Test videos for the streaming tests: small MJPG AVIs written with OpenCV, some frames corrupted."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def write_video(path: Path, frames: int, *, size=(64, 48), fourcc: str = "MJPG", fps: float = 25.0,
                corrupt: tuple[int, ...] = ()) -> Path:
    """Writes ``frames`` frames (a moving square on a ramp) and destroys the JPEG data of the ``corrupt`` ones.

    Corruption overwrites each chosen frame's JPEG bytes (from its SOI marker to
    near the next frame) with zeros, so FFmpeg's MJPEG decoder rejects the frame
    ("No JPEG data found") while the container's index still counts it.
    """
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened(), f"OpenCV cannot write {fourcc} to {path}"
    for i in range(frames):
        img = np.full((h, w, 3), 60 + (i % 100), np.uint8)
        x = 4 + (i * 2) % max(w - 20, 1)
        cv2.rectangle(img, (x, h // 3), (x + 14, h // 3 + 14), (40, 40, 220), -1)
        writer.write(img)
    writer.release()
    if corrupt:
        data = bytearray(path.read_bytes())
        soi = [i for i in range(len(data) - 2) if data[i] == 0xFF and data[i + 1] == 0xD8 and data[i + 2] == 0xFF]
        assert len(soi) == frames, f"expected one JPEG per frame, found {len(soi)} of {frames}"
        for k in corrupt:
            assert 0 <= k < frames - 1, "the last frame is not corrupted (its bytes border the AVI index)"
            end = soi[k + 1] - 16
            data[soi[k] : end] = bytes(end - soi[k])
        path.write_bytes(bytes(data))
    return path
