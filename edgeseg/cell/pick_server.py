"""The pick server (``--serve tcp://HOST:PORT``): robots ask for the next grasp and wait for the answer.

Trigger-and-reply over TCP, in the style of industrial vision sensors: the
robot program sends ``TRIGGER`` (or ``GET_NEXT``), gets one grasp with a pick
id, moves, and reports ``ACK id`` or ``REJECT id``. Spec:
``docs/pick_server.md``. Each connection speaks binary (robot-link frames,
chosen when its first byte is below 0x09: a COBS code byte or a 0x00) or
ASCII lines (anything else).

The server is a hook (the run loop hands it every frame through the usual
bounded queue) and uses the standard library's ``socketserver``: one thread
per client, so a slow or silent client never holds up another, and a client
that sends garbage gets ``BAD_REQUEST`` answers and, after
:data:`MAX_BAD_REQUESTS` in a row, a closed connection. Nothing here touches
the inference loop except :meth:`PickServer._deliver` (a lock and a notify).
"""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
import time
from urllib.parse import urlsplit

from edgeseg import protocol
from edgeseg.cell.pick_protocol import (
    MAX_LINE,
    Op,
    Reply,
    Request,
    RequestError,
    decode_request,
    encode_reply,
    format_reply,
    parse_line,
)
from edgeseg.cell.picks import Code, PickBook
from edgeseg.cell.trigger import TriggerGate
from edgeseg.hooks.base import Hook, HookItem
from edgeseg.hooks.options import split_options

log = logging.getLogger("edgeseg.cell")

OPTIONS = {"trigger": bool, "reply_timeout_s": float}
MAX_BAD_REQUESTS = 16  # consecutive unreadable requests before a client is dropped


class PickServer(Hook):
    """TCP request/reply server over a :class:`~edgeseg.cell.picks.PickBook`.

    Args:
        host: Address to listen on (``0.0.0.0`` for all interfaces).
        port: TCP port (0 = any free port; see :attr:`address`).
        trigger: Trigger mode: the loop takes a frame only when a client
            sends ``TRIGGER`` (see :func:`~edgeseg.cell.trigger.triggered_frames`).
        reply_timeout_s: Longest a ``TRIGGER`` waits for its frame before
            answering ``TIMEOUT``.
        **opts: :class:`~edgeseg.hooks.base.Hook` options (``max_grasps``
            caps the grasps kept per frame).

    Attributes:
        address: ``(host, port)`` actually bound.
        book: The picks handed out and settled.
        trigger_gate: The capture gate in trigger mode, else None.
    """

    name = "pick-server"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, trigger: bool = False, reply_timeout_s: float = 5.0,
                 **opts) -> None:
        if not isinstance(port, int) or not 0 <= port < 65536:
            raise ValueError(f"pick server port must be in 0..65535, got {port!r}")
        if not reply_timeout_s > 0:
            raise ValueError(f"reply_timeout_s must be > 0 seconds, got {reply_timeout_s!r}")
        super().__init__(**opts)
        self.book = PickBook()
        self.reply_timeout_s = reply_timeout_s
        self.trigger_gate = TriggerGate() if trigger else None
        self._server = _Server((host, port), _Client)
        self._server.owner = self
        self.address = self._server.server_address[:2]
        self._serve_thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                              name="edgeseg-pick-server", daemon=True)
        self._serve_thread.start()
        log.info("pick server on tcp://%s:%d (%s)", *self.address, "trigger mode" if trigger else "free-run")

    @classmethod
    def from_url(cls, url: str, **opts) -> PickServer:
        bare, q = split_options(url, OPTIONS)
        parts = urlsplit(bare)
        if parts.scheme != "tcp" or not parts.hostname or parts.port is None:
            raise ValueError(f"pick server URL must be tcp://HOST:PORT, got {url!r}")
        return cls(parts.hostname, parts.port, **{**opts, **q})

    @property
    def clients(self) -> int:
        """Connected clients now."""
        return len(self._server.sockets)

    # -- hook side: the run loop's frames ------------------------------------------------------------
    def _deliver(self, item: HookItem) -> None:
        records = tuple(protocol.GraspRecord.from_grasp(g) for g in item.grasps)
        self.book.publish(item.frame_id, item.timestamp_us, records, item.total_grasps)

    def _close_sink(self) -> None:
        if self.trigger_gate is not None:
            self.trigger_gate.close()
        self._server.shutdown()
        self._server.server_close()
        for sock in list(self._server.sockets):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # -- client side ---------------------------------------------------------------------------------
    def answer(self, req: Request) -> Reply:
        """The reply to one request (a client thread; may wait up to ``reply_timeout_s`` for TRIGGER)."""
        book = self.book
        if req.op == Op.TRIGGER:
            # Trigger mode: the gate takes the frame after the request, so any newer frame is the one.
            # Free-run: the first newer frame captured at or after the request.
            since_us, latest = (0 if self.trigger_gate else time.time_ns() // 1000), book.latest()
            if self.trigger_gate is not None:
                self.trigger_gate.request()
            snap = book.wait_frame(latest.generation if latest else 0, since_us, self.reply_timeout_s)
            if snap is None:
                return Reply(req.op, Code.TIMEOUT)
            code, snap, pick = book.next_pick(snap)
        elif req.op == Op.GET_NEXT:
            code, snap, pick = book.next_pick()
        elif req.op == Op.GET_ALL:
            code, snap = book.all_picks()
            if snap is None or code != Code.OK:
                return _frame_reply(req.op, code, snap)
            return Reply(req.op, code, snap.frame_id, snap.timestamp_us, snap.picks, book.pending(),
                         snap.total_grasps)
        elif req.op in (Op.ACK, Op.REJECT):
            return Reply(req.op, book.settle(req.pick_id, picked=req.op == Op.ACK), pick_id=req.pick_id)
        elif req.op == Op.STATUS:
            s, latest = book.stats, book.latest()
            status = (int(self.trigger_gate is not None), s.frames, s.handed, s.acked, s.rejected, s.unknown)
            return Reply(req.op, Code.OK, latest.frame_id if latest else 0, latest.timestamp_us if latest else 0,
                         pending=book.pending(), status=status)
        else:  # FORMAT is answered by the connection itself
            return Reply(req.op, Code.OK)
        if code != Code.OK:
            return _frame_reply(req.op, code, snap)
        pending = book.pending() if snap is book.latest() else len(snap.picks) - pick.rank - 1
        return Reply(req.op, code, snap.frame_id, snap.timestamp_us, (pick,), pending, snap.total_grasps)


def _frame_reply(op: Op, code: Code, snap) -> Reply:
    if snap is None:
        return Reply(op, code)
    return Reply(op, code, snap.frame_id, snap.timestamp_us, total_grasps=snap.total_grasps)


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    block_on_close = False
    owner: PickServer

    def __init__(self, *args, **kwargs) -> None:
        self.sockets: set[socket.socket] = set()
        super().__init__(*args, **kwargs)


class _Client(socketserver.BaseRequestHandler):
    """One connection: binary or ASCII by its first byte, then request -> reply until it closes."""

    server: _Server

    def setup(self) -> None:
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.sockets.add(self.request)
        self.bad = 0
        self.seq = 0

    def finish(self) -> None:
        self.server.sockets.discard(self.request)

    def handle(self) -> None:
        try:
            first = self.request.recv(4096)
            if first:
                (self._binary if first[0] < 0x09 else self._ascii)(first)
        except OSError:
            pass  # the client went away mid-request: only this connection ends

    def _recv(self):
        while True:
            data = self.request.recv(4096)
            if not data:
                return
            yield data

    def _bad(self) -> bool:
        """Counts one unreadable request; True when the client should be dropped."""
        self.bad += 1
        if self.bad >= MAX_BAD_REQUESTS:
            log.warning("pick server: dropping client %s after %d unreadable requests", self.client_address, self.bad)
            return True
        return False

    def _binary(self, first: bytes) -> None:
        dec = protocol.StreamDecoder()
        for data in _chain(first, self._recv()):
            errors = dec.errors
            for msg in dec.feed(data):
                try:
                    req = decode_request(msg)
                except RequestError:
                    req = None
                if req is None:
                    reply, rseq = Reply(Op.NONE, Code.BAD_REQUEST), msg.seq
                    if self._bad():
                        return
                else:
                    self.bad = 0
                    reply, rseq = self.server.owner.answer(req), req.seq
                self._send_binary(reply, rseq)
            for _ in range(dec.errors - errors):
                self._send_binary(Reply(Op.NONE, Code.BAD_REQUEST), 0)
                if self._bad():
                    return

    def _send_binary(self, reply: Reply, request_seq: int) -> None:
        self.request.sendall(encode_reply(reply, seq=self.seq, request_seq=request_seq))
        self.seq = (self.seq + 1) & 0xFFFF

    def _ascii(self, first: bytes) -> None:
        buf, tuple_form, skipping = bytearray(), False, False
        for data in _chain(first, self._recv()):
            buf += data
            while True:
                nl = buf.find(b"\n")
                if nl < 0:
                    if len(buf) > MAX_LINE:  # an endless line: answer once, skip to its end
                        buf.clear()
                        if not skipping:
                            skipping = True
                            self.request.sendall(format_reply(Reply(Op.NONE, Code.BAD_REQUEST), tuple_form=tuple_form)
                                                 .encode())
                            if self._bad():
                                return
                    break
                line, buf = bytes(buf[:nl]), buf[nl + 1:]
                if skipping:
                    skipping = False
                    continue
                try:
                    req = parse_line(line)
                except RequestError:
                    if not line.strip():
                        continue
                    self.request.sendall(format_reply(Reply(Op.NONE, Code.BAD_REQUEST), tuple_form=tuple_form)
                                         .encode())
                    if self._bad():
                        return
                    continue
                self.bad = 0
                if req.op == Op.FORMAT:
                    tuple_form = req.arg == "TUPLE"
                reply = self.server.owner.answer(req)
                self.request.sendall(format_reply(reply, tuple_form=tuple_form).encode())


def _chain(first: bytes, rest):
    yield first
    yield from rest
