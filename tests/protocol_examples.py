"""Example messages of the wire protocol and the byte-level dumps in docs/protocol.md.

``python tests/protocol_examples.py`` prints the examples section of the
spec; a test checks that the document holds exactly this text, so the hex in
the spec is what the encoder writes.
"""

from __future__ import annotations

from edgeseg import protocol
from edgeseg.model_info import ModelInfo
from edgeseg.protocol import GraspRecord, Message, MsgType

BEGIN, END = "<!-- BEGIN GENERATED EXAMPLES -->", "<!-- END GENERATED EXAMPLES -->"
T0 = 1_700_000_000_000_000  # 2023-11-14T22:13:20Z in microseconds


def examples() -> dict[str, tuple[str, Message]]:
    """Name -> (description, message); all values exactly representable in float32."""
    planar = GraspRecord(class_id=2, instance=0, flags=0x1B, score=0.875, quality=0.75, u=320.5, v=240.25,
                         angle=0.5, width_px=48.0)
    metric = GraspRecord(class_id=1, instance=3, flags=0x3F, score=0.5, quality=0.625, u=100.0, v=50.5,
                         angle=-1.25, width_px=64.0, camera=(0.125, -0.0625, 0.5, 0.0625),
                         robot=(0.375, 0.25, 0.03125, 0.0, 1.0, 0.0, 0.0, 0.0))
    return {
        "grasps-2d": ("GRASPS, seq 1, frame 42, one 2D grasp (class 2 at (320.5, 240.25) px, "
                      "closing at 0.5 rad, 48 px open)", Message(MsgType.GRASPS, 1, T0, 42, (planar,))),
        "grasps-3d": ("GRASPS, seq 2, frame 43, one grasp with camera and robot blocks (flags 0x03)",
                      Message(MsgType.GRASPS, 2, T0 + 33_333, 43, (metric,))),
        "grasps-empty": ("GRASPS, seq 3, frame 44, nothing to grasp (count 0)",
                         Message(MsgType.GRASPS, 3, T0 + 66_666, 44)),
        "heartbeat": ("HEARTBEAT, seq 4", Message(MsgType.HEARTBEAT, 4, T0 + 1_000_000)),
        "ack": ("ACK from the controller (its own seq 0) for host seq 2, status 0",
                Message(MsgType.ACK, 0, 0, acked_seq=2, ack_status=0)),
        "model": ("MODEL, seq 0 (sent first on a new connection): bundle edgeseg-nano, manifest sha256 "
                  "59bc0b8dcd30a1e2..., 6 classes", Message(MsgType.MODEL, 0, T0 - 1_000, body=ModelInfo(
                      "edgeseg-nano", "59bc0b8dcd30a1e2", 6).to_body())),
    }


def hexdump(data: bytes, width: int = 16) -> str:
    """Offset-prefixed hex lines, ``width`` bytes per line."""
    return "\n".join(f"{i:04x}: " + " ".join(f"{b:02x}" for b in data[i : i + width])
                     for i in range(0, len(data), width))


def parse_hexdump(text: str) -> bytes:
    """Inverse of :func:`hexdump`."""
    return bytes(int(tok, 16) for line in text.strip().splitlines() for tok in line.split(":", 1)[1].split())


def markdown() -> str:
    """The generated examples section of docs/protocol.md (between the markers)."""
    out = [BEGIN, ""]
    for name, (desc, msg) in examples().items():
        raw = protocol.encode_raw(msg)
        wire = protocol.encode(msg)
        out += [
            f"### Example `{name}`",
            "",
            desc + ".",
            "",
            f"Raw frame, {len(raw)} bytes (header, records, body, CRC {int.from_bytes(raw[-2:], 'little'):#06x}):",
            "",
            f"```hex {name} raw",
            hexdump(raw),
            "```",
            "",
            f"On the wire, {len(wire)} bytes (COBS, then the 0x00 delimiter):",
            "",
            f"```hex {name} wire",
            hexdump(wire),
            "```",
            "",
            "JSON line:",
            "",
            "```json",
            protocol.message_to_json(msg),
            "```",
            "",
        ]
    out.append(END)
    return "\n".join(out)


if __name__ == "__main__":
    print(markdown())
