"""Trigger mode: the run loop takes the next frame only when a robot (or PLC) asked for one.

Pick cells often need the image taken after the arm has left the field of
view. A server in trigger mode owns a :class:`TriggerGate`;
:func:`triggered_frames` wraps the frame iterator so each frame is read from
the source only after a request. Requests that arrive while a frame is being
taken coalesce into the next one (every waiting client is answered by it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any


class TriggerGate:
    """Counts capture requests; the loop waits on it."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending = 0
        self._closed = False
        self._target: TriggerGate | None = None
        self.requests = 0

    def request(self) -> None:
        """Asks for one new frame (any thread)."""
        if self._target is not None:
            self._target.request()
            return
        with self._cond:
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

    def close(self) -> None:
        """Releases the loop for good (it stops taking frames)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


def triggered_frames(frames: Iterable, sinks: Iterable[Any], *, on_wait: Callable[[], None] | None = None) -> Iterator:
    """``frames`` as they come, or one per request when a sink has a ``trigger_gate``.

    Args:
        frames: The source's frames.
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
    it = iter(frames)
    while gates[0].wait(on_wait):
        frame = next(it, None)
        if frame is None:
            return
        yield frame
