"""Serial link hook (pyserial): the binary protocol, reconnects, optional acks/heartbeats.

URLs: ``serial:///dev/ttyUSB0?baud=115200``, a bare ``/dev/ttyACM0``, or any
pyserial URL (``loop://``, ``spy://...``, ``socket://host:port``, ...). The
options below come from the query string and are removed before the URL goes
to pyserial; other query keys are pyserial's own.

When the port vanishes (USB re-plug, pty closed) writes fail; the hook closes
it, logs once, drops frames (counted in ``stats.failed``) and retries opening
with exponential backoff, while inference keeps running. A write that times
out (reader stalled) loses that frame only; the next frame starts with an
extra 0x00 so the receiver resyncs at once.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict

from edgeseg import protocol
from edgeseg.hooks.base import Hook, HookItem, LinkSequence
from edgeseg.hooks.options import split_options

OPTIONS = {"baud": int, "ack": bool, "heartbeat_s": float, "ack_timeout_s": float, "write_timeout_s": float,
           "reconnect_max_s": float, "require_port": bool}


def _serial():
    try:
        import serial  # noqa: PLC0415 - optional dependency, imported when a serial hook is opened
    except ImportError:
        raise ImportError("the serial hook needs pyserial: pip install pyserial") from None
    return serial


class SerialHook(Hook):
    """Writes each frame as a protocol message to a serial port.

    Args:
        port: Device path or pyserial URL (without this hook's options).
        baud: Baud rate.
        ack: Read ACK messages back from the controller (see ``link_ok``).
        heartbeat_s: Send a HEARTBEAT when nothing was sent for this long
            (seconds); None = never.
        ack_timeout_s: In ack mode, the link counts as down when no ACK came
            for this long (seconds).
        write_timeout_s: Longest a write may block (seconds) before the frame
            is given up (a stalled reader).
        reconnect_max_s: Longest wait between reopen attempts (seconds);
            attempts start at 50 ms and double.
        require_port: Raise if the port cannot be opened now (False: start
            disconnected and keep trying).
        **opts: :class:`~edgeseg.hooks.base.Hook` options.

    Raises:
        serial.SerialException: The port does not open and ``require_port``.
    """

    name = "serial"

    def __init__(self, port: str, *, baud: int = 115200, ack: bool = False, heartbeat_s: float | None = None,
                 ack_timeout_s: float = 2.0, write_timeout_s: float = 0.5, reconnect_max_s: float = 1.0,
                 require_port: bool = True, **opts) -> None:
        super().__init__(poll_s=0.05, **opts)
        self._serial_mod = _serial()
        self.port_url, self.baud, self.ack = port, baud, ack
        self.heartbeat_s, self.ack_timeout_s = heartbeat_s, ack_timeout_s
        self.write_timeout_s, self.reconnect_max_s = write_timeout_s, reconnect_max_s
        self._seq = LinkSequence()
        self._decoder = protocol.StreamDecoder()
        self._sent_at: OrderedDict[int, float] = OrderedDict()  # seq -> monotonic send time
        self.last_ack_seq: int | None = None
        self.last_ack_rtt_s: float | None = None
        self._last_ack_at = self._last_send_at = time.monotonic()
        self._port = None
        self._dirty = True  # start with a delimiter to flush the receiver's buffer
        self._retry_at, self._backoff, self._down_since = 0.0, 0.05, None
        try:
            self._port = self._open()
        except (self._serial_mod.SerialException, OSError) as e:
            if require_port:
                raise
            self._link_lost(e)
        self._start()

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
        return self._port is not None

    @property
    def port(self):
        """The open pyserial object, or None while disconnected (for loop:// and diagnostics)."""
        return self._port

    @property
    def link_ok(self) -> bool:
        """Port open and, in ack mode, an ACK seen within ``ack_timeout_s``."""
        if self._port is None:
            return False
        return not self.ack or time.monotonic() - self._last_ack_at < self.ack_timeout_s

    def _open(self):
        return self._serial_mod.serial_for_url(self.port_url, baudrate=self.baud, timeout=0,
                                               write_timeout=self.write_timeout_s)

    # -- worker side -------------------------------------------------------
    def _deliver(self, item: HookItem) -> bool:
        self._poll_link()
        if self._port is None:
            return False
        return self._send(self._seq.grasps(item))

    def _idle(self) -> None:
        self._poll_link()
        if self._port is not None and self.heartbeat_s is not None \
                and time.monotonic() - self._last_send_at >= self.heartbeat_s:
            self._send(self._seq.heartbeat())

    def _send(self, msg: protocol.Message) -> bool:
        data = protocol.encode(msg)
        if self._dirty:
            data = b"\x00" + data
        try:
            self._write(data)
        except self._serial_mod.SerialTimeoutException:
            self._dirty = True
            self._count(error="write timeout (reader stalled?)")
            self._log_once("stall", "serial hook: write to %s timed out; dropping frames while the reader "
                           "is stalled (logged once)", self.port_url)
            return False
        except (self._serial_mod.SerialException, OSError) as e:
            self._link_lost(e)
            return False
        self._dirty = False
        self._last_send_at = time.monotonic()
        if self.ack:
            self._sent_at[msg.seq] = self._last_send_at
            while len(self._sent_at) > 256:
                self._sent_at.popitem(last=False)
        return True

    def _write(self, data: bytes) -> None:
        """Writes all of ``data`` within ``write_timeout_s`` or raises SerialTimeoutException.

        pyserial's POSIX ``write`` busy-loops on EAGAIN (a pty or USB CDC port
        whose reader stalled reports writable but refuses bytes), burning a
        core the inference loop needs; for plain POSIX ports this writes the
        fd directly and sleeps between attempts. Other ports (loop://,
        socket://, spy://) use pyserial's write with its write_timeout.
        """
        port = self._port
        if type(port).__module__ != "serial.serialposix":
            port.write(data)
            return
        view, deadline = memoryview(data), time.monotonic() + self.write_timeout_s
        while view:
            try:
                view = view[os.write(port.fd, view):]
                continue
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as e:
                raise self._serial_mod.SerialException(f"write failed: {e}") from e
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._serial_mod.SerialTimeoutException("Write timeout")
            time.sleep(min(left, 0.005))

    def _poll_link(self) -> None:
        """Reopens a lost port when its backoff expired; reads ACKs."""
        if self._port is None:
            if time.monotonic() >= self._retry_at:
                self._try_reopen()
            return
        if not self.ack:
            return
        try:
            data = self._port.read(4096)
        except (self._serial_mod.SerialException, OSError) as e:
            self._link_lost(e)
            return
        for msg in self._decoder.feed(data):
            if msg.type == protocol.MsgType.ACK:
                now = time.monotonic()
                self._last_ack_at, self.last_ack_seq = now, msg.acked_seq
                sent = self._sent_at.get(msg.acked_seq)
                self.last_ack_rtt_s = now - sent if sent is not None else None
                self._count(acked=1)

    def _link_lost(self, error: Exception) -> None:
        self._close_port()
        self._down_since = self._down_since or time.monotonic()
        self._backoff = 0.05
        self._retry_at = time.monotonic() + self._backoff
        self._count(error=f"link lost: {error}")
        self._log_once("down", "serial hook: %s lost (%s); reconnecting in the background", self.port_url, error)

    def _try_reopen(self) -> None:
        try:
            self._port = self._open()
        except (self._serial_mod.SerialException, OSError):
            self._backoff = min(self._backoff * 2, self.reconnect_max_s)
            self._retry_at = time.monotonic() + self._backoff
            return
        down = time.monotonic() - (self._down_since or time.monotonic())
        self._down_since, self._dirty = None, True
        self._last_ack_at = time.monotonic()
        self._decoder = protocol.StreamDecoder()
        self._forget("down")
        self._count(reconnects=1)
        self._log_once("up", "serial hook: %s back after %.2fs", self.port_url, down, level=20)
        self._forget("up")

    def _close_port(self) -> None:
        if self._port is not None:
            try:
                self._port.close()
            except (self._serial_mod.SerialException, OSError):
                pass
            self._port = None

    def _close_sink(self) -> None:
        self._close_port()
