"""Encoder, Python stream decoder and the C header agree on the largest frame (issue 18)."""

from __future__ import annotations

import pathlib
import shutil
import subprocess

import pytest
from protocol_examples import examples

from edgeseg import protocol

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _largest() -> protocol.Message:
    """255 records with camera, robot and track blocks: the longest GRASPS frame the encoder allows."""
    msg = next(m for _, m in examples().values() if m.grasps and m.grasps[0].robot is not None)
    g = msg.grasps[0]
    grasps = tuple(type(g)(**{**g.__dict__, "instance": i, "track_id": i}) for i in range(protocol.MAX_RECORDS))
    return type(msg)(**{**msg.__dict__, "grasps": grasps})


def test_the_stream_decoder_accepts_the_longest_frame_the_encoder_builds():
    msg = _largest()
    wire = protocol.encode(msg)
    assert len(protocol.encode_raw(msg)) == protocol.MAX_FRAME - protocol.ACK_BODY.size
    dec = protocol.StreamDecoder()
    (got,) = dec.feed(wire)
    assert dec.errors == 0 and len(got.grasps) == 255 and got.grasps[-1].track_id == 254


def test_the_encoder_refuses_frames_longer_than_the_protocol_allows():
    msg = next(m for _, m in examples().values() if not m.grasps and m.type != protocol.MsgType.ACK)
    too_long = type(msg)(**{**msg.__dict__, "body": bytes(protocol.MAX_FRAME)})
    with pytest.raises(ValueError, match=rf"longer than the protocol's {protocol.MAX_FRAME}"):
        protocol.encode(too_long)


def test_the_c_header_builds_warning_free_at_255_records_and_decodes_the_longest_frame(tmp_path):
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed")
    exe = tmp_path / "dec255"
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O1", "-DES_PROTO_MAX_GRASPS=255",
                    "-I", str(ROOT / "contrib"), str(ROOT / "contrib" / "test_decoder.c"), "-o", str(exe), "-lm"],
                   check=True, capture_output=True, timeout=120)
    out = subprocess.run([str(exe)], input=protocol.encode(_largest()), capture_output=True, timeout=60, check=True)
    text = out.stdout.decode()
    assert "n=255" in text and text.count("\ngrasp ") == 255 and text.rstrip().endswith("errors 0 ok 1"), text[-300:]
