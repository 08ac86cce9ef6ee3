"""Pick-server requests and replies: binary (the robot-link frame, docs/protocol.md) and ASCII lines.

Spec with byte dumps and example exchanges: ``docs/pick_server.md``. Binary
requests and replies are protocol messages of type REQUEST (4) and REPLY (5):
the same header, CRC and COBS framing, the same grasp records; their fields
follow the records as a fixed body. ASCII requests are one line each
(``GET_NEXT``, ``ACK 17``); replies are one line, or several for ``GET_ALL``.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from enum import IntEnum

from edgeseg import protocol
from edgeseg.cell.picks import Code, Pick

REQUEST_BODY = struct.Struct("<BBI")  # op reserved pick_id
REPLY_BODY = struct.Struct("<BBHIHH")  # op code request_seq first_id pending total_grasps
STATUS_BODY = struct.Struct("<BIIIII")  # mode frames handed acked rejected unknown
MAX_LINE = 256  # longest accepted ASCII request, bytes


class Op(IntEnum):
    """Requests."""

    NONE = 0  # in a BAD_REQUEST reply: the request could not be read
    TRIGGER = 1  # take (trigger mode) or wait for a new frame, then answer as GET_NEXT
    GET_NEXT = 2  # the best grasp of the latest frame not handed out yet
    GET_ALL = 3  # every grasp of the latest frame
    ACK = 4  # pick id was picked
    REJECT = 5  # pick id failed
    STATUS = 6  # counters
    FORMAT = 7  # ASCII only: FORMAT LINE | FORMAT TUPLE


class Coord(IntEnum):
    """Which coordinates an ASCII pick carries (the best the calibration gives)."""

    P = 0  # image: x = u, y = v (pixels), z = 0, yaw = angle (rad), width = width_px
    C = 1  # camera frame: metres, yaw = image angle, width = width_m
    R = 2  # robot base frame: metres, yaw about base +z, width = width_m


@dataclass(frozen=True)
class Request:
    """One decoded request.

    Attributes:
        op: What is asked.
        pick_id: For ACK / REJECT.
        seq: The client's sequence number (binary; echoed in the reply).
        arg: For FORMAT: ``"LINE"`` or ``"TUPLE"``.
    """

    op: Op
    pick_id: int = 0
    seq: int = 0
    arg: str = ""


@dataclass(frozen=True)
class Reply:
    """One answer.

    Attributes:
        op: The request it answers.
        code: :class:`~edgeseg.cell.picks.Code`.
        frame_id: Frame the grasps come from (0 when none).
        timestamp_us: That frame's capture time (0 when none).
        picks: Grasps handed out (GET_NEXT/TRIGGER: at most one; GET_ALL: all).
        pending: Grasps of that frame still not handed out.
        total_grasps: Grasps the frame had before ``max_grasps`` truncation.
        status: For STATUS: ``(mode, frames, handed, acked, rejected, unknown)``.
        pick_id: For ACK / REJECT: the id settled.
    """

    op: Op
    code: Code
    frame_id: int = 0
    timestamp_us: int = 0
    picks: tuple[Pick, ...] = ()
    pending: int = 0
    total_grasps: int = 0
    status: tuple[int, ...] = ()
    pick_id: int = 0


class RequestError(ValueError):
    """A request that cannot be read; answered with ``BAD_REQUEST``."""


# -- binary ---------------------------------------------------------------------------------------
def encode_request(req: Request) -> bytes:
    """Wire bytes of a binary request (what a robot sends)."""
    body = REQUEST_BODY.pack(int(req.op), 0, req.pick_id & 0xFFFFFFFF)
    return protocol.encode(protocol.Message(protocol.MsgType.REQUEST, req.seq, 0, body=body))


def decode_request(msg: protocol.Message) -> Request:
    """A REQUEST message's fields."""
    if msg.type != protocol.MsgType.REQUEST or len(msg.body) < REQUEST_BODY.size:
        raise RequestError(f"expected a REQUEST message with a {REQUEST_BODY.size}-byte body, "
                           f"got type {msg.type.name} with {len(msg.body)} bytes")
    op, _, pick_id = REQUEST_BODY.unpack_from(msg.body)
    try:
        return Request(Op(op), pick_id, msg.seq)
    except ValueError:
        raise RequestError(f"unknown request op {op}") from None


def encode_reply(reply: Reply, *, seq: int, request_seq: int) -> bytes:
    """Wire bytes of a binary reply."""
    first = reply.picks[0].id if reply.picks else reply.pick_id
    body = REPLY_BODY.pack(int(reply.op), int(reply.code), request_seq & 0xFFFF, first, min(reply.pending, 0xFFFF),
                           min(reply.total_grasps, 0xFFFF))
    if reply.op == Op.STATUS and reply.status:
        body += STATUS_BODY.pack(*reply.status)
    msg = protocol.Message(protocol.MsgType.REPLY, seq, reply.timestamp_us, reply.frame_id,
                           tuple(p.record for p in reply.picks), body=body)
    return protocol.encode(msg)


def decode_reply(msg: protocol.Message) -> tuple[Reply, int]:
    """A REPLY message as ``(reply, request_seq)``; pick ids are ``first_id + rank``."""
    if msg.type != protocol.MsgType.REPLY or len(msg.body) < REPLY_BODY.size:
        raise RequestError(f"expected a REPLY message with a body of >= {REPLY_BODY.size} bytes")
    op, code, request_seq, first, pending, total = REPLY_BODY.unpack_from(msg.body)
    status = STATUS_BODY.unpack_from(msg.body, REPLY_BODY.size) if len(msg.body) >= REPLY_BODY.size + \
        STATUS_BODY.size else ()
    picks = tuple(Pick(first + i, i, r) for i, r in enumerate(msg.grasps))
    return Reply(Op(op), Code(code), msg.frame_id, msg.timestamp_us, picks, pending, total, status,
                 first if not picks else 0), request_seq


# -- ASCII ----------------------------------------------------------------------------------------
def parse_line(line: bytes) -> Request:
    """One ASCII request line (without its newline); case-insensitive, ``\\r`` and blanks ignored."""
    try:
        words = line.decode("ascii").strip().upper().split()
    except UnicodeDecodeError:
        raise RequestError("request is not ASCII") from None
    if not words:
        raise RequestError("empty request")
    name, args = words[0], words[1:]
    op = Op.__members__.get(name, Op.NONE)
    if op == Op.NONE:
        raise RequestError(f"unknown request {name[:20]!r}; expected one of {[o.name for o in Op][1:]}")
    if op in (Op.ACK, Op.REJECT):
        if len(args) != 1 or not args[0].isdigit() or int(args[0]) > 0xFFFFFFFF:
            raise RequestError(f"{name} needs one pick id (0..4294967295), got {' '.join(args)[:20]!r}")
        return Request(op, int(args[0]))
    if op == Op.FORMAT:
        if args not in (["LINE"], ["TUPLE"]):
            raise RequestError("FORMAT takes LINE or TUPLE")
        return Request(op, arg=args[0])
    if args:
        raise RequestError(f"{name} takes no arguments")
    return Request(op)


def _num(x: float) -> str:
    return "nan" if math.isnan(x) else f"{x:.7g}"


def pick_fields(pick: Pick) -> tuple[Coord, tuple[float, float, float, float, float]]:
    """The coordinates an ASCII pick carries: robot frame when known, else camera, else image."""
    r = pick.record
    if r.robot is not None and not math.isnan(r.robot[0]):
        return Coord.R, (r.robot[0], r.robot[1], r.robot[2], r.robot[3], r.camera[3] if r.camera else math.nan)
    if r.camera is not None and not math.isnan(r.camera[0]):
        return Coord.C, (r.camera[0], r.camera[1], r.camera[2], r.angle, r.camera[3])
    return Coord.P, (r.u, r.v, 0.0, r.angle, r.width_px)


def _pick_line(pick: Pick, reply: Reply, tuple_form: bool) -> str:
    coord, vals = pick_fields(pick)
    r = pick.record
    if tuple_form:
        nums = (0, pick.id, reply.frame_id, r.class_id, int(coord), *vals, r.score, r.quality)
        return "(" + ",".join(_num(v) if isinstance(v, float) else str(v) for v in nums) + ")"
    return " ".join(["PICK", str(pick.id), str(reply.frame_id), str(reply.timestamp_us), str(r.class_id), coord.name,
                     *map(_num, vals), _num(r.score), _num(r.quality), str(r.flags)])


def _tuple(*ints: int) -> str:
    return "(" + ",".join(str(i) for i in (*ints, *(0,) * (12 - len(ints)))) + ")"


def format_reply(reply: Reply, *, tuple_form: bool = False) -> str:
    """The ASCII answer, ``\\n``-terminated (several lines for GET_ALL).

    Every tuple has 12 numbers, so URScript reads any answer with
    ``socket_read_ascii_float(12)``.
    """
    if reply.code != Code.OK:
        if tuple_form:
            return _tuple(int(reply.code), 0, reply.frame_id) + "\n"
        return f"ERR {int(reply.code)} {reply.code.name} {reply.frame_id} {reply.timestamp_us}\n"
    if reply.op in (Op.TRIGGER, Op.GET_NEXT):
        return _pick_line(reply.picks[0], reply, tuple_form) + "\n"
    if reply.op == Op.GET_ALL:
        n = len(reply.picks)
        head = _tuple(0, n, reply.frame_id, reply.total_grasps) if tuple_form else \
            f"PICKS {n} {reply.frame_id} {reply.timestamp_us} {reply.total_grasps}"
        return "\n".join([head, *(_pick_line(p, reply, tuple_form) for p in reply.picks)]) + "\n"
    if reply.op == Op.STATUS:
        if tuple_form:
            return _tuple(0, *reply.status, reply.frame_id, reply.pending) + "\n"
        mode, frames, handed, acked, rejected, unknown = reply.status
        return (f"STATUS {'TRIGGER' if mode else 'FREE'} {frames} {reply.frame_id} {reply.pending} {handed} {acked} "
                f"{rejected} {unknown}\n")
    if reply.op == Op.FORMAT:
        return _tuple(0) + "\n" if tuple_form else "OK FORMAT\n"
    return (_tuple(0, reply.pick_id) if tuple_form else f"OK {reply.pick_id}") + "\n"
