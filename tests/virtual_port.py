"""A virtual serial port (POSIX pty pair) that plays the controller: for tests and bench-top demos.

The hook opens a stable path (a symlink to the pty's slave side) like a real
``/dev/ttyUSB0``; this object holds the master side, collects and decodes
what arrives, can send ACKs back, and can be unplugged and plugged back in
(a new pty behind the same path), as a USB re-plug does.

Example::

    port = VirtualSerialPort("/tmp/edgeseg-tty")
    hook = open_hook(f"serial://{port.path}")
    hook(result, grasps)
    messages = port.read_messages(1, timeout=2.0)
"""

from __future__ import annotations

import os
import select
import time
import tty

from edgeseg import protocol


class VirtualSerialPort:
    """A pty pair behind a symlink; the master side is the simulated controller.

    Args:
        path: Symlink to create for the slave side (replaced if present).
        auto_ack: Answer every decoded GRASPS/HEARTBEAT with an ACK.

    Attributes:
        received: Every byte read from the link, in order (across re-plugs).
        messages: Every message decoded so far.
        decoder: The stream decoder (its ``errors`` counts dropped frames).
    """

    def __init__(self, path: str, *, auto_ack: bool = False) -> None:
        self.path = path
        self.auto_ack = auto_ack
        self.received = bytearray()
        self.messages: list[protocol.Message] = []
        self.decoder = protocol.StreamDecoder()
        self._ack_seq = 0
        self._master = self._slave = None
        self.plug()

    def plug(self) -> None:
        """Creates a new pty pair and points :attr:`path` at its slave side."""
        if self._master is not None:
            raise RuntimeError("already plugged in")
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        tty.setraw(self._master)
        os.set_blocking(self._master, False)
        tmp = f"{self.path}.tmp{os.getpid()}"
        os.symlink(os.ttyname(self._slave), tmp)
        os.replace(tmp, self.path)

    def unplug(self) -> None:
        """Closes the pty pair and removes :attr:`path`; the hook's writes start failing."""
        if self._master is None:
            return
        os.close(self._master)
        os.close(self._slave)
        self._master = self._slave = None
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    close = unplug

    def read(self, timeout: float = 0.0) -> bytes:
        """Reads what arrives within ``timeout`` seconds (at least what is buffered now)."""
        if self._master is None:
            return b""
        deadline = time.monotonic() + timeout
        out = bytearray()
        while True:
            ready, _, _ = select.select([self._master], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            try:
                chunk = os.read(self._master, 65536)
            except (BlockingIOError, OSError):
                break
            if not chunk:
                break
            out += chunk
        self.received += out
        for msg in self.decoder.feed(bytes(out)):
            self.messages.append(msg)
            if self.auto_ack and msg.type in (protocol.MsgType.GRASPS, protocol.MsgType.HEARTBEAT):
                self.send_ack(msg.seq)
        return bytes(out)

    def read_messages(self, count: int, timeout: float) -> list[protocol.Message]:
        """Reads until at least ``count`` messages were decoded in total or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            self.read(min(0.05, max(0.0, deadline - time.monotonic())))
        return self.messages

    def write(self, data: bytes) -> None:
        """Sends bytes to the hook's side (e.g. ACKs)."""
        if self._master is None:
            raise RuntimeError("unplugged")
        os.write(self._master, data)

    def send_ack(self, acked_seq: int, status: int = 0) -> None:
        """Sends one ACK message for host sequence number ``acked_seq``."""
        self.write(protocol.encode(protocol.Message(protocol.MsgType.ACK, self._ack_seq, time.time_ns() // 1000,
                                                    acked_seq=acked_seq, ack_status=status)))
        self._ack_seq = (self._ack_seq + 1) & 0xFFFF

    def __enter__(self) -> VirtualSerialPort:
        return self

    def __exit__(self, *exc) -> None:
        self.unplug()
