"""Hook interface: URL resolution, queue policies, drops, errors, close; callback, mem, jsonl, udp sinks."""

import json
import socket
import threading
import time

import pytest
from synthetic_masks import rectangle_mask, result_from_masks

from edgeseg import protocol
from edgeseg.grasp import GripperSpec, plan_grasps
from edgeseg.hooks import hook_class, open_hook
from edgeseg.hooks.callback import CallbackHook

GRIPPER = GripperSpec(max_opening=60, finger_width=8, finger_thickness=4, margin=2, unit="px")


def frame(frame_id: int):
    r = result_from_masks([rectangle_mask((96, 128), (40.0, 40.0), 40, 14, 0.2),
                           rectangle_mask((96, 128), (90.0, 60.0), 30, 12, 1.1)], frame_id=frame_id)
    return r, plan_grasps(r, GRIPPER)


@pytest.mark.parametrize("url,name", [
    ("serial:///dev/ttyUSB0?baud=9600", "SerialHook"), ("loop://", "SerialHook"), ("/dev/ttyACM0", "SerialHook"),
    ("spy://loop://", "SerialHook"), ("hwgrep://0403:6001", "SerialHook"), ("socket://127.0.0.1:9", "SerialHook"), ("udp://127.0.0.1:9", "UdpHook"), ("jsonl:-", "JsonlHook"),
    ("mem://", "MemoryHook"), ("callback", "CallbackHook"),
])
def test_scheme_resolution(url, name):
    assert hook_class(url).__name__ == name


def test_bad_urls_and_options():
    with pytest.raises(ValueError, match="unknown hook URL.*schemes"):
        open_hook("ftp://x")
    with pytest.raises(ValueError, match="unknown option 'bogus'"):
        open_hook("mem://?bogus=1")
    with pytest.raises(ValueError, match="queue_size: expected int"):
        open_hook("mem://?queue_size=many")
    with pytest.raises(ValueError, match="udp://host:port"):
        open_hook("udp://127.0.0.1")
    with pytest.raises(ValueError, match="fn="):
        open_hook("callback")
    with pytest.raises(ValueError, match="drop must be"):
        open_hook("mem://", drop="random")
    with pytest.raises(TypeError, match="Result"):
        with open_hook("mem://") as h:
            h({"not": "a result"})


def test_a_subclass_cannot_forget_to_start_its_worker():
    from edgeseg.hooks import Hook

    class Minimal(Hook):  # no start call anywhere: the base starts the worker after construction
        name = "minimal"

        def __init__(self):
            super().__init__(queue_size=4)
            self.got = []

        def _deliver(self, item):
            self.got.append(item.frame_id)

    with Minimal() as hook:
        for k in range(3):
            hook(*frame(k), timestamp_us=1234 + k)
        assert hook.flush(5.0)
    assert hook.got == [0, 1, 2] and hook.stats.delivered == 3


def test_query_options_are_typed():
    with open_hook("mem://?queue_size=3&drop=newest&max_grasps=1") as h:
        assert (h.queue_size, h.drop, h.max_grasps) == (3, "newest", 1)
    with open_hook("mem://?queue_size=3", queue_size=5) as h:
        assert h.queue_size == 5  # keyword wins


@pytest.mark.parametrize("drop,expect_second", [("oldest", 49), ("newest", 1)])
def test_queue_policy_and_drop_count(drop, expect_second):
    entered, release, seen = threading.Event(), threading.Event(), []

    def slow(result, grasps):
        seen.append(result.frame_id)
        entered.set()
        release.wait(5.0)

    hook = CallbackHook(slow, queue_size=1, drop=drop)
    hook(*frame(0))
    assert entered.wait(5.0)
    t0 = time.perf_counter()
    for k in range(1, 50):
        hook(*frame(k))
    assert time.perf_counter() - t0 < 1.0  # submitting never waited for the blocked sink
    release.set()
    assert hook.flush(5.0)
    hook.close()
    st = hook.stats
    assert seen == [0, expect_second]
    assert (st.submitted, st.delivered, st.dropped) == (50, 2, 48)


def test_sink_errors_are_counted_and_the_worker_goes_on():
    calls = []

    def flaky(result, grasps):
        calls.append(result.frame_id)
        if result.frame_id == 1:
            raise RuntimeError("controller said no")

    with CallbackHook(flaky, queue_size=8) as hook:
        for k in range(3):
            hook(*frame(k))
        assert hook.flush(5.0)
        st = hook.stats
    assert calls == [0, 1, 2] and (st.delivered, st.failed) == (2, 1) and "controller said no" in st.last_error
    with pytest.raises(RuntimeError, match="closed"):
        hook(*frame(3))


def test_close_delivers_what_is_queued():
    hook = open_hook("mem://", queue_size=10)
    for k in range(10):
        hook(*frame(k))
    hook.close()
    assert [m.frame_id for m in hook.messages()] == list(range(10))
    assert [m.seq for m in hook.messages()] == list(range(10))


def test_max_grasps_keeps_the_best():
    r, grasps = frame(0)
    with open_hook("mem://?max_grasps=1") as hook:
        hook(r, grasps)
        assert hook.flush(5.0)
        (msg,) = hook.messages()
    assert len(msg.grasps) == 1 and msg.grasps[0].instance == grasps[0].instance


def test_jsonl_file_and_stdout(tmp_path, capsys):
    path = tmp_path / "g.jsonl"
    with open_hook(f"jsonl:{path}", queue_size=4) as hook:
        for k in range(3):
            hook(*frame(k))
    lines = [json.loads(ln) for ln in path.read_text().splitlines()]
    assert [d["frame_id"] for d in lines] == [0, 1, 2] and len(lines[0]["grasps"]) == 2
    with open_hook("jsonl:-") as hook:
        hook(*frame(7))
    assert json.loads(capsys.readouterr().out)["frame_id"] == 7


@pytest.mark.parametrize("fmt", ["binary", "json"])
def test_udp_datagrams_on_loopback(fmt):
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(5.0)
    port = rx.getsockname()[1]
    r, grasps = frame(5)
    with open_hook(f"udp://127.0.0.1:{port}?format={fmt}") as hook:
        hook(r, grasps)
        data, _ = rx.recvfrom(65536)
    rx.close()
    if fmt == "binary":
        msg = protocol.decode(data)
        assert msg.frame_id == 5 and [g.instance for g in msg.grasps] == [g.instance for g in grasps]
    else:
        d = json.loads(data)
        assert d["frame_id"] == 5 and d["grasps"][0]["u"] == pytest.approx(grasps[0].center[0], abs=1e-5)
