"""Wire protocol v1: CRC, COBS, frame layout, stream resync, JSON lines, the spec's examples."""

import json
import math
import pathlib
import random
import struct

import numpy as np
import pytest
from protocol_examples import BEGIN, END, examples, markdown, parse_hexdump
from synthetic_masks import rectangle_mask, result_from_masks

from edgeseg import protocol
from edgeseg.grasp import CameraIntrinsics, plan_grasps
from edgeseg.protocol import GraspRecord, Message, MsgType, ProtocolError, StreamDecoder

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "protocol.md"


def test_crc_is_ccitt_false():
    assert protocol.crc16(b"123456789") == 0x29B1
    assert protocol.crc16(b"") == 0xFFFF


@pytest.mark.parametrize("n", [0, 1, 253, 254, 255, 508, 509, 1000])
def test_cobs_round_trip(n):
    rng = random.Random(n)
    for data in (bytes(rng.randrange(256) for _ in range(n)), bytes(n), bytes(range(1, 256)) * (n // 255 + 1)):
        data = data[:n]
        enc = protocol.cobs_encode(data)
        assert 0 not in enc
        assert len(enc) <= n + n // 254 + 1
        assert protocol.cobs_decode(enc) == data


def test_cobs_rejects_bad_codes():
    with pytest.raises(ProtocolError, match="runs past the end"):
        protocol.cobs_decode(b"\x05ab")
    with pytest.raises(ProtocolError, match="0x00"):
        protocol.cobs_decode(b"\x03a\x00")


def test_header_layout_matches_spec():
    _, msg = examples()["grasps-2d"]
    raw = protocol.encode_raw(msg)
    assert raw[:2] == b"ES" and raw[2] == 1 and raw[3] == MsgType.GRASPS
    assert struct.unpack_from("<H", raw, 4)[0] == 1  # seq
    assert raw[7] == 1 and raw[8] == 28  # count, record_size
    assert struct.unpack_from("<QI", raw, 10) == (msg.timestamp_us, 42)
    assert struct.unpack_from("<H", raw, len(raw) - 2)[0] == protocol.crc16(raw[:-2])
    assert len(raw) == 22 + 28 + 2
    assert protocol.record_size(protocol.FrameFlags.CAMERA | protocol.FrameFlags.ROBOT) == 76


@pytest.mark.parametrize("name", list(examples()))
def test_examples_round_trip(name):
    _, msg = examples()[name]
    assert protocol.decode(protocol.encode(msg)) == msg


def test_planned_grasps_survive_the_wire_as_float32():
    r = result_from_masks([rectangle_mask((120, 160), (80.0, 60.0), 50, 16, 0.4)], frame_id=9)
    hand_eye = np.eye(4)
    hand_eye[:3, 3] = (0.1, 0.2, 0.3)
    (g,) = plan_grasps(r, depth=np.full((120, 160), 0.5, np.float32),
                       camera=CameraIntrinsics(300.0, 300.0, 79.5, 59.5), hand_eye=hand_eye)
    msg = protocol.decode(protocol.encode_grasps([g], seq=7, timestamp_us=123, frame_id=9))
    (rec,) = msg.grasps
    f32 = lambda x: float(np.float32(x))  # noqa: E731
    assert (msg.seq, msg.frame_id, rec.class_id, rec.instance) == (7, 9, 0, 0)
    assert (rec.u, rec.v, rec.angle, rec.width_px) == tuple(map(f32, (*g.center, g.angle, g.width_px)))
    assert rec.camera == tuple(map(f32, (*g.camera_pose.position, g.width_m)))
    assert rec.robot == tuple(map(f32, (*g.robot_pose.position, g.robot_pose.yaw, *g.robot_pose.quaternion)))
    F = protocol.RecordFlags  # noqa: N806
    assert rec.flags == F.CLEAR | F.FITS | F.METRIC | F.CLEAR_CHECKED | F.FITS_CHECKED | F.ROBOT_VALID


def test_flags_tell_not_checked_from_failed():
    """A metric gripper without any scale cannot check the width: FITS_CHECKED stays 0."""
    from edgeseg.grasp import GripperSpec

    r = result_from_masks([rectangle_mask((120, 160), (80.0, 60.0), 50, 16, 0.4)], frame_id=1)
    (g,) = plan_grasps(r, GripperSpec())  # metres, no calibration
    (rec,) = protocol.decode(protocol.encode_grasps([g], seq=0, timestamp_us=0, frame_id=1)).grasps
    assert g.fits is None and not rec.flags & protocol.RecordFlags.FITS_CHECKED
    assert not rec.flags & protocol.RecordFlags.ROBOT_VALID and rec.robot is None


def test_truncation_is_visible_on_the_wire_and_in_json():
    from edgeseg.hooks import open_hook

    masks = [rectangle_mask((200, 400), (30.0 + 45 * i, 50.0 + 80 * (i % 2)), 30, 10, 0.2 * i) for i in range(8)]
    r = result_from_masks(masks, frame_id=3)
    grasps = plan_grasps(r)
    with open_hook("mem://?max_grasps=2&queue_size=4") as hook:
        hook(r, grasps)
        hook(r, grasps[:2])
        assert hook.flush(5.0)
    first, second = hook.messages()
    assert len(first.grasps) == 2 and first.truncated and not second.truncated
    assert protocol.encode_raw(first)[6] & protocol.FrameFlags.TRUNCATED
    assert json.loads(protocol.message_to_json(first))["truncated"] is True
    assert "truncated" not in json.loads(protocol.message_to_json(second))


def test_json_carries_the_float32_values_of_the_wire():
    rng = random.Random(3)
    for _ in range(200):
        vals = [rng.uniform(-1000, 1000) * 10 ** rng.randint(-6, 0) for _ in range(6)]
        rec = GraspRecord(1, 0, 0, *vals)
        wire = protocol.decode(protocol.encode(Message(MsgType.GRASPS, 0, 0, 0, (rec,)))).grasps[0]
        d = json.loads(protocol.message_to_json(Message(MsgType.GRASPS, 0, 0, 0, (rec,))))["grasps"][0]
        for k in ("score", "quality", "u", "v", "angle", "width_px"):
            assert np.float32(d[k]) == np.float32(getattr(wire, k)), k


def test_minor_version_and_1_0_frames():
    _, msg = examples()["heartbeat"]
    raw = bytearray(protocol.encode_raw(msg))
    assert raw[9] == protocol.MINOR == 2
    raw[9] = 0  # as a 1.0 sender wrote it
    old = protocol.decode_raw(_with_crc(bytes(raw)))
    assert old.minor == 0 and old.seq == msg.seq
    raw[9] = 7  # a later minor: still read
    assert protocol.decode_raw(_with_crc(bytes(raw))).minor == 7


def test_bytes_before_the_crc_are_ignored():
    _, msg = examples()["grasps-2d"]
    raw = protocol.encode_raw(msg)
    longer = _with_crc(raw[:-2] + b"\x01\x02\x03" + raw[-2:])
    assert protocol.decode_raw(longer).grasps == msg.grasps


def _stream(n=6):
    msgs = [Message(MsgType.GRASPS, i, 1000 + i, 100 + i, (examples()["grasps-2d"][1].grasps * (i % 3)))
            for i in range(n)]
    return msgs, [protocol.encode(m) for m in msgs]


def test_stream_decoder_any_chunking():
    msgs, frames = _stream()
    data = b"".join(frames)
    rng = random.Random(1)
    dec, got, i = StreamDecoder(), [], 0
    while i < len(data):
        step = rng.randint(1, 40)
        got += dec.feed(data[i : i + step])
        i += step
    assert got == msgs and dec.errors == 0


def code_positions(enc: bytes) -> set[int]:
    """Offsets of the COBS code bytes in an encoded frame."""
    pos, i = set(), 0
    while i < len(enc) and enc[i]:
        pos.add(i)
        i += enc[i]
    return pos


@pytest.mark.parametrize("hit_code", [False, True])
def test_corrupt_byte_is_detected_and_sync_is_kept(hit_code):
    msgs, frames = _stream()
    bad = bytearray(frames[3])
    codes = code_positions(bytes(bad[:-1]))
    pos = min(codes - {0}) if hit_code else max(set(range(1, len(bad) - 1)) - codes)
    bad[pos] = bad[pos] ^ 0x10 if bad[pos] ^ 0x10 else bad[pos] ^ 0x20  # stays non-zero
    dec = StreamDecoder()
    got = dec.feed(b"\x13\x37noise\x00" + b"".join(frames[:3]) + bytes(bad) + b"".join(frames[4:]))
    assert [m.seq for m in got] == [0, 1, 2, 4, 5]
    assert dec.errors == 2  # the noise and the corrupted frame
    if not hit_code:
        assert "CRC" in dec.last_error


def test_lost_delimiter_costs_two_frames_only():
    msgs, frames = _stream()
    data = b"".join(frames[:2]) + frames[2][:-1] + b"".join(frames[3:])
    got = StreamDecoder().feed(data)
    assert [m.seq for m in got] == [0, 1, 4, 5]


def test_overlong_frame_is_dropped():
    msgs, frames = _stream()
    dec = StreamDecoder(max_frame=40)
    got = dec.feed(b"\x01" * 100 + b"\x00" + frames[0])
    assert [m.seq for m in got] == [0] and dec.errors == 1 and "longer" in dec.last_error


def _with_crc(raw: bytes) -> bytes:
    return raw[:-2] + struct.pack("<H", protocol.crc16(raw[:-2]))


@pytest.mark.parametrize("offset,value,match", [(0, ord("X"), "magic"), (2, 2, "version"), (3, 9, "type"),
                                                 (8, 20, "record_size"), (7, 5, "do not fit")])
def test_bad_headers_are_rejected(offset, value, match):
    raw = bytearray(protocol.encode_raw(examples()["grasps-2d"][1]))
    raw[offset] = value
    with pytest.raises(ProtocolError, match=match):
        protocol.decode_raw(_with_crc(bytes(raw)))


def test_too_many_records_is_a_value_error():
    rec = examples()["grasps-2d"][1].grasps[0]
    with pytest.raises(ValueError, match="at most 255"):
        protocol.encode(Message(MsgType.GRASPS, 0, 0, 0, (rec,) * 256))


def test_json_lines():
    _, msg = examples()["grasps-3d"]
    d = json.loads(protocol.message_to_json(msg))
    assert d["type"] == "grasps" and d["frame_id"] == 43 and d["grasps"][0]["camera"]["z"] == 0.5
    rec = GraspRecord(0, 0, 0, 0.5, 0.5, 1.0, 2.0, 0.0, 3.0, camera=(math.nan, 0.0, 1.0, math.nan))
    d = json.loads(protocol.message_to_json(Message(MsgType.GRASPS, 0, 0, 0, (rec,))))
    assert d["grasps"][0]["camera"]["x"] is None


def test_spec_examples_are_generated_by_the_encoder():
    text = DOC.read_text()
    assert BEGIN in text and END in text
    section = text[text.index(BEGIN) : text.index(END) + len(END)]
    assert section == markdown(), "docs/protocol.md is stale: run python tests/protocol_examples.py"
    for name, (_, msg) in examples().items():
        wire = parse_hexdump(section.split(f"```hex {name} wire\n")[1].split("```")[0])
        raw = parse_hexdump(section.split(f"```hex {name} raw\n")[1].split("```")[0])
        assert wire == protocol.encode(msg) and raw == protocol.cobs_decode(wire[:-1])
        assert protocol.decode(wire) == msg


def test_a_malformed_model_body_is_a_protocol_error():
    from edgeseg.model_info import ModelInfo

    good = protocol.Message(protocol.MsgType.MODEL, 0, 1, body=ModelInfo("b", "00" * 8, 2).to_body())
    assert ModelInfo.from_body(protocol.decode_raw(protocol.encode_raw(good)).body).name == "b"
    short = protocol.Message(protocol.MsgType.MODEL, 0, 1, body=b"\x20abc")  # says 32 name bytes, has 3
    with pytest.raises(protocol.ProtocolError, match="shorter than its name length"):
        protocol.decode_raw(protocol.encode_raw(short))
