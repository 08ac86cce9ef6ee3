"""Trigger mode: the run loop takes the next frame only when a robot (or PLC) asked for one.

Pick cells often need the image taken after the arm has left the field of
view. A server in trigger mode owns a :class:`TriggerGate`;
:func:`triggered_frames` wraps the frame iterator: a frame from a file is
read only after a request; a live source (camera, stream) is read all the
time, so that its capture queue never fills with old frames, and the frame
answering a request is the first one read after the request came (frames read
before it are dropped). Requests that arrive while a frame is being taken
coalesce into the next one (every waiting client is answered by it).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any


class TriggerGate:
    """Counts capture requests; the loop waits on it."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending = 0
        self._closed = False
        self._target: TriggerGate | None = None
        self._since = 0.0  # time.time() of the oldest pending request
        self.requests = 0

    def request(self) -> None:
        """Asks for one new frame (any thread)."""
        if self._target is not None:
            self._target.request()
            return
        with self._cond:
            if not self._pending:
                self._since = time.time()
            self._pending += 1
            self.requests += 1
            self._cond.notify_all()

    def forward_to(self, other: TriggerGate) -> None:
        """Sends this gate's requests to ``other`` (several servers, one loop)."""
        self._target = other

    def wait(self, on_idle: Callable[[], None] | None = None) -> bool:
        """Blocks until a request is pending (consumes all pending ones); False once closed.

        Args:
            on_idle: Called about twice a second while waiting (the health heartbeat).
        """
        with self._cond:
            while not self._pending and not self._closed:
                self._cond.wait(0.5)  # a timeout keeps Ctrl-C responsive
                if on_idle is not None and not self._pending:
                    on_idle()
            if self._closed:
                return False
            self._pending = 0
            return True

    def take_if_before(self, timestamp: float) -> bool | None:
        """Consumes the pending requests if the oldest came at or before ``timestamp``.

        Returns:
            True when a frame read at ``timestamp`` answers them, False when
            none is pending or it came later, None once the gate is closed.
        """
        with self._cond:
            if self._closed:
                return None
            if self._pending and self._since <= timestamp:
                self._pending = 0
                return True
            return False

    def close(self) -> None:
        """Releases the loop for good (it stops taking frames)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


def triggered_frames(frames: Iterable, sinks: Iterable[Any], *, on_wait: Callable[[], None] | None = None) -> Iterator:
    """``frames`` as they come, or one per request when a sink has a ``trigger_gate``.

    Args:
        frames: The source's frames (:class:`~edgeseg.sources.Frame`; those
            with ``live`` set are read continuously and dropped until a
            request is pending, see the module docstring; unreadable live
            frames pass through, so failures are still counted).
        sinks: Hooks and servers of the run; those in trigger mode have a
            :class:`TriggerGate` as ``trigger_gate``.
        on_wait: Called about twice a second while no request is pending
            (``Heartbeat.alive``: a long wait must not look like a stuck loop).
    """
    gates = [g for g in (getattr(s, "trigger_gate", None) for s in sinks) if g is not None]
    if not gates:
        yield from frames
        return
    for g in gates[1:]:
        g.forward_to(gates[0])
    gate = gates[0]
    it = iter(frames)
    first = next(it, None)  # read before any request: tells a live source from files
    if first is None:
        return
    if getattr(first, "live", False):
        yield from _answer_from_live(itertools.chain([first], it), gate, on_wait)
        return
    if not gate.wait(on_wait):
        return
    yield first
    while gate.wait(on_wait):  # files: each next one is read after its request
        frame = next(it, None)
        if frame is None:
            return
        yield frame


def _answer_from_live(frames: Iterator, gate: TriggerGate, on_wait: Callable[[], None] | None) -> Iterator:
    """Reads on without waiting; yields the first frame read after each request, drops the others."""
    beat = time.monotonic()
    for frame in frames:
        if not getattr(frame, "live", False):  # a file after the live source: it waits for its own request
            if not gate.wait(on_wait):
                return
            yield frame
            continue
        if frame.error is not None:  # an unreadable frame is counted by the loop and answers nothing
            yield frame
            continue
        answered = gate.take_if_before(frame.timestamp)
        if answered is None:
            return
        if answered:
            yield frame
        elif on_wait is not None and time.monotonic() - beat >= 0.5:
            on_wait()
            beat = time.monotonic()
