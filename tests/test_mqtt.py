"""MQTT hook through a real broker: Debian's mosquitto, started and stopped here on a loopback port."""

import json
import shutil
import socket
import subprocess
import time

import pytest
from cell_support import records_of, scene

from edgeseg.hooks import open_hook

mqtt = pytest.importorskip("paho.mqtt.client", reason="paho-mqtt (the cell extra) is installed by make test")
MOSQUITTO = shutil.which("mosquitto") or (shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, tmp_path, port: int) -> None:
        self.port = port
        self.conf = tmp_path / "mosquitto.conf"
        self.conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        self.proc = None

    def start(self) -> None:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def broker(tmp_path):
    if MOSQUITTO is None:
        pytest.fail("mosquitto is not installed: `make test` installs it (apt-get install mosquitto)")
    b = Broker(tmp_path, free_port())
    b.start()
    yield b
    b.stop()


class Subscriber:
    def __init__(self, port: int, topic: str) -> None:
        self.got: list[tuple[str, bytes, bool]] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_message = lambda c, u, m: self.got.append((m.topic, m.payload, m.retain))
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()

    def wait(self, cond, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not cond(self.got):
            time.sleep(0.02)
        return cond(self.got)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def on(topic, got):
    return [json.loads(p) for t, p, _ in got if t == topic]


def test_frames_reach_a_subscriber_retained_last_result(broker):
    sub = Subscriber(broker.port, "cell1/#")
    time.sleep(0.2)
    with open_hook(f"mqtt://127.0.0.1:{broker.port}/cell1?qos=1&queue_size=8") as hook:
        assert hook.wait_connected(10.0)
        sent = {}
        for k in range(3):
            r, g = scene(k)
            sent[k] = g
            hook(r, g, timestamp_us=1000 + k)
        assert sub.wait(lambda got: len(on("cell1/grasps", got)) == 3)
        assert hook.stats.delivered == 3 and hook.stats.link_up
    grasps = on("cell1/grasps", sub.got)
    assert [d["frame_id"] for d in grasps] == [0, 1, 2] and [d["t_us"] for d in grasps] == [1000, 1001, 1002]
    assert [g["u"] for g in grasps[2]["grasps"]] == [r.u for r in records_of(sent[2])]
    result = on("cell1/result", sub.got)[-1]
    assert result["frame_id"] == 2 and len(result["instances"]) == 3
    assert any(t == "cell1/status" and p == b"offline" for t, p, _ in sub.got)  # said goodbye on close
    sub.close()
    late = Subscriber(broker.port, "cell1/+")  # connects after the run: gets the last frame, retained
    assert late.wait(lambda got: on("cell1/grasps", got) and on("cell1/result", got))
    assert on("cell1/grasps", late.got)[-1]["frame_id"] == 2 and all(r for _, _, r in late.got)
    late.close()


def test_broker_down_at_start_and_restart(tmp_path):
    port = free_port()
    broker = Broker(tmp_path, port)
    hook = open_hook(f"mqtt://127.0.0.1:{port}/cell2?qos=0&reconnect_max_s=1")
    try:
        r, g = scene(0)
        hook(r, g)
        assert hook.flush(5.0)
        assert hook.stats.failed == 1 and hook.stats.link_up is False  # no broker: counted, run goes on
        broker.start()
        assert hook.wait_connected(15.0)
        sub = Subscriber(port, "cell2/grasps")
        time.sleep(0.2)
        hook(*scene(1))
        assert sub.wait(lambda got: on("cell2/grasps", got))
        broker.stop()  # broker restarts: the hook reconnects by itself
        assert _wait(lambda: not hook.connected, 10.0) and hook.stats.link_up is False
        broker.start()
        assert hook.wait_connected(15.0) and hook.stats.link_up and hook.stats.reconnects == 1
        sub.close()
    finally:
        hook.close()
        broker.stop()


def _wait(cond, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not cond():
        time.sleep(0.02)
    return cond()


def test_bad_mqtt_urls():
    with pytest.raises(ValueError, match="qos"):
        open_hook("mqtt://127.0.0.1:1/x?qos=3")
    with pytest.raises(ValueError, match="wildcards"):
        open_hook("mqtt://127.0.0.1:1/a/+")
