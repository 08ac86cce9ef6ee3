"""The C decoder (contrib/edgeseg_proto.h) built with gcc agrees with the Python decoder.

Inputs: the spec's example frames, frames the serial hook wrote over a real pty
and over pyserial's loop://, corrupted streams and random mutations (also under
AddressSanitizer/UBSan).
"""

import dataclasses
import math
import pathlib
import random
import shutil
import subprocess
import time

import numpy as np
import pytest
from protocol_examples import END, examples, parse_hexdump
from synthetic_masks import rectangle_mask, result_from_masks
from virtual_port import VirtualSerialPort

from edgeseg import protocol
from edgeseg.grasp import CameraIntrinsics, GripperSpec, plan_grasps
from edgeseg.hooks import open_hook
from edgeseg.hooks.base import HookItem, LinkSequence

ROOT = pathlib.Path(__file__).resolve().parents[1]
FLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O1", "-I", str(ROOT / "contrib")]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g"]


@pytest.fixture(scope="module", params=["plain", "sanitized"])
def decoder(request, tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed")
    exe = tmp_path_factory.mktemp("cdec") / f"test_decoder_{request.param}"
    extra = SANITIZE if request.param == "sanitized" else []
    subprocess.run(["gcc", *FLAGS, *extra, str(ROOT / "contrib" / "test_decoder.c"), "-o", str(exe), "-lm"],
                   check=True, timeout=120, capture_output=True)
    return exe


def run_c(exe, data: bytes, *args: str) -> str:
    proc = subprocess.run([str(exe), *args], input=data, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout.decode() if not args else proc.stdout


def _f(name: str, x: float) -> str:
    return f" {name}=nan" if math.isnan(x) else f" {name}={x:.9g}"


def python_text(data: bytes) -> str:
    """What test_decoder.c prints for ``data``, produced by the Python decoder."""
    dec, lines = protocol.StreamDecoder(), []
    for part in data.split(b"\x00")[:-1]:
        before = dec.errors
        for msg in dec.feed(part + b"\x00"):
            head = (f"msg type={int(msg.type)} seq={msg.seq} t_us={msg.timestamp_us} frame_id={msg.frame_id} "
                    f"n={len(msg.grasps)}")
            if msg.type == protocol.MsgType.ACK:
                head += f" acked_seq={msg.acked_seq} status={msg.ack_status}"
            lines.append(head)
            for g in msg.grasps:
                s = f"grasp class={g.class_id} inst={g.instance} flags={g.flags}"
                s += "".join(_f(k, getattr(g, k)) for k in ("score", "quality", "u", "v", "angle", "width_px"))
                if g.camera is not None:
                    s += "".join(_f(k, v) for k, v in zip(("cx", "cy", "cz", "width_m"), g.camera, strict=True))
                if g.robot is not None:
                    s += "".join(_f(k, v) for k, v in zip(("rx", "ry", "rz", "yaw", "qx", "qy", "qz", "qw"),
                                                          g.robot, strict=True))
                if any(x.track_id is not None for x in msg.grasps):  # the frame has the TRACK block
                    s += " track=none" if g.track_id is None else f" track={g.track_id}"
                lines.append(s)
        if dec.errors > before:
            lines.append("dropped")
    ok = sum(1 for ln in lines if ln.startswith("msg"))
    lines.append(f"errors {dec.errors} ok {ok}")
    return "\n".join(lines) + "\n"


def assert_same(exe, data: bytes) -> str:
    c_text = run_c(exe, data)
    # The C program names the error code; the Python text just says "dropped".
    c_norm = "\n".join("dropped" if ln.startswith("dropped") else ln for ln in c_text.splitlines()) + "\n"
    assert c_norm == python_text(data)
    return c_text


def scene(frame_id: int):
    masks = [rectangle_mask((240, 320), (80.0 + 60 * i, 60.0 + 40 * (i % 3)), 50, 18, 0.3 * i) for i in range(4)]
    return result_from_masks(masks, class_ids=[0, 1, 0, 1], scores=[0.9, 0.8, 0.7, 0.6],
                             class_names=("box", "can"), frame_id=frame_id)


def test_spec_examples(decoder):
    doc = (ROOT / "docs" / "protocol.md").read_text()
    wires = [parse_hexdump(doc.split(f"```hex {name} wire\n")[1].split("```")[0]) for name in examples()]
    assert END in doc
    out = assert_same(decoder, b"".join(wires))
    assert out.endswith(f"errors 0 ok {len(wires)}\n")
    assert "grasp class=2 inst=0 flags=27 score=0.875 quality=0.75 u=320.5 v=240.25 angle=0.5 width_px=48" in out


def test_c_ack_matches_spec(decoder):
    doc = (ROOT / "docs" / "protocol.md").read_text()
    ack = parse_hexdump(doc.split("```hex ack wire\n")[1].split("```")[0])
    assert run_c(decoder, b"", "--ack", "0", "2", "0") == ack
    assert protocol.decode(ack).acked_seq == 2


def test_frames_from_the_hook_over_a_pty(decoder, tmp_path):
    he = np.array([[0, -1, 0, 0.4], [-1, 0, 0, 0.1], [0, 0, -1, 0.9], [0, 0, 0, 1]], float)
    cam = CameraIntrinsics(500.0, 500.0, 159.5, 119.5)
    depth = np.full((240, 320), 700, np.uint16)
    depth[:, 200:] = 0  # no depth there: those grasps carry NaN camera/robot blocks
    with VirtualSerialPort(str(tmp_path / "tty")) as port:
        hook = open_hook(f"serial://{port.path}?queue_size=64")
        sent = []
        for k in range(5):
            r = scene(k)
            grasps = plan_grasps(r, depth=depth, camera=cam, hand_eye=he) if k % 2 else plan_grasps(r)
            hook(r, grasps)
            sent.append(grasps)
        assert hook.flush(5.0)
        msgs = port.read_messages(5, timeout=5.0)
        hook.close()
    assert [m.frame_id for m in msgs] == [0, 1, 2, 3, 4]
    for msg, grasps in zip(msgs, sent, strict=True):
        assert [(g.instance, g.class_id) for g in msg.grasps] == [(g.instance, g.class_id) for g in grasps]
        for rec, g in zip(msg.grasps, grasps, strict=True):
            assert (rec.u, rec.v) == pytest.approx(g.center, abs=1e-4)
            assert rec.angle == pytest.approx(g.angle, abs=1e-6)
    assert any(m.grasps[0].robot is not None for m in msgs)
    out = assert_same(decoder, bytes(port.received))
    assert out.endswith("errors 0 ok 5\n")


def test_frames_from_the_hook_over_pyserial_loop(decoder):
    hook = open_hook("loop://?queue_size=16")
    for k in range(3):
        r = scene(k)
        hook(r, plan_grasps(r, GripperSpec(max_opening=60, finger_width=8, finger_thickness=4, margin=2, unit="px")))
    assert hook.flush(5.0)
    data, deadline = b"", time.monotonic() + 5
    while data.count(b"\x00") < 4 and time.monotonic() < deadline:
        data += hook.port.read(65536)
    hook.close()
    out = assert_same(decoder, data)
    assert out.endswith("errors 0 ok 3\n")


def test_corruption_and_random_mutations(decoder):
    wire = b"".join(protocol.encode(m) for _, m in examples().values())
    frames = [protocol.encode(m) for _, m in examples().values()]
    raw = bytearray(protocol.encode_raw(examples()["grasps-3d"][1]))
    raw[40] ^= 0x01  # a flipped bit in a record: framing intact, CRC must catch it
    bad = protocol.cobs_encode(bytes(raw)) + b"\x00"
    out = assert_same(decoder, frames[0] + bad + b"".join(frames[2:]))
    assert "dropped error=-2" in out and out.endswith(f"errors 1 ok {len(frames) - 1}\n")
    rng = random.Random(6)
    stream = bytearray()
    for _ in range(150):
        m = bytearray(wire)
        for _ in range(rng.randint(1, 4)):
            m[rng.randrange(len(m))] = rng.randrange(256)
        stream += m
    assert_same(decoder, bytes(stream) + b"\x00")


def test_track_ids_protocol_1_1(decoder):
    """Records with the TRACK block (flag 0x08) decode the same in C and Python; untracked rows say none."""
    res = scene(7)
    res = dataclasses.replace(res, track_ids=np.array([12, -1, 70000, 3], np.int32))
    grasps = plan_grasps(res, GripperSpec(max_opening=200, finger_width=10, finger_thickness=5, finger_depth=10,
                                          margin=2, unit="px"))
    seq = LinkSequence()
    msg = seq.grasps(HookItem(res, tuple(grasps), 1_700_000_000_000_000))
    wire = protocol.encode(msg)
    raw = protocol.encode_raw(msg)
    assert raw[6] & protocol.FrameFlags.TRACK and raw[8] == 28 + 4 and raw[2] == 1  # wire version byte stays 1
    back = protocol.decode(wire)
    assert [g.track_id for g in back.grasps] == [
        None if res.track_ids[g.instance] < 0 else int(res.track_ids[g.instance]) for g in grasps]
    text = assert_same(decoder, wire)
    assert "track=70000" in text and "track=none" in text
    untracked = protocol.encode(seq.grasps(HookItem(scene(8), tuple(grasps), 1)))
    assert protocol.decode_raw(protocol.cobs_decode(untracked[:-1])).grasps[0].track_id is None
    assert "track=" not in assert_same(decoder, untracked)  # no TRACK flag: no track block
