"""Pick server over loopback: scripted robots (ASCII and binary), trigger mode, garbage and disconnects."""

import random
import socket
import threading
import time

import pytest
from cell_support import T0, AsciiRobot, BinaryRobot, Loop, records_of, scene

from edgeseg.cell import open_server
from edgeseg.cell.pick_protocol import Op, parse_line
from edgeseg.cell.picks import Code


@pytest.fixture
def trigger_server():
    srv = open_server("tcp://127.0.0.1:0?trigger=1&reply_timeout_s=5")
    loop = Loop([srv])
    loop.start()
    yield srv, loop
    srv.close()
    loop.join(5.0)


def test_ascii_robot_trigger_get_next_ack_cycles(trigger_server):
    srv, loop = trigger_server
    robot = AsciiRobot(srv.address)
    seen_frames = []
    for _ in range(5):
        (first,) = robot.ask("TRIGGER")
        f = first.split()
        assert f[0] == "PICK", first
        pick_id, frame_id, t_us = int(f[1]), int(f[2]), int(f[3])
        assert t_us == T0 + frame_id and frame_id not in seen_frames  # a new frame per trigger
        seen_frames.append(frame_id)
        recs = records_of(loop.sent[frame_id])
        assert f[5] == "P" and (float(f[6]), float(f[7])) == pytest.approx((recs[0].u, recs[0].v), rel=1e-6)
        assert int(f[4]) == recs[0].class_id and int(f[-1]) == recs[0].flags
        (second,) = robot.ask("GET_NEXT")  # the second best of the same frame, the next id
        s = second.split()
        assert (int(s[1]), int(s[2])) == (pick_id + 1, frame_id)
        assert float(s[6]) == pytest.approx(recs[1].u, rel=1e-6)
        assert robot.ask(f"ACK {pick_id}") == [f"OK {pick_id}"]
        assert robot.ask(f"REJECT {pick_id + 1}") == [f"OK {pick_id + 1}"]
        assert robot.ask(f"ACK {pick_id}")[0].startswith("ERR 4 UNKNOWN_ID")  # settled already
    assert srv.trigger_gate.requests == 5 and len(loop.sent) == 5  # frames taken only on request
    (status,) = robot.ask("STATUS")
    assert status.split()[:2] == ["STATUS", "TRIGGER"] and status.split()[5:9] == ["10", "5", "5", "5"]
    robot.close()


def test_binary_robot_gets_the_records_of_the_serial_protocol(trigger_server):
    srv, loop = trigger_server
    robot = BinaryRobot(srv.address)
    for _ in range(3):
        reply = robot.ask(Op.TRIGGER)
        assert reply.code == Code.OK and reply.timestamp_us == T0 + reply.frame_id
        recs = records_of(loop.sent[reply.frame_id])
        assert reply.picks[0].record == recs[0] and reply.pending == len(recs) - 1 and reply.total_grasps == len(recs)
        assert robot.ask(Op.ACK, reply.picks[0].id).code == Code.OK
        everything = robot.ask(Op.GET_ALL)
        assert [p.record for p in everything.picks] == list(recs)
        assert [p.id for p in everything.picks] == [reply.picks[0].id + i for i in range(len(recs))]
    assert robot.ask(Op.REJECT, 10**6).code == Code.UNKNOWN_ID
    robot.close()


def test_free_run_trigger_answers_with_a_frame_captured_after_it():
    srv = open_server("tcp://127.0.0.1:0")
    stop = threading.Event()

    def loop():
        k = 0
        while not stop.is_set():
            r, g = scene(k)
            srv(r, g, timestamp_us=time.time_ns() // 1000)
            k += 1
            time.sleep(0.01)

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    robot = AsciiRobot(srv.address)
    try:
        before = time.time_ns() // 1000
        (line,) = robot.ask("TRIGGER")
        assert line.startswith("PICK") and int(line.split()[3]) >= before
    finally:
        stop.set()
        t.join(5.0)
        robot.close()
        srv.close()


def test_trigger_times_out_without_frames():
    with open_server("tcp://127.0.0.1:0?reply_timeout_s=0.2") as srv:
        robot = AsciiRobot(srv.address)
        t0 = time.monotonic()
        assert robot.ask("TRIGGER")[0] == "ERR 2 TIMEOUT 0 0"
        assert 0.15 < time.monotonic() - t0 < 3.0
        assert robot.ask("GET_NEXT")[0] == "ERR 3 NO_FRAME 0 0"
        robot.close()


def test_garbage_and_disconnects_do_not_disturb_other_clients(trigger_server):
    srv, loop = trigger_server
    good = AsciiRobot(srv.address)
    rng = random.Random(7)
    errors = []

    def vandal(kind: int) -> None:
        try:
            with socket.create_connection(srv.address, timeout=5.0) as s:
                if kind == 0:  # random bytes, binary mode or ASCII depending on the first byte
                    for _ in range(40):
                        s.sendall(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))))
                elif kind == 1:  # half a request, then gone
                    s.sendall(b"TRIGG")
                elif kind == 2:  # a trigger, gone before the answer
                    s.sendall(b"TRIGGER\n")
                else:  # an endless line
                    s.sendall(b"A" * 5000)
        except OSError as e:  # the server may drop a vandal: that is allowed
            errors.append(e)

    vandals = [threading.Thread(target=vandal, args=(k % 4,)) for k in range(8)]
    for v in vandals:
        v.start()
    for _ in range(4):
        (line,) = good.ask("TRIGGER")
        assert line.startswith("PICK"), line
        assert good.ask(f"ACK {line.split()[1]}")[0].startswith("OK")
    for v in vandals:
        v.join(10.0)
    assert good.ask("GET_ALL", 1)[0].startswith("PICKS")
    bad = AsciiRobot(srv.address)
    assert bad.ask("FLY TO THE MOON")[0] == "ERR 5 BAD_REQUEST 0 0"
    assert bad.ask("ACK twelve")[0] == "ERR 5 BAD_REQUEST 0 0"
    assert bad.ask("STATUS")[0].startswith("STATUS TRIGGER")
    bad.close()
    good.close()
    assert srv.stats.failed == 0


def test_tuple_format_for_urscript(trigger_server):
    srv, loop = trigger_server
    robot = AsciiRobot(srv.address)
    assert robot.ask("FORMAT TUPLE") == ["(0,0,0,0,0,0,0,0,0,0,0,0)"]
    (line,) = robot.ask("TRIGGER")
    vals = line.strip("()").split(",")
    assert len(vals) == 12 and vals[0] == "0" and int(vals[4]) == 0  # pixel coordinates (no calibration)
    assert robot.ask("REJECT 999999")[0].startswith("(4,0,")
    robot.close()


def test_request_lines_are_validated():
    assert parse_line(b"ack 12\r").pick_id == 12
    for bad in (b"", b"ACK", b"ACK -1", b"GET_NEXT now", b"\xff\xfe", b"NONE", b"FORMAT XML"):
        with pytest.raises(ValueError):
            parse_line(bad)
    with pytest.raises(ValueError, match="tcp://HOST:PORT"):
        open_server("tcp://localhost")
    with pytest.raises(ValueError, match="unknown server URL"):
        open_server("ftp://localhost:21")
