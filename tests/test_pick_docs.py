"""docs/pick_server.md: every example exchange and byte dump is replayed against the real server."""

import pathlib
import re
import socket

import pytest
from cell_support import AsciiRobot
from protocol_examples import T0, examples, parse_hexdump

from edgeseg.cell import open_server

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "pick_server.md"
TEXT = DOC.read_text()
EXCHANGES = re.findall(r"```exchange\n(.*?)```", TEXT, re.S)
DUMPS = dict(re.findall(r"```hex (pick-[\w-]+ (?:request|reply))\n(.*?)```", TEXT, re.S))


@pytest.fixture
def server():
    """The documented situation: frame 42 with the spec's 3D and 2D example grasps, 5 before truncation."""
    srv = open_server("tcp://127.0.0.1:0?reply_timeout_s=0.1")
    metric, planar = examples()["grasps-3d"][1].grasps[0], examples()["grasps-2d"][1].grasps[0]
    srv.book.publish(42, T0, (metric, planar), 5)
    yield srv
    srv.close()


def test_the_doc_has_examples():
    assert len(EXCHANGES) == 2 and len(DUMPS) == 4


@pytest.mark.parametrize("block", range(len(EXCHANGES)))
def test_exchange(server, block):
    robot = AsciiRobot(server.address)
    sent = None
    expected: list[str] = []

    def check():
        if sent is not None:
            assert robot.ask(sent, len(expected)) == expected, f"> {sent}"

    for line in EXCHANGES[block].splitlines():
        if line.startswith("> "):
            check()
            sent, expected = line[2:], []
        elif line.startswith("< "):
            expected.append(line[2:])
    check()
    robot.close()


def test_binary_dumps(server):
    with socket.create_connection(server.address, timeout=5.0) as s:
        for name in ("pick-get-next", "pick-ack"):
            s.sendall(parse_hexdump(DUMPS[f"{name} request"]))
            want, got = parse_hexdump(DUMPS[f"{name} reply"]), b""
            while not got.endswith(b"\x00"):
                got += s.recv(4096)
            assert got == want, name
