"""The hook interface: per-frame results go to a bounded queue, a worker delivers them.

Calling a hook never blocks the caller for longer than a lock hand-off: the
item goes into a queue of ``queue_size`` and a worker thread (one per hook)
delivers it. When the queue is full the oldest queued frame is dropped
(``drop="oldest"``, latest wins, the default) or the new one is
(``drop="newest"``); drops are counted in :attr:`Hook.stats`.

The worker is started by the base class once the whole constructor chain has
returned (the :class:`_StartsWorker` metaclass), so a subclass cannot forget
to start it and silently deliver nothing.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from edgeseg import protocol
from edgeseg.result import Result

log = logging.getLogger("edgeseg.hooks")


@dataclass(frozen=True)
class HookItem:
    """One frame handed to a hook.

    Attributes:
        result: The frame's instances.
        grasps: The frame's grasps, best first, at most ``max_grasps`` of them.
        timestamp_us: When the frame was captured (the caller's stamp, the same
            for every hook), else when it was submitted; microseconds since the
            Unix epoch.
        total_grasps: Grasps the frame had before ``max_grasps`` cut them.
    """

    result: Result
    grasps: tuple
    timestamp_us: int
    total_grasps: int = 0

    @property
    def frame_id(self) -> int:
        return self.result.frame_id


@dataclass
class HookStats:
    """Counters of one hook (a snapshot when read through :attr:`Hook.stats`).

    Attributes:
        submitted: Frames handed to the hook.
        delivered: Frames its sink accepted.
        dropped: Frames dropped because the queue was full.
        failed: Frames lost in delivery (sink error, link down, write timeout).
        reconnects: Times a lost link came back.
        acked: Acknowledgements with status 0 received from the far end (ack mode).
        nacked: Acknowledgements with a non-zero status (controller refused or busy).
        unknown_acks: Acknowledgements for a sequence number this link never sent
            (or sent too long ago to remember).
        link_up: Whether the link is up now (port open and, in ack mode, acks
            arriving); None for hooks without a link.
        last_error: Text of the latest delivery error.
    """

    submitted: int = 0
    delivered: int = 0
    dropped: int = 0
    failed: int = 0
    reconnects: int = 0
    acked: int = 0
    nacked: int = 0
    unknown_acks: int = 0
    link_up: bool | None = None
    last_error: str = ""

    def summary(self) -> str:
        """One line for logs: ``delivered 10, dropped 2, failed 0`` (+ link and ack counts when known)."""
        parts = [f"delivered {self.delivered}", f"dropped {self.dropped}", f"failed {self.failed}"]
        if self.link_up is not None:
            parts.append("link up" if self.link_up else "link down")
        if self.reconnects:
            parts.append(f"reconnects {self.reconnects}")
        if self.acked or self.nacked or self.unknown_acks:
            parts.append(f"acked {self.acked}, nacked {self.nacked}, unknown acks {self.unknown_acks}")
        return ", ".join(parts)


class _StartsWorker(type):
    """Metaclass: starts the hook's worker after the outermost ``__init__`` returned."""

    def __call__(cls, *args: Any, **kwargs: Any):
        hook = super().__call__(*args, **kwargs)
        hook._start()
        return hook


class Hook(metaclass=_StartsWorker):
    """Base class: subclasses implement :meth:`_deliver` (and maybe :meth:`_idle`, :meth:`_close_sink`).

    The worker thread starts by itself when construction completes; subclasses
    do not start it.

    Args:
        queue_size: Frames that may wait for delivery (>= 1).
        drop: Which frame to drop when the queue is full: ``"oldest"``
            (latest wins) or ``"newest"``.
        max_grasps: Most grasps per frame passed on (best first).
        poll_s: If set, :meth:`_idle` runs in the worker at least this often.
    """

    name = "hook"

    def __init__(self, *, queue_size: int = 1, drop: Literal["oldest", "newest"] = "oldest",
                 max_grasps: int = 16, poll_s: float | None = None) -> None:
        if not isinstance(queue_size, int) or queue_size < 1:
            raise ValueError(f"queue_size must be an int >= 1, got {queue_size!r}")
        if drop not in ("oldest", "newest"):
            raise ValueError(f"drop must be 'oldest' or 'newest', got {drop!r}")
        if not isinstance(max_grasps, int) or not 0 <= max_grasps <= protocol.MAX_RECORDS:
            raise ValueError(f"max_grasps must be an int in [0, {protocol.MAX_RECORDS}], got {max_grasps!r}")
        self.queue_size, self.drop, self.max_grasps, self.poll_s = queue_size, drop, max_grasps, poll_s
        self._queue: collections.deque[HookItem] = collections.deque()
        self._cond = threading.Condition()
        self._stats = HookStats()
        self._busy = False
        self._closing = False
        self._logged: set[str] = set()
        self._thread: threading.Thread | None = None
        #: The bundle whose class ids the frames speak of (:class:`~edgeseg.model_info.ModelInfo`),
        #: announced by binary links when they come up; ``None`` until :meth:`set_model`.
        self.model = None

    def set_model(self, info) -> None:
        """Names the bundle behind the class ids; links that can say so send a MODEL message."""
        self.model = info

    def _start(self) -> None:
        """Starts the worker (once; called by the metaclass after construction)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=f"edgeseg-{self.name}", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    # -- caller side -------------------------------------------------------
    def __call__(self, result: Result, grasps: Sequence = (), *, timestamp_us: int | None = None) -> None:
        """Queues one frame for delivery; never waits for the sink.

        Args:
            result: The frame's instances.
            grasps: Its grasps, best first; the first ``max_grasps`` go on.
            timestamp_us: Capture time of the frame, microseconds since the
                Unix epoch (pass the same stamp to every hook); None = now.
        """
        if not isinstance(result, Result):
            raise TypeError(f"a hook takes an edgeseg Result, got {type(result).__name__}")
        grasps = tuple(grasps)
        stamp = time.time_ns() // 1000 if timestamp_us is None else int(timestamp_us)
        item = HookItem(result, grasps[: self.max_grasps], stamp, len(grasps))
        with self._cond:
            if self._closing:
                raise RuntimeError(f"{self.name} hook is closed")
            self._stats.submitted += 1
            if len(self._queue) >= self.queue_size:
                self._stats.dropped += 1
                if self.drop == "newest":
                    return
                self._queue.popleft()
            self._queue.append(item)
            self._cond.notify()

    submit = __call__

    @property
    def stats(self) -> HookStats:
        """A snapshot of the counters."""
        with self._cond:
            return dataclasses.replace(self._stats)

    def flush(self, timeout: float = 5.0) -> bool:
        """Waits until the queue is empty and nothing is being delivered; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def close(self, timeout: float = 2.0) -> None:
        """Delivers what is queued (within ``timeout`` seconds), stops the worker, closes the sink."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("%s hook: worker still busy after %.1fs; abandoning it", self.name, timeout)
                return
        self._close_sink()

    def __enter__(self) -> Hook:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- worker side -------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._queue and not self._closing:
                    self._cond.wait(self.poll_s)
                if not self._queue:
                    if self._closing:
                        return
                    item = None
                else:
                    item = self._queue.popleft()
                    self._busy = True
            try:
                if item is None:
                    self._idle()
                elif self._deliver(item) is not False:
                    self._count(delivered=1)
                else:
                    self._count(failed=1)
            except Exception as e:  # noqa: BLE001 - a sink error must not kill the worker
                self._count(failed=1, error=f"{type(e).__name__}: {e}")
                self._log_once(type(e).__name__, "%s hook: %s: %s (logged once)", self.name, type(e).__name__, e)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _count(self, *, delivered: int = 0, failed: int = 0, reconnects: int = 0, acked: int = 0,
               nacked: int = 0, unknown_acks: int = 0, link_up: bool | None = None, error: str = "") -> None:
        with self._cond:
            s = self._stats
            s.delivered += delivered
            s.failed += failed
            s.reconnects += reconnects
            s.acked += acked
            s.nacked += nacked
            s.unknown_acks += unknown_acks
            if link_up is not None:
                s.link_up = link_up
            if error:
                s.last_error = error

    def _log_once(self, key: str, msg: str, *args: Any, level: int = logging.WARNING) -> None:
        """Logs ``msg`` the first time ``key`` is seen (until :meth:`_forget` clears it)."""
        if key not in self._logged:
            self._logged.add(key)
            log.log(level, msg, *args)

    def _forget(self, key: str) -> None:
        self._logged.discard(key)

    def _deliver(self, item: HookItem) -> bool | None:
        """Delivers one frame (worker thread). Return False (or raise) when it was lost."""
        raise NotImplementedError

    def _idle(self) -> None:
        """Runs in the worker every ``poll_s`` seconds without a frame (heartbeats, reconnects)."""

    def _close_sink(self) -> None:
        """Releases the sink (after the worker stopped)."""


class LinkSequence:
    """Per-link message counter (uint16, wraps) and message builders."""

    def __init__(self) -> None:
        self.next = 0

    def take(self) -> int:
        seq, self.next = self.next, (self.next + 1) & 0xFFFF
        return seq

    def grasps(self, item: HookItem) -> protocol.Message:
        ids = item.result.track_ids
        recs = tuple(protocol.GraspRecord.from_grasp(g, None if ids is None else int(ids[g.instance]))
                     for g in item.grasps)
        return protocol.Message(protocol.MsgType.GRASPS, self.take(), item.timestamp_us, item.frame_id, recs,
                                truncated=item.total_grasps > len(recs))

    def heartbeat(self) -> protocol.Message:
        return protocol.Message(protocol.MsgType.HEARTBEAT, self.take(), time.time_ns() // 1000)

    def model(self, info) -> protocol.Message:
        """The MODEL message of :class:`~edgeseg.model_info.ModelInfo` ``info``."""
        return protocol.Message(protocol.MsgType.MODEL, self.take(), time.time_ns() // 1000, body=info.to_body())
