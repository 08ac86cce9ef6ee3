"""Link liveness for the serial hook: acknowledgement tracking and the heartbeat clock.

Both are small state machines with no I/O: the hook feeds them what it sent
and what came back, and asks them whether the link looks alive and whether a
heartbeat is due.
"""

from __future__ import annotations

import enum
from collections import OrderedDict

from edgeseg import protocol

MIN_HEARTBEAT_S = 0.05  # below this, heartbeats would crowd out frames on a 115200 baud link


class AckKind(enum.Enum):
    """How one received ACK was counted."""

    OK = "acked"  # status 0 for a sequence number we sent
    REFUSED = "nacked"  # non-zero status (controller busy / refused) for a sequence number we sent
    UNKNOWN = "unknown_acks"  # a sequence number we never sent (or sent too long ago to remember)


class AckTracker:
    """Remembers send times of recent messages and matches the controller's ACKs to them.

    Args:
        timeout_s: The link counts as down when no ACK (of any status) came
            for this long.
        remember: Sent sequence numbers kept for matching (older ones count
            as unknown when acked).

    Attributes:
        last_seq: Host sequence number of the latest matched ACK.
        last_rtt_s: Round trip of that message, seconds.
        last_status: Status byte of the latest ACK.
    """

    def __init__(self, timeout_s: float = 2.0, *, remember: int = 256) -> None:
        if not timeout_s > 0:
            raise ValueError(f"ack_timeout_s must be > 0 seconds, got {timeout_s!r}")
        self.timeout_s, self.remember = timeout_s, remember
        self._sent: OrderedDict[int, float] = OrderedDict()
        self._last_ack_at = 0.0
        self.last_seq: int | None = None
        self.last_rtt_s: float | None = None
        self.last_status: int | None = None

    def reset(self, now: float) -> None:
        """A (re)opened link: forget what was sent, give the controller ``timeout_s`` to answer."""
        self._sent.clear()
        self._last_ack_at = now

    def sent(self, seq: int, now: float) -> None:
        """Records that message ``seq`` went out at ``now`` (monotonic seconds)."""
        self._sent[seq] = now
        self._sent.move_to_end(seq)
        while len(self._sent) > self.remember:
            self._sent.popitem(last=False)

    def received(self, msg: protocol.Message, now: float) -> AckKind:
        """Counts one ACK message from the controller."""
        self._last_ack_at = now
        self.last_status = msg.ack_status
        sent = self._sent.pop(msg.acked_seq, None)
        if sent is None:
            return AckKind.UNKNOWN
        self.last_seq, self.last_rtt_s = msg.acked_seq, now - sent
        return AckKind.OK if msg.ack_status == 0 else AckKind.REFUSED

    def alive(self, now: float) -> bool:
        """An ACK came within ``timeout_s``."""
        return now - self._last_ack_at < self.timeout_s


class HeartbeatClock:
    """Says when a HEARTBEAT is due: ``period_s`` after the last message of any type.

    Args:
        period_s: Seconds of silence before a heartbeat; None = never. At
            least :data:`MIN_HEARTBEAT_S`.
    """

    def __init__(self, period_s: float | None) -> None:
        if period_s is not None and not period_s >= MIN_HEARTBEAT_S:
            raise ValueError(f"heartbeat_s must be >= {MIN_HEARTBEAT_S} seconds (or unset), got {period_s!r}")
        self.period_s = period_s
        self._last = 0.0

    def sent(self, now: float) -> None:
        """Any message went out at ``now``."""
        self._last = now

    def due(self, now: float) -> bool:
        return self.period_s is not None and now - self._last >= self.period_s
