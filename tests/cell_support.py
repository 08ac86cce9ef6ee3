"""Shared pieces of the robot-cell tests: a synthetic frame stream and a scripted robot client."""

from __future__ import annotations

import socket
import threading

from synthetic_masks import rectangle_mask, result_from_masks

from edgeseg import protocol
from edgeseg.cell import triggered_frames
from edgeseg.cell.pick_protocol import Request, decode_reply, encode_request
from edgeseg.grasp import GripperSpec, plan_grasps

GRIPPER = GripperSpec(max_opening=60, finger_width=8, finger_thickness=4, margin=2, unit="px")
T0 = 1_700_000_000_000_000


def scene(frame_id: int, n: int = 3):
    """A frame with ``n`` separated rectangles (their positions depend on the frame id) and its grasps."""
    masks = [rectangle_mask((160, 420), (30.0 + 60 * i + frame_id % 7, 40.0 + 60 * (i % 2)), 30, 10, 0.3 * i + 0.1)
             for i in range(n)]
    r = result_from_masks(masks, frame_id=frame_id)
    return r, plan_grasps(r, GRIPPER)


def records_of(grasps):
    """The wire records of planned grasps (float32 round trip)."""
    return protocol.decode(protocol.encode_grasps(grasps, seq=0, timestamp_us=0, frame_id=0)).grasps


class Loop(threading.Thread):
    """Plays the run loop: frames (through the trigger gate when the server has one) into the servers."""

    def __init__(self, servers, frames: int = 1000, n: int = 3) -> None:
        super().__init__(daemon=True)
        self.servers, self.frames, self.n = servers, frames, n
        self.sent: dict[int, tuple] = {}

    def run(self) -> None:
        for k in triggered_frames(range(self.frames), self.servers):
            r, g = scene(k, self.n)
            self.sent[k] = g
            for s in self.servers:
                s(r, g, timestamp_us=T0 + k)


class AsciiRobot:
    """A robot program speaking ASCII lines."""

    def __init__(self, address, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(address, timeout=timeout)
        self.file = self.sock.makefile("rwb")

    def ask(self, line: str, lines: int = 1) -> list[str]:
        self.file.write(line.encode() + b"\n")
        self.file.flush()
        return [self.file.readline().decode().rstrip("\n") for _ in range(lines)]

    def close(self) -> None:
        self.file.close()
        self.sock.close()


class BinaryRobot:
    """A robot program speaking binary frames."""

    def __init__(self, address, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(address, timeout=timeout)
        self.dec = protocol.StreamDecoder()
        self.seq = 0
        self.pending: list = []

    def ask(self, op, pick_id: int = 0):
        self.sock.sendall(encode_request(Request(op, pick_id, self.seq)))
        self.seq += 1
        while not self.pending:
            data = self.sock.recv(4096)
            assert data, "server closed the connection"
            self.pending += self.dec.feed(data)
        reply, rseq = decode_reply(self.pending.pop(0))
        assert rseq == self.seq - 1
        return reply

    def close(self) -> None:
        self.sock.close()
