"""Per-frame failures of every stage, counted by kind and logged once per kind."""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("edgeseg.run")


class FailureLog:
    """Counts failures by kind (``read``, ``infer:ValueError``, ``sink:overlay:OSError`` ...).

    The first failure of each kind is logged with the frame and the error;
    later ones of the same kind are only counted (a camera that fails every
    frame must not flood the journal). Thread-safe: every stage reports here.
    """

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def record(self, kind: str, frame: str, error: BaseException | str) -> None:
        """Counts one failure of ``kind`` on ``frame``."""
        text = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error)
        with self._lock:
            first = kind not in self._counts
            self._counts[kind] = self._counts.get(kind, 0) + 1
        if first:
            log.error("%s failed on frame %s: %s (further %r failures are counted, not logged)", kind, frame, text, kind)

    @staticmethod
    def kind(stage: str, error: BaseException) -> str:
        """The kind string of ``error`` raised in ``stage`` (``infer:ValueError``)."""
        return f"{stage}:{type(error).__name__}"

    def counts(self) -> dict[str, int]:
        """A snapshot: kind -> count."""
        with self._lock:
            return dict(self._counts)

    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())
