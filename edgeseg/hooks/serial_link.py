"""A serial port that may be absent, vanish and come back: open, reopen with backoff, write, read.

The port opens through pyserial's own ``serial_for_url`` (device paths and
every URL scheme pyserial knows: ``loop://``, ``hwgrep://VID:PID``,
``socket://host:port`` ...). When it cannot be opened (nothing plugged in at
start) or a write/read fails (USB re-plug, pty closed), the link closes, logs
once per outage, and retries with exponential backoff (50 ms doubling up to
``reconnect_max_s``) each time :meth:`SerialLink.poll` is called.

Hand-written part: :meth:`SerialLink.write` writes a plain POSIX port's fd
itself, because pyserial's POSIX ``write`` busy-loops on EAGAIN when the
reader stalls (a pty or USB CDC port that reports writable but refuses bytes)
and would burn the core the inference loop needs.
"""

from __future__ import annotations

import enum
import logging
import os
import time

log = logging.getLogger("edgeseg.hooks")

BACKOFF_START_S = 0.05


class WriteResult(enum.Enum):
    """What became of one write."""

    OK = "ok"
    STALLED = "stalled"  # the reader did not take the bytes within write_timeout_s; the link stays open
    LOST = "lost"  # the port failed and was closed; it is reopened with backoff
    DOWN = "down"  # the link was down, nothing written


def _serial():
    try:
        import serial  # noqa: PLC0415 - runtime dependency, imported when a serial link is opened
    except ImportError:
        raise ImportError("the serial hook needs pyserial: pip install pyserial") from None
    return serial


class SerialLink:
    """One serial port, kept open when it can be.

    Args:
        url: Device path or pyserial URL (with pyserial's own query options only).
        baud: Baud rate.
        write_timeout_s: Longest a write may block before it is given up.
        reconnect_max_s: Longest wait between reopen attempts (seconds).
        require_port: Raise now if the port does not open (False: start
            down, log once, keep trying).

    Raises:
        serial.SerialException: The port does not open and ``require_port``.
    """

    def __init__(self, url: str, *, baud: int = 115200, write_timeout_s: float = 0.5, reconnect_max_s: float = 1.0,
                 require_port: bool = False) -> None:
        self.serial = _serial()
        self.url, self.baud = url, baud
        self.write_timeout_s, self.reconnect_max_s = write_timeout_s, reconnect_max_s
        self.port = None
        self.last_error = ""
        self._retry_at, self._backoff = 0.0, BACKOFF_START_S
        self._down_since: float | None = None
        try:
            self.port = self._open()
        except (self.serial.SerialException, OSError) as e:
            if require_port:
                raise
            self._down(e, at_start=True)

    @property
    def connected(self) -> bool:
        """Whether the port is open now."""
        return self.port is not None

    def _open(self):
        return self.serial.serial_for_url(self.url, baudrate=self.baud, timeout=0, write_timeout=self.write_timeout_s)

    def poll(self) -> bool:
        """Reopens a down link when its backoff expired; True when it just came back."""
        if self.port is not None or time.monotonic() < self._retry_at:
            return False
        try:
            self.port = self._open()
        except (self.serial.SerialException, OSError) as e:
            self.last_error = str(e)
            self._backoff = min(self._backoff * 2, self.reconnect_max_s)
            self._retry_at = time.monotonic() + self._backoff
            return False
        down = time.monotonic() - (self._down_since or time.monotonic())
        self._down_since, self._backoff = None, BACKOFF_START_S
        log.info("serial link %s up after %.2fs down", self.url, down)
        return True

    def write(self, data: bytes) -> WriteResult:
        """Writes all of ``data`` (or fails it within ``write_timeout_s``)."""
        if self.port is None:
            return WriteResult.DOWN
        try:
            self._write(data)
        except self.serial.SerialTimeoutException:
            self.last_error = "write timeout (reader stalled?)"
            return WriteResult.STALLED
        except (self.serial.SerialException, OSError) as e:
            self._down(e)
            return WriteResult.LOST
        return WriteResult.OK

    def read(self) -> bytes:
        """What arrived so far (never blocks); b"" when down or when the read failed (link then down)."""
        if self.port is None:
            return b""
        try:
            return self.port.read(4096)
        except (self.serial.SerialException, OSError) as e:
            self._down(e)
            return b""

    def _write(self, data: bytes) -> None:
        port = self.port
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
                raise self.serial.SerialException(f"write failed: {e}") from e
            left = deadline - time.monotonic()
            if left <= 0:
                raise self.serial.SerialTimeoutException("Write timeout")
            time.sleep(min(left, 0.005))

    def _down(self, error: Exception, *, at_start: bool = False) -> None:
        """Closes the port, logs the outage once, schedules the first retry."""
        self.close()
        self.last_error = f"link down: {error}"
        if self._down_since is None:
            self._down_since = time.monotonic()
            what = "not available at start" if at_start else "lost"
            log.warning("serial link %s %s (%s); running without it, retrying every <= %.1fs (logged once)",
                        self.url, what, error, self.reconnect_max_s)
        self._backoff = BACKOFF_START_S
        self._retry_at = time.monotonic() + self._backoff

    def close(self) -> None:
        """Closes the port (the link stays down until :meth:`poll` reopens it)."""
        if self.port is not None:
            try:
                self.port.close()
            except (self.serial.SerialException, OSError):
                pass
            self.port = None
