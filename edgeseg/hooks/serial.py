"""Serial link hook (pyserial): the binary protocol, reconnects, optional acks/heartbeats.

URLs: ``serial:///dev/ttyUSB0?baud=115200``, a bare ``/dev/ttyACM0``, or any
pyserial URL (``loop://``, ``hwgrep://0403:6001``, ``socket://host:port``,
...). The options below come from the query string and are removed before the
URL goes to pyserial; other query keys are pyserial's own.

The parts: :class:`~edgeseg.hooks.serial_link.SerialLink` (open, reconnect
with backoff, writes that cannot stall the loop),
:class:`~edgeseg.hooks.link_watch.AckTracker` (acks matched to sent sequence
numbers; refused and unknown ones counted as such) and
:class:`~edgeseg.hooks.link_watch.HeartbeatClock`. This class wires them to
the hook's worker.

A port that is absent at start does not fail: the hook starts disconnected,
logs once and keeps retrying (``require_port=1`` makes it an error instead).
While the link is down frames count as ``failed`` and ``stats.link_up`` is
False (the run's health file shows it). A write that times out (reader
stalled) loses that frame only; the next frame starts with an extra 0x00 so
the receiver resyncs at once.
"""

from __future__ import annotations

import time

from edgeseg import protocol
from edgeseg.hooks.base import Hook, HookItem, LinkSequence
from edgeseg.hooks.link_watch import AckKind, AckTracker, HeartbeatClock
from edgeseg.hooks.options import split_options
from edgeseg.hooks.serial_link import SerialLink, WriteResult

OPTIONS = {"baud": int, "ack": bool, "heartbeat_s": float, "ack_timeout_s": float, "write_timeout_s": float,
           "reconnect_max_s": float, "require_port": bool}


class SerialHook(Hook):
    """Writes each frame as a protocol message to a serial port.

    Args:
        port: Device path or pyserial URL (without this hook's options).
        baud: Baud rate.
        ack: Read ACK messages back from the controller (see ``link_ok``).
        heartbeat_s: Send a HEARTBEAT when nothing was sent for this long
            (seconds, >= 0.05); None = never.
        ack_timeout_s: In ack mode, the link counts as down when no ACK came
            for this long (seconds).
        write_timeout_s: Longest a write may block (seconds) before the frame
            is given up (a stalled reader).
        reconnect_max_s: Longest wait between reopen attempts (seconds);
            attempts start at 50 ms and double.
        require_port: Raise if the port cannot be opened now (default: start
            disconnected and keep trying).
        **opts: :class:`~edgeseg.hooks.base.Hook` options.

    Raises:
        serial.SerialException: The port does not open and ``require_port``.
    """

    name = "serial"

    def __init__(self, port: str, *, baud: int = 115200, ack: bool = False, heartbeat_s: float | None = None,
                 ack_timeout_s: float = 2.0, write_timeout_s: float = 0.5, reconnect_max_s: float = 1.0,
                 require_port: bool = False, **opts) -> None:
        super().__init__(poll_s=0.05, **opts)
        self.port_url, self.baud, self.ack = port, baud, ack
        self._heartbeat = HeartbeatClock(heartbeat_s)
        self._acks = AckTracker(ack_timeout_s)
        self._seq = LinkSequence()
        self._decoder = protocol.StreamDecoder()
        self._dirty = True  # start with a delimiter to flush the receiver's buffer
        self._announce = True  # send MODEL before the first frame of every connection
        self._link = SerialLink(port, baud=baud, write_timeout_s=write_timeout_s, reconnect_max_s=reconnect_max_s,
                                require_port=require_port)
        self._acks.reset(time.monotonic())
        self._count(link_up=self._link.connected, error="" if self._link.connected else self._link.last_error)

    @classmethod
    def from_url(cls, url: str, **opts) -> SerialHook:
        bare, q = split_options(url, OPTIONS, strict=False)
        if bare.startswith("serial://"):
            bare = bare[len("serial://"):]
            if not bare or bare.startswith("?"):
                raise ValueError(f"serial hook URL needs a device, e.g. serial:///dev/ttyUSB0, got {url!r}")
        return cls(bare, **{**q, **opts})

    @property
    def connected(self) -> bool:
        """Whether the port is open now."""
        return self._link.connected

    @property
    def port(self):
        """The open pyserial object, or None while disconnected (for loop:// and diagnostics)."""
        return self._link.port

    @property
    def link_ok(self) -> bool:
        """Port open and, in ack mode, an ACK seen within ``ack_timeout_s``."""
        return self._link.connected and (not self.ack or self._acks.alive(time.monotonic()))

    @property
    def last_ack_seq(self) -> int | None:
        return self._acks.last_seq

    @property
    def last_ack_rtt_s(self) -> float | None:
        return self._acks.last_rtt_s

    # -- worker side -------------------------------------------------------
    def _deliver(self, item: HookItem) -> bool:
        self._poll_link()
        if self._announce and self.model is not None and self._link.connected:
            self._announce = not self._send(self._seq.model(self.model))  # once per connection
        return self._send(self._seq.grasps(item))

    def _idle(self) -> None:
        self._poll_link()
        if self._link.connected and self._heartbeat.due(time.monotonic()):
            self._send(self._seq.heartbeat())

    def _send(self, msg: protocol.Message) -> bool:
        data = protocol.encode(msg)
        outcome = self._link.write(b"\x00" + data if self._dirty else data)
        if outcome is WriteResult.STALLED:
            self._dirty = True
            self._count(error=self._link.last_error)
            self._log_once("stall", "serial hook: write to %s timed out; dropping frames while the reader "
                           "is stalled (logged once)", self.port_url)
        elif outcome is WriteResult.LOST:
            self._count(link_up=False, error=self._link.last_error)
        if outcome is not WriteResult.OK:
            return False
        self._dirty = False
        now = time.monotonic()
        self._heartbeat.sent(now)
        if self.ack:
            self._acks.sent(msg.seq, now)
            self._count(link_up=self._acks.alive(now))
        return True

    def _poll_link(self) -> None:
        """Reopens a lost port when its backoff expired; reads ACKs."""
        if self._link.poll():
            self._announce = True
            self._dirty = True
            self._decoder = protocol.StreamDecoder()
            self._acks.reset(time.monotonic())
            self._forget("stall")
            self._count(reconnects=1, link_up=True)
        if not self._link.connected or not self.ack:
            return
        data = self._link.read()
        if not self._link.connected:
            self._count(link_up=False, error=self._link.last_error)
            return
        counts = {kind.value: 0 for kind in AckKind}
        for msg in self._decoder.feed(data):
            if msg.type == protocol.MsgType.ACK:
                counts[self._acks.received(msg, time.monotonic()).value] += 1
        self._count(**counts, link_up=self._acks.alive(time.monotonic()))

    def _close_sink(self) -> None:
        self._link.close()
