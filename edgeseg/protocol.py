"""The edgeseg robot-link wire protocol, version 1.2 (spec: ``docs/protocol.md``).

A message is a little-endian binary frame::

    header (22 bytes) | count x record (record_size bytes) | body | CRC-16 (2 bytes)

protected by CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no
xor-out; ``binascii.crc_hqx(data, 0xFFFF)``), then COBS-encoded and terminated
by one ``0x00`` byte. A receiver resynchronises on the next ``0x00`` after any
corrupt frame. The same content as JSON lines (one object per line) serves
humans and scripts.

Units on the wire: pixels (continuous image coordinates, pixel ``i`` covers
``[i, i+1)``), radians, metres, microseconds since the Unix epoch.
"""

from __future__ import annotations

import binascii
import json
import math
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

MAGIC = b"ES"
VERSION = 1
MINOR = 2  # header byte 9; 1.0 senders wrote 0 there. A decoder accepts any minor of its major version.
HEADER = struct.Struct("<2sBBHBBBBQI")  # magic ver type seq flags count rec_size minor t_us frame_id
BASE_RECORD = struct.Struct("<HBBffffff")  # class inst rflags score quality u v angle width_px
CAMERA_BLOCK = struct.Struct("<ffff")  # x y z (m, camera frame) width_m
ROBOT_BLOCK = struct.Struct("<ffffffff")  # x y z (m, robot base) yaw qx qy qz qw
TRACK_BLOCK = struct.Struct("<I")  # track id (protocol 1.2; NO_TRACK = untracked)
NO_TRACK = 0xFFFFFFFF
ACK_BODY = struct.Struct("<HBB")  # acked_seq status reserved
CRC = struct.Struct("<H")
MAX_RECORDS = 255
#: Longest raw (un-COBSed) frame, bytes: header, MAX_RECORDS records with every block, ACK body, CRC. The
#: encoder refuses longer frames and the stream decoder accepts every frame the encoder builds.
MAX_FRAME = (HEADER.size + MAX_RECORDS * (BASE_RECORD.size + CAMERA_BLOCK.size + ROBOT_BLOCK.size + TRACK_BLOCK.size)
             + ACK_BODY.size + CRC.size)


class MsgType(IntEnum):
    """Message types (header byte 3)."""

    GRASPS = 1
    HEARTBEAT = 2
    ACK = 3
    REQUEST = 4  # pick server: robot -> edgeseg (docs/pick_server.md)
    REPLY = 5  # pick server: edgeseg -> robot
    MODEL = 6  # (1.2) which bundle the class ids index (edgeseg.model_info), sent when a link comes up


class FrameFlags(IntEnum):
    """Header flag bits (byte 6): which optional record blocks are present."""

    CAMERA = 0x01
    ROBOT = 0x02
    TRUNCATED = 0x04  # (1.1) the frame had more grasps than the records sent (max_grasps)
    TRACK = 0x08  # (1.2) records end with a u32 track id


class RecordFlags(IntEnum):
    """Per-record flag bits (record byte 3)."""

    CLEAR = 0x01  # no neighbouring mask inside the fingers' sweep (valid when CLEAR_CHECKED)
    FITS = 0x02  # opening width within the gripper's range (valid when FITS_CHECKED)
    METRIC = 0x04  # camera block (x, y, z, width_m) holds valid metres
    CLEAR_CHECKED = 0x08  # (1.1) clearance was checked: CLEAR 0 now means "blocked", not "unknown"
    FITS_CHECKED = 0x10  # (1.1) the width was checked against the gripper: FITS 0 means "too wide"
    ROBOT_VALID = 0x20  # (1.1) robot block holds a valid pose


class ProtocolError(ValueError):
    """A frame that does not decode: bad COBS, CRC, magic, version or length."""


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (check value 0x29B1 for b"123456789")."""
    return binascii.crc_hqx(data, 0xFFFF)


def cobs_encode(data: bytes) -> bytes:
    """COBS-encodes ``data``; the result holds no 0x00 byte (delimiter not added)."""
    out = bytearray()
    block = bytearray()
    for b in data:
        if b == 0:
            out.append(len(block) + 1)
            out += block
            block.clear()
        else:
            block.append(b)
            if len(block) == 254:
                out.append(255)
                out += block
                block.clear()
    out.append(len(block) + 1)
    out += block
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """Inverse of :func:`cobs_encode` (input without the delimiter).

    Raises:
        ProtocolError: On a zero byte or a code pointing past the end.
    """
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        if code == 0:
            raise ProtocolError(f"COBS: unexpected 0x00 at offset {i}")
        end = i + code
        if end > n:
            raise ProtocolError(f"COBS: code {code} at offset {i} runs past the end ({n} bytes)")
        block = data[i + 1 : end]
        if 0 in block:
            raise ProtocolError("COBS: 0x00 inside a block")
        out += block
        i = end
        if code != 255 and i < n:
            out.append(0)
    return bytes(out)


@dataclass(frozen=True)
class GraspRecord:
    """One grasp as carried on the wire (float fields are float32 on the wire).

    Attributes:
        class_id: Class index into the bundle's class names.
        instance: Row of the instance in its frame's Result (255 = beyond 254).
        flags: :class:`RecordFlags` bits.
        score: Detection confidence in [0, 1].
        quality: Grasp quality in [0, 1].
        u, v: Grasp centre in image pixels (continuous coordinates).
        angle: Closing direction in the image, radians from +x towards +y
            (y down), in (-pi/2, pi/2].
        width_px: Jaw opening in pixels (object extent plus margins).
        camera: ``(x, y, z, width_m)`` metres in the camera frame, or None.
        robot: ``(x, y, z, yaw, qx, qy, qz, qw)`` metres / radians in the robot
            base frame, or None.
        track_id: The instance's track id (``--track``), or None when untracked.
    """

    class_id: int
    instance: int
    flags: int
    score: float
    quality: float
    u: float
    v: float
    angle: float
    width_px: float
    camera: tuple[float, float, float, float] | None = None
    robot: tuple[float, ...] | None = None
    track_id: int | None = None

    @classmethod
    def from_grasp(cls, g, track_id: int | None = None) -> GraspRecord:
        """Builds a record from an :class:`edgeseg.grasp.Grasp` (and its instance's track id, if tracked)."""
        flags = (RecordFlags.CLEAR if g.clear else 0) | (RecordFlags.FITS if g.fits else 0)
        flags |= (RecordFlags.CLEAR_CHECKED if g.clear is not None else 0)
        flags |= (RecordFlags.FITS_CHECKED if g.fits is not None else 0)
        camera = robot = None
        if g.camera_pose is not None:
            flags |= RecordFlags.METRIC
            wm = g.width_m if g.width_m is not None else math.nan
            camera = (*g.camera_pose.position, wm)
        if g.robot_pose is not None:
            p = g.robot_pose
            robot = (*p.position, p.yaw, *p.quaternion)
            flags |= RecordFlags.ROBOT_VALID
        return cls(
            class_id=g.class_id,
            instance=min(g.instance, 255),
            flags=int(flags),
            score=g.score,
            quality=g.quality,
            u=g.center[0],
            v=g.center[1],
            angle=g.angle,
            width_px=g.width_px,
            camera=camera,
            robot=robot,
            track_id=track_id if track_id is not None and track_id >= 0 else None,
        )

    def to_dict(self) -> dict:
        """JSON-ready dict (the JSON-lines record)."""
        d = {
            "class_id": self.class_id,
            "instance": self.instance,
            "flags": self.flags,
            "score": self.score,
            "quality": self.quality,
            "u": self.u,
            "v": self.v,
            "angle": self.angle,
            "width_px": self.width_px,
        }
        if self.camera is not None:
            d["camera"] = dict(zip(("x", "y", "z", "width_m"), self.camera, strict=True))
        if self.robot is not None:
            d["robot"] = dict(zip(("x", "y", "z", "yaw", "qx", "qy", "qz", "qw"), self.robot, strict=True))
        if self.track_id is not None:
            d["track_id"] = self.track_id
        return d


@dataclass(frozen=True)
class Message:
    """A decoded protocol message.

    Attributes:
        type: :class:`MsgType`.
        seq: Per-link sequence number of the sender (uint16, wraps).
        timestamp_us: Sender clock, microseconds since the Unix epoch.
        frame_id: Camera frame id (GRASPS); 0 otherwise.
        grasps: Records of a GRASPS message, best first.
        acked_seq: For ACK: the host sequence number acknowledged.
        ack_status: For ACK: 0 = ok, other values controller-defined.
        version: Protocol (major) version of the message.
        minor: Minor version (header byte 9); 0 from a 1.0 sender.
        truncated: GRASPS: the frame had more grasps than ``grasps`` (header flag TRUNCATED).
        body: Bytes after the records of a REQUEST / REPLY (the pick
            server's fields, docs/pick_server.md) or a MODEL message
            (:mod:`edgeseg.model_info`); empty otherwise.
    """

    type: MsgType
    seq: int
    timestamp_us: int
    frame_id: int = 0
    grasps: tuple[GraspRecord, ...] = ()
    acked_seq: int = 0
    ack_status: int = 0
    version: int = VERSION
    body: bytes = b""
    minor: int = MINOR
    truncated: bool = False


def _frame_flags(grasps: Sequence[GraspRecord], truncated: bool = False) -> int:
    flags = FrameFlags.TRUNCATED if truncated else 0
    if any(g.camera is not None for g in grasps):
        flags |= FrameFlags.CAMERA
    if any(g.robot is not None for g in grasps):
        flags |= FrameFlags.ROBOT
    if any(g.track_id is not None for g in grasps):
        flags |= FrameFlags.TRACK
    return flags


def record_size(flags: int) -> int:
    """Bytes per record for the given header flags."""
    size = BASE_RECORD.size
    if flags & FrameFlags.CAMERA:
        size += CAMERA_BLOCK.size
    if flags & FrameFlags.ROBOT:
        size += ROBOT_BLOCK.size
    if flags & FrameFlags.TRACK:
        size += TRACK_BLOCK.size
    return size


def encode_raw(msg: Message) -> bytes:
    """Serialises ``msg`` to the raw frame (header, records, body, CRC), not COBS-framed."""
    if len(msg.grasps) > MAX_RECORDS:
        raise ValueError(f"at most {MAX_RECORDS} grasp records per frame, got {len(msg.grasps)}")
    flags = _frame_flags(msg.grasps, msg.truncated)
    rsize = record_size(flags) if msg.grasps else 0
    out = bytearray(
        HEADER.pack(MAGIC, msg.version, int(msg.type), msg.seq & 0xFFFF, flags, len(msg.grasps),
                    rsize, msg.minor, msg.timestamp_us & 0xFFFFFFFFFFFFFFFF, msg.frame_id & 0xFFFFFFFF)
    )
    nan4 = (math.nan,) * 4
    for g in msg.grasps:
        out += BASE_RECORD.pack(g.class_id, g.instance, g.flags, g.score, g.quality, g.u, g.v,
                                g.angle, g.width_px)
        if flags & FrameFlags.CAMERA:
            out += CAMERA_BLOCK.pack(*(g.camera or nan4))
        if flags & FrameFlags.ROBOT:
            out += ROBOT_BLOCK.pack(*(g.robot or nan4 * 2))
        if flags & FrameFlags.TRACK:
            out += TRACK_BLOCK.pack(NO_TRACK if g.track_id is None else g.track_id)
    if msg.type == MsgType.ACK:
        out += ACK_BODY.pack(msg.acked_seq & 0xFFFF, msg.ack_status, 0)
    else:
        out += msg.body
    if len(out) + CRC.size > MAX_FRAME:
        raise ValueError(f"frame would be {len(out) + CRC.size} bytes, longer than the protocol's {MAX_FRAME} "
                         f"(body of {len(msg.body)} bytes)")
    out += CRC.pack(crc16(bytes(out)))
    return bytes(out)


def encode(msg: Message) -> bytes:
    """Serialises ``msg`` as it goes on the wire: COBS(raw frame) + b"\\x00"."""
    return cobs_encode(encode_raw(msg)) + b"\x00"


def encode_grasps(grasps: Iterable, *, seq: int, timestamp_us: int, frame_id: int) -> bytes:
    """Wire bytes of a GRASPS message from :class:`~edgeseg.grasp.Grasp` objects or records."""
    recs = tuple(g if isinstance(g, GraspRecord) else GraspRecord.from_grasp(g) for g in grasps)
    return encode(Message(MsgType.GRASPS, seq, timestamp_us, frame_id, recs))


def decode_raw(raw: bytes) -> Message:
    """Parses one raw (COBS-decoded) frame.

    Raises:
        ProtocolError: Bad length, CRC, magic, version or record size.
    """
    if len(raw) < HEADER.size + CRC.size:
        raise ProtocolError(f"frame too short: {len(raw)} bytes, need >= {HEADER.size + CRC.size}")
    (crc_got,) = CRC.unpack_from(raw, len(raw) - 2)
    if crc16(raw[:-2]) != crc_got:
        raise ProtocolError(f"CRC mismatch: frame says {crc_got:#06x}, computed {crc16(raw[:-2]):#06x}")
    magic, ver, mtype, seq, flags, count, rsize, minor, t_us, frame_id = HEADER.unpack_from(raw, 0)
    if magic != MAGIC:
        raise ProtocolError(f"bad magic: expected {MAGIC!r}, got {magic!r}")
    if ver != VERSION:
        raise ProtocolError(f"unsupported version: expected {VERSION}, got {ver}")
    need = record_size(flags)
    if count and rsize < need:
        raise ProtocolError(f"record_size {rsize} smaller than {need} implied by flags {flags:#04x}")
    body = HEADER.size + count * rsize
    if body > len(raw) - 2:
        raise ProtocolError(f"{count} records of {rsize} bytes do not fit in a {len(raw)}-byte frame")
    grasps = []
    for i in range(count):
        off = HEADER.size + i * rsize
        cls_id, inst, rflags, *vals = BASE_RECORD.unpack_from(raw, off)
        off += BASE_RECORD.size
        camera = robot = track = None
        if flags & FrameFlags.CAMERA:
            camera = CAMERA_BLOCK.unpack_from(raw, off)
            off += CAMERA_BLOCK.size
        if flags & FrameFlags.ROBOT:
            robot = ROBOT_BLOCK.unpack_from(raw, off)
            off += ROBOT_BLOCK.size
        if flags & FrameFlags.TRACK:
            (track,) = TRACK_BLOCK.unpack_from(raw, off)
            track = None if track == NO_TRACK else track
        grasps.append(GraspRecord(cls_id, inst, rflags, *vals, camera=camera, robot=robot, track_id=track))
    acked = status = 0
    extra = b""
    if mtype == MsgType.ACK:
        if body + ACK_BODY.size > len(raw) - 2:
            raise ProtocolError("ACK frame without its 4-byte body")
        acked, status, _ = ACK_BODY.unpack_from(raw, body)
    elif mtype in (MsgType.REQUEST, MsgType.REPLY, MsgType.MODEL):
        extra = bytes(raw[body:-2])
    if mtype == MsgType.MODEL:
        from edgeseg.model_info import ModelInfo  # noqa: PLC0415 - small, only for MODEL frames

        try:
            ModelInfo.from_body(extra)
        except ValueError as exc:
            raise ProtocolError(str(exc)) from None
    try:
        mtype = MsgType(mtype)
    except ValueError:
        raise ProtocolError(f"unknown message type {mtype}") from None
    return Message(mtype, seq, t_us, frame_id, tuple(grasps), acked, status, ver, extra, minor,
                   bool(flags & FrameFlags.TRUNCATED))


def decode(frame: bytes) -> Message:
    """Decodes one wire frame (COBS bytes, with or without the trailing 0x00)."""
    return decode_raw(cobs_decode(frame.rstrip(b"\x00") if frame.endswith(b"\x00") else frame))


@dataclass
class StreamDecoder:
    """Incremental decoder for a byte stream; resyncs on 0x00 after a bad frame.

    Attributes:
        max_frame: Longest accepted encoded frame in bytes; longer runs are
            discarded up to the next delimiter.
        errors: Count of frames dropped (bad COBS, CRC, header, or overlong).
        last_error: Message of the latest error, for logs.
    """

    max_frame: int = MAX_FRAME + MAX_FRAME // 254 + 2
    errors: int = 0
    last_error: str = ""
    _buf: bytearray = field(default_factory=bytearray, repr=False)
    _overflow: bool = field(default=False, repr=False)

    def feed(self, data: bytes) -> list[Message]:
        """Consumes ``data``; returns the messages completed by it, in order."""
        out = []
        for chunk_end, part in _split_keep(data):
            if self._overflow:
                pass
            elif len(self._buf) + len(part) > self.max_frame:
                self._overflow = True
                self._buf.clear()
            else:
                self._buf += part
            if not chunk_end:
                continue
            if self._overflow:
                self._fail(f"frame longer than {self.max_frame} bytes")
            elif self._buf:
                try:
                    out.append(decode_raw(cobs_decode(bytes(self._buf))))
                except ProtocolError as e:
                    self._fail(str(e))
            self._buf.clear()
            self._overflow = False
        return out

    def _fail(self, why: str) -> None:
        self.errors += 1
        self.last_error = why


def _split_keep(data: bytes):
    """Yields ``(ends_with_delimiter, part)`` pieces of ``data`` split on 0x00."""
    parts = data.split(b"\x00")
    for i, part in enumerate(parts):
        yield i < len(parts) - 1, part


def message_to_json(msg: Message) -> str:
    """One JSON line (without newline) for ``msg``; NaN and infinities written as null.

    Floats are the float32 values the binary frame carries, written with the
    fewest digits that read back to the same float32 (``np.float32(json) ==
    wire value``), so JSON and binary consumers see the same numbers.
    """
    d = {"v": msg.version, "minor": msg.minor, "type": msg.type.name.lower(), "seq": msg.seq,
         "t_us": msg.timestamp_us}
    if msg.type == MsgType.GRASPS:
        d["frame_id"] = msg.frame_id
        if msg.truncated:
            d["truncated"] = True
        d["grasps"] = [g.to_dict() for g in msg.grasps]
    elif msg.type == MsgType.ACK:
        d["acked_seq"] = msg.acked_seq
        d["status"] = msg.ack_status
    elif msg.type == MsgType.MODEL:
        from edgeseg.model_info import ModelInfo  # noqa: PLC0415 - small, only for MODEL lines

        d["model"] = ModelInfo.from_body(msg.body).to_dict()
    return json.dumps(_nan_to_none(d), separators=(",", ":"), allow_nan=False)


def _float32(x: float) -> float:
    """The float32 nearest ``x``, as the shortest decimal that reads back to it."""
    import numpy as np  # noqa: PLC0415 - runtime dependency; kept out of the module import

    return float(str(np.float32(x)))


def _nan_to_none(x):
    if isinstance(x, float):
        return _float32(x) if math.isfinite(x) else None  # JSON has no NaN or infinity (docs/protocol.md)
    if isinstance(x, dict):
        return {k: _nan_to_none(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_nan_to_none(v) for v in x]
    return x
