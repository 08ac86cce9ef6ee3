"""Trigger mode with a live source: the frame answering a TRIGGER is captured after it.

No camera runs on this machine, so the camera here is a thread that exposes a
frame every 10 ms into a capture queue of 4 buffers that keeps its oldest
frames when full (what a V4L2 driver does while nobody dequeues); reading
dequeues the oldest, as ``cv2.VideoCapture.read`` does. Before the fix the
frame answering a request was the oldest buffered one, taken long before it.
"""

from __future__ import annotations

import collections
import threading
import time

import numpy as np

from edgeseg.cell import TriggerGate, triggered_frames
from edgeseg.sources import Frame

PERIOD_S = 0.01


class QueuedCamera:
    """Frames exposed every ``PERIOD_S`` into a 4-buffer queue; iterating dequeues like ``cap.read()``."""

    def __init__(self) -> None:
        self.exposed: dict[int, float] = {}  # frame number -> exposure time
        self._queue: collections.deque[int] = collections.deque()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._expose, daemon=True)
        self._thread.start()

    def _expose(self) -> None:
        n = 0
        while not self._stop.is_set():
            time.sleep(PERIOD_S)
            with self._cond:
                self.exposed[n] = time.time()
                if len(self._queue) < 4:  # a full queue keeps its old frames; the new one is lost
                    self._queue.append(n)
                    self._cond.notify_all()
                n += 1

    def __iter__(self):
        image = np.zeros((4, 4, 3), np.uint8)
        while not self._stop.is_set():
            with self._cond:
                while not self._queue and not self._stop.is_set():
                    self._cond.wait(0.1)
                if not self._queue:
                    return
                n = self._queue.popleft()
            yield Frame(f"cam_{n:06d}", image, None, n, time.time(), live=True, source="cam", fps=1 / PERIOD_S)

    def stop(self) -> None:
        self._stop.set()


class TriggerSink:
    def __init__(self) -> None:
        self.trigger_gate = TriggerGate()


def test_frame_answering_a_trigger_is_exposed_after_it_not_taken_from_the_queue():
    camera, sink = QueuedCamera(), TriggerSink()
    answers: list[Frame] = []
    beats: list[float] = []
    consumer = threading.Thread(
        target=lambda: answers.extend(triggered_frames(camera, [sink], on_wait=lambda: beats.append(time.time()))),
        daemon=True,
    )
    consumer.start()
    requested = []
    for _ in range(3):
        time.sleep(0.6)  # the arm moves; the camera keeps exposing
        requested.append(time.time())
        sink.trigger_gate.request()
    time.sleep(0.2)
    sink.trigger_gate.close()
    camera.stop()
    consumer.join(5)
    assert not consumer.is_alive()
    assert len(answers) == 3, [f.name for f in answers]  # one frame per request, the rest dropped
    for frame, t_req in zip(answers, requested, strict=True):
        exposed = camera.exposed[frame.index]
        # exposed within about one frame period of the request, not from the queue's old frames
        assert exposed >= t_req - 2 * PERIOD_S, (frame.name, t_req - exposed)
        assert frame.timestamp >= t_req
    assert len(beats) >= 2  # the heartbeat kept running while the loop waited


def test_files_are_answered_one_per_request():
    sink = TriggerSink()
    read_at: list[float] = []

    def files():
        for i in range(2):
            read_at.append(time.time())
            yield Frame(f"img{i}", np.zeros((2, 2, 3), np.uint8), index=i)

    out: list[Frame] = []
    consumer = threading.Thread(target=lambda: out.extend(triggered_frames(files(), [sink])), daemon=True)
    consumer.start()
    time.sleep(0.3)
    assert len(read_at) == 1 and out == []  # read first to tell files from a live source, answered by no one yet
    sink.trigger_gate.request()
    time.sleep(0.2)
    assert len(read_at) == 1 and [f.name for f in out] == ["img0"]
    t1 = time.time()
    sink.trigger_gate.request()
    consumer.join(5)
    assert [f.name for f in out] == ["img0", "img1"] and read_at[1] >= t1  # the next file read after its request
