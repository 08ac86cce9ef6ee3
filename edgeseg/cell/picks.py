"""The pick book: the latest frame's grasps with ids, handed out one at a time, acked or rejected.

Shared by the robot-facing servers (TCP pick server, Modbus): the run loop
publishes each frame's grasps (best first); a robot asks for the next pick,
gets a grasp with a pick id, and reports it picked (ACK) or failed (REJECT).
Pick ids are a running uint32 counter over all published grasps, starting at
1 (0 means "no pick"); within one frame they are consecutive in rank order,
so a frame's picks are ``first_id, first_id + 1, ...``.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import IntEnum

from edgeseg import protocol


class Code(IntEnum):
    """Answer codes (the same numbers in binary and ASCII replies, and in Modbus)."""

    OK = 0
    NO_GRASP = 1  # the latest frame holds no (more) grasp to hand out
    TIMEOUT = 2  # no new frame came within the reply timeout (TRIGGER)
    NO_FRAME = 3  # nothing published yet
    UNKNOWN_ID = 4  # ACK / REJECT of a pick id never handed out (or too old)
    BAD_REQUEST = 5  # unreadable request


@dataclass(frozen=True)
class Pick:
    """One grasp with its pick id.

    Attributes:
        id: Pick id (uint32, >= 1).
        rank: Position in its frame's grasps, 0 = best.
        record: The grasp as on the wire (float32 values).
    """

    id: int
    rank: int
    record: protocol.GraspRecord


@dataclass(frozen=True)
class Snapshot:
    """One published frame.

    Attributes:
        generation: Publication counter, 1 for the first frame.
        frame_id: The frame's id.
        timestamp_us: Its capture time, microseconds since the Unix epoch.
        picks: Its grasps, best first (at most ``max_grasps``).
        total_grasps: Grasps the frame had before truncation.
    """

    generation: int
    frame_id: int
    timestamp_us: int
    picks: tuple[Pick, ...]
    total_grasps: int


@dataclass
class BookStats:
    """Counters of a pick book."""

    frames: int = 0
    handed: int = 0
    acked: int = 0
    rejected: int = 0
    unknown: int = 0


@dataclass
class PickBook:
    """Thread-safe latest-frame store with hand-out state.

    Attributes:
        remember: Handed-out picks kept for ACK/REJECT matching.
    """

    remember: int = 1024
    stats: BookStats = field(default_factory=BookStats)
    _latest: Snapshot | None = None
    _next_id: int = 1
    _handed_upto: int = 0  # picks of the latest frame handed out (rank < this)
    _open: OrderedDict = field(default_factory=OrderedDict)  # pick id -> Pick, handed and not yet settled
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def publish(self, frame_id: int, timestamp_us: int, records: tuple[protocol.GraspRecord, ...],
                total_grasps: int | None = None) -> Snapshot:
        """Makes a new frame the latest; its picks get fresh ids; wakes waiters."""
        with self._cond:
            picks = tuple(Pick((self._next_id + i) & 0xFFFFFFFF or 1, i, r) for i, r in enumerate(records))
            self._next_id = (self._next_id + len(records)) & 0xFFFFFFFF or 1
            gen = (self._latest.generation if self._latest else 0) + 1
            self._latest = Snapshot(gen, frame_id, timestamp_us, picks,
                                    len(records) if total_grasps is None else total_grasps)
            self._handed_upto = 0
            self.stats.frames += 1
            self._cond.notify_all()
            return self._latest

    def latest(self) -> Snapshot | None:
        with self._cond:
            return self._latest

    def wait_frame(self, after_generation: int, after_us: int, timeout: float) -> Snapshot | None:
        """The first frame with a generation above ``after_generation`` captured at or after ``after_us``.

        Returns None when none came within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                s = self._latest
                if s is not None and s.generation > after_generation and s.timestamp_us >= after_us:
                    return s
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def next_pick(self, snapshot: Snapshot | None = None) -> tuple[Code, Snapshot | None, Pick | None]:
        """Hands out the best not-yet-handed grasp of the latest frame (or of ``snapshot`` if still latest)."""
        with self._cond:
            s = self._latest
            if s is None:
                return Code.NO_FRAME, None, None
            if snapshot is not None and snapshot.generation != s.generation:
                s = snapshot  # a newer frame arrived meanwhile: the trigger's own frame still answers
                upto = 0
            else:
                upto = self._handed_upto
            if upto >= len(s.picks):
                return Code.NO_GRASP, s, None
            pick = s.picks[upto]
            if s is self._latest:
                self._handed_upto = upto + 1
            self._open[pick.id] = pick
            while len(self._open) > self.remember:
                self._open.popitem(last=False)
            self.stats.handed += 1
            return Code.OK, s, pick

    def all_picks(self) -> tuple[Code, Snapshot | None]:
        """Every grasp of the latest frame (each may then be ACKed / REJECTed); hand-out order unchanged."""
        with self._cond:
            s = self._latest
            if s is None:
                return Code.NO_FRAME, None
            if not s.picks:
                return Code.NO_GRASP, s
            for p in s.picks:
                self._open[p.id] = p
                self._open.move_to_end(p.id)
            while len(self._open) > self.remember:
                self._open.popitem(last=False)
            return Code.OK, s

    def settle(self, pick_id: int, *, picked: bool) -> Code:
        """ACK (``picked``) or REJECT one handed-out pick."""
        with self._cond:
            if self._open.pop(pick_id, None) is None:
                self.stats.unknown += 1
                return Code.UNKNOWN_ID
            if picked:
                self.stats.acked += 1
            else:
                self.stats.rejected += 1
            return Code.OK

    def pending(self) -> int:
        """Grasps of the latest frame not handed out yet."""
        with self._cond:
            return 0 if self._latest is None else len(self._latest.picks) - self._handed_upto
