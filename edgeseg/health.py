"""A heartbeat file the operator (or a watchdog) can read while ``edgeseg run`` streams.

The file is small JSON, replaced atomically (write to a temporary name, then
``os.replace``), so a reader never sees half of it. It is rewritten at most
every ``interval_s`` seconds, on the first frame and on exit, which keeps the
cost off the frame loop. A stale ``updated_unix`` means the loop is stuck;
``failures`` growing means frames are being skipped (the log says why)::

    {"status": "running", "pid": 812, "frames": 5210, "failures": 0,
     "last_frame": "camera0_005209", "last_instances": 3, "last_total_ms": 41.7,
     "last_error": null, "errors": {}, "dropped": 0, "reason": null,
     "started_unix": 1764057600.1, "updated_unix": 1764057781.4,
     "hooks": {"serial:///dev/ttyUSB0": {"delivered": 5100, "dropped": 110, "failed": 0, "link_up": true, ...}}}

``hooks`` holds each robot hook's counters (:class:`edgeseg.hooks.HookStats`)
keyed by its URL: ``link_up: false`` means the serial port is absent or lost
(or, in ack mode, the controller stopped acknowledging).

A write that fails (a full disk, a read-only mount) never stops the loop:
the temporary file is removed, the previous heartbeat stays whole, the
failure is counted in ``write_failures`` and logged once by the caller.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from edgeseg.safe_write import write_atomic


@dataclass(frozen=True)
class HealthStatus:
    """What the heartbeat file holds.

    Attributes:
        status: ``running`` while streaming; ``stopped`` after the loop ended
            (source finished or a stop signal); ``failed`` when the source
            kept failing (``reason`` says why).
        pid: Process id of the runner.
        frames: Frames segmented successfully so far.
        failures: Frames skipped (unreadable, or rejected by the model).
        last_frame: Name of the last frame seen.
        last_instances: Instances found in the last good frame.
        last_total_ms: Preprocess + inference + decode time of the last good frame, ms.
        last_error: Why the last skipped frame was skipped.
        errors: Per-frame failures of every stage, counted by kind
            (``read``, ``infer:ValueError``, ``sink:overlay:OSError`` ...).
        dropped: Live frames dropped because the pipeline was busy.
        reason: Why the run ended (``source ended``, ``SIGTERM``, the source error).
        started_unix: When the runner started, seconds since the epoch.
        updated_unix: When this status was written, seconds since the epoch.
        hooks: Hook URL -> its counters when the status was written
            (delivered, dropped, failed, link_up, ...).
    """

    status: str = "running"
    pid: int = field(default_factory=os.getpid)
    frames: int = 0
    failures: int = 0
    last_frame: str | None = None
    last_instances: int | None = None
    last_total_ms: float | None = None
    last_error: str | None = None
    errors: dict[str, int] = field(default_factory=dict)
    dropped: int = 0
    reason: str | None = None
    started_unix: float = field(default_factory=time.time)
    updated_unix: float = 0.0
    hooks: dict[str, dict[str, Any]] = field(default_factory=dict)


class Heartbeat:
    """Keeps a :class:`HealthStatus` up to date in a JSON file.

    Args:
        path: File to write (its directory is created if missing); ``None``
            keeps the counts without writing anything.
        interval_s: Minimum seconds between two writes while running.
    """

    def __init__(self, path: str | os.PathLike | None, *, interval_s: float = 1.0) -> None:
        if interval_s < 0:
            raise ValueError(f"interval_s must be >= 0 seconds, got {interval_s}")
        self.path = Path(path) if path is not None else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.interval_s = interval_s
        self.status = HealthStatus()
        self.write_failures = 0
        self.last_write_error: OSError | None = None
        self._written = float("-inf")
        self._lock = threading.Lock()
        self._hooks: Mapping[str, Any] = {}

    def watch_hooks(self, hooks: Mapping[str, Any]) -> None:
        """Reports these hooks' ``stats`` (URL -> hook) in every write."""
        self._hooks = dict(hooks)

    def frame_ok(self, name: str, instances: int, total_ms: float) -> None:
        """Records a segmented frame."""
        s = self.status
        self._update(replace(s, frames=s.frames + 1, last_frame=name, last_instances=instances, last_total_ms=total_ms))

    def frame_failed(self, name: str, error: str) -> None:
        """Records a skipped frame and why."""
        self._update(replace(self.status, failures=self.status.failures + 1, last_frame=name, last_error=error))

    def counters(self, errors: dict[str, int], dropped: int) -> None:
        """Records the per-kind error counts and live drops (written with the next update)."""
        self.status = replace(self.status, errors=dict(errors), dropped=dropped)

    def close(self, status: str = "stopped", reason: str | None = None) -> None:
        """Writes the final status (``stopped`` or ``failed``) and why the run ended."""
        self._update(replace(self.status, status=status, reason=reason), force=True)

    def alive(self) -> None:
        """Rewrites the heartbeat (at most once per interval) while no frame comes: the loop is
        waiting on purpose (trigger mode), not stuck."""
        self._update(self.status)

    def _update(self, status: HealthStatus, *, force: bool = False) -> None:
        with self._lock:  # the reader thread (alive) and the sink thread (frames) both write
            self.status = status
            now = time.monotonic()
            if self.path is not None and (force or now - self._written >= self.interval_s):
                self._written = now
                hooks = {url: asdict(hook.stats) for url, hook in self._hooks.items()}
                self._write(replace(status, updated_unix=time.time(), hooks=hooks))

    def _write(self, status: HealthStatus) -> None:
        try:
            write_atomic(self.path, (json.dumps(asdict(status)) + "\n").encode())
        except OSError as exc:  # full disk, read-only mount: keep the last good heartbeat
            self.write_failures += 1
            self.last_write_error = exc
