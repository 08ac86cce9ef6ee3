"""`edgeseg run` in a real subprocess: a serial device plugged in after start, the pick server in trigger mode."""

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
from virtual_port import VirtualSerialPort

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "device_configs" / "x86-cpu.yaml")


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """A real video file (MJPG in AVI through OpenCV): the sample scenes, 600 frames, long enough to plug in a port."""
    path = tmp_path_factory.mktemp("video") / "cell.avi"
    scenes = [cv2.resize(cv2.imread(str(p)), (320, 240)) for p in sorted((ROOT / "edgeseg/assets/samples").glob("*.jpg"))]
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (320, 240))
    for k in range(600):
        out.write(scenes[k % len(scenes)])
    out.release()
    return path


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edgeseg", "run", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for(cond, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def health(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def stop(proc: subprocess.Popen) -> tuple[str, str]:
    proc.terminate()
    try:
        return proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()


def test_run_starts_without_its_serial_device_and_sends_once_it_appears(video, tmp_path):
    tty, beat = tmp_path / "ttyUSB-later", tmp_path / "health.json"
    url = f"serial://{tty}?baud=115200&reconnect_max_s=0.2"
    proc = start(str(video), "--device-config", CONFIG, "--hook", url, "--health-file", str(beat))
    try:
        # The run goes on without the port, and the health file says the link is down.
        assert wait_for(lambda: health(beat).get("frames", 0) >= 3 or proc.poll() is not None, 120)
        assert proc.poll() is None, proc.communicate()[1]
        h = health(beat)
        assert h["hooks"][url]["link_up"] is False and h["hooks"][url]["failed"] >= 1
        with VirtualSerialPort(str(tty)) as port:  # the adapter is plugged in
            msgs = port.read_messages(3, timeout=60)
            assert len(msgs) >= 3 and all(m.grasps for m in msgs[-2:])
            assert wait_for(lambda: health(beat)["hooks"][url]["link_up"] is True, 30)
            assert health(beat)["hooks"][url]["reconnects"] == 1
    finally:
        _, err = stop(proc)
    assert err.count("not available at start") == 1, err  # logged once, not per retry or frame


def test_pick_server_in_trigger_mode_from_the_command_line(video, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    beat = tmp_path / "health.json"
    proc = start(str(video), "--device-config", CONFIG, "--serve", f"tcp://127.0.0.1:{port}?trigger=1&reply_timeout_s=60",
                 "--health-file", str(beat))
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                robot = socket.create_connection(("127.0.0.1", port), timeout=60)
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1]
                time.sleep(0.1)
        f = robot.makefile("rwb")
        # no trigger yet: the loop waits on purpose, and its heartbeat says so by staying fresh
        deadline = time.monotonic() + 30
        while not beat.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        first = json.loads(beat.read_text())["updated_unix"]
        time.sleep(2.5)
        waiting = json.loads(beat.read_text())
        assert waiting["updated_unix"] > first and waiting["status"] == "running" and waiting["frames"] == 0
        frames = []
        for _ in range(3):
            f.write(b"TRIGGER\n")
            f.flush()
            pick = f.readline().decode().split()
            assert pick[0] == "PICK" and pick[5] == "R", pick  # x86-cpu.yaml is calibrated: robot-frame picks
            frames.append(int(pick[2]))
            f.write(f"ACK {pick[1]}\n".encode())
            f.flush()
            assert f.readline().decode().startswith("OK")
        assert frames == [0, 1, 2]  # one frame per trigger, nothing taken in between
        robot.close()
    finally:
        _, err = stop(proc)
