"""The streaming loop survives every per-frame failure and ends cleanly (real videos, real files, real signals)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from stream_support import write_video

from edgeseg.health import Heartbeat
from edgeseg.hooks import open_hook
from edgeseg.result import Result
from edgeseg.sources import SourceError, SourceOptions, iter_frames
from edgeseg.stream import FrameJsonSink, HookSink, JsonlSink, OverlaySink, Pipeline, PipelineOptions, Renderer


def edgeseg_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "edgeseg", *args]


def run_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(edgeseg_cmd(*args), capture_output=True, text=True, timeout=timeout)


def square_result(frame, *, nan: bool = False) -> Result:
    """A one-instance Result over the frame's red square (found by colour, no model needed)."""
    from synthetic_masks import result_from_masks

    img = frame.image
    mask = (img[:, :, 2] > 150) & (img[:, :, 0] < 100)
    res = result_from_masks([mask], frame_id=frame.index)
    if nan:
        res = Result(np.full((1, 4), np.nan, np.float32), res.scores, res.class_ids, res.masks,
                     res.class_names, res.image_size, frame_id=frame.index)
    return res


@pytest.fixture()
def tmpfs(tmp_path):
    """A 16 KiB tmpfs (root only); skipped where mounting is not allowed."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_3000_frame_video_with_corrupt_frames_runs_to_the_end(tiny_bundle, tmp_path):
    corrupt = (7, 300, 301, 1500, 2998)
    video = write_video(tmp_path / "belt.avi", 3000, size=(48, 32), corrupt=corrupt)
    health = tmp_path / "health.json"
    proc = run_cli("run", str(video), "--bundle", str(tiny_bundle), "--health-file", str(health),
                   "--jsonl", str(tmp_path / "r.jsonl"))
    assert proc.returncode == 1, proc.stderr  # the source ended; some frames failed
    beat = json.loads(health.read_text())
    assert beat["status"] == "stopped" and beat["reason"] == "source ended"
    assert beat["failures"] == len(corrupt) and beat["errors"] == {"read": len(corrupt)}
    assert beat["frames"] == 3000 - len(corrupt)
    lines = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    names = [x["name"] for x in lines]
    assert len(names) == 3000 - len(corrupt) and names[-1] == "belt_002999"
    assert not {f"belt_{k:06d}" for k in corrupt} & set(names)
    ids = [x["frame_id"] for x in lines]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)  # every frame in order, frame ids unique
    assert proc.stderr.count("read failed on frame") == 1  # logged once, counted after


def test_a_video_that_keeps_failing_ends_the_run_with_its_reason(tiny_bundle, tmp_path):
    video = write_video(tmp_path / "broken.avi", 80, corrupt=tuple(range(20, 60)))
    health = tmp_path / "health.json"
    proc = run_cli("run", str(video), "--bundle", str(tiny_bundle), "--health-file", str(health))
    assert proc.returncode == 3, proc.stderr
    assert "reads in a row failed at frame 20 of 80" in proc.stderr
    beat = json.loads(health.read_text())
    assert beat["status"] == "failed" and "file is broken" in beat["reason"] and beat["frames"] == 20


def test_a_live_source_is_reopened_with_backoff_then_given_up(caplog):
    waits = []
    opts = SourceOptions(reopen_attempts=3, backoff_s=0.01, backoff_max_s=0.03)
    from edgeseg import sources

    with pytest.raises(SourceError, match=r"camera.*could not be opened \(3 reopen attempts failed\)"):
        list(sources._live(99, "camera99", sources._Counter(), opts, None, sleep=waits.append))
    assert waits == [0.01, 0.02, 0.03]  # doubling, capped
    assert SourceOptions().backoff(10) == SourceOptions().backoff_max_s


def test_a_live_source_that_stops_delivering_is_reopened(tmp_path):
    """A video file read as a live source: after its end, reads fail, it is reopened and starts again."""
    from edgeseg import sources

    video = write_video(tmp_path / "v.avi", 10)
    opts = SourceOptions(max_consecutive_failures=3, backoff_s=0.0)
    frames = []
    for f in sources._live(str(video), "cam", sources._Counter(), opts, None):
        frames.append(f)
        if len(frames) == 26:
            break
    ok = [f.image is not None for f in frames]
    assert ok == [True] * 10 + [False] * 3 + [True] * 10 + [False] * 3  # failures counted, then reopened
    assert all(f.live and f.source == "cam" for f in frames)
    assert np.array_equal(frames[0].image, frames[13].image)
    assert [f.index for f in frames] == list(range(26)) and all(f.timestamp > 0 for f in frames)


def test_folders_recursive_with_videos_and_names_that_never_collide(tiny_bundle, scene, tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    cv2.imwrite(str(src / "scene.jpg"), scene)
    cv2.imwrite(str(src / "scene.png"), scene[:, ::-1])
    write_video(src / "a.avi", 3)
    write_video(src / "a.mp4", 2, fourcc="mp4v")
    cv2.imwrite(str(src / "sub" / "scene.jpg"), scene[::-1])
    flat = [f.name for f in iter_frames([str(src)])]
    assert flat == ["a_000000", "a_000001", "a_000002", "a_mp4_000000", "a_mp4_000001", "scene", "scene_png"]
    deep = [f.name for f in iter_frames([str(src)], options=SourceOptions(recursive=True))]
    assert deep == flat + ["scene_jpg"]
    out = tmp_path / "out"
    proc = run_cli("run", str(src), "--recursive", "--bundle", str(tiny_bundle), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.glob("*.json")) == sorted(f"{n}.json" for n in deep)
    assert sorted(p.name for p in out.glob("*.png")) == ["scene.png", "scene_jpg.png", "scene_png.png"]
    for name, frames in (("a.mp4", 3), ("a_mp4.mp4", 2)):  # annotated videos, one per source video
        cap = cv2.VideoCapture(str(out / name))
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == frames
    json_a = json.loads((out / "scene.json").read_text())
    json_b = json.loads((out / "scene_png.json").read_text())
    assert json_a["name"] == "scene" and json_b["name"] == "scene_png" and json_a["frame_id"] != json_b["frame_id"]


def test_hook_that_raises_and_a_broken_sink_do_not_stop_the_loop(tmp_path, caplog):
    video = write_video(tmp_path / "v.avi", 30)
    calls = []

    def flaky(result, grasps):
        calls.append(result.frame_id)
        if result.frame_id % 3 == 0:
            raise RuntimeError("controller rejected the frame")

    class Broken:
        name = "broken"

        def write(self, record):
            raise OSError(28, "No space left on device")

        def close(self):
            pass

    hook = open_hook("callback", fn=flaky, queue_size=64)
    out = tmp_path / "out"
    pipe = Pipeline(iter_frames([str(video)]), square_result,
                    sinks=[HookSink(hook), Broken(), FrameJsonSink(out)])
    with caplog.at_level(logging.ERROR, logger="edgeseg.run"):
        summary = pipe.run()
    assert summary.frames == 30 and summary.errors == {"sink:broken:OSError": 30} and summary.exit_code == 1
    assert sorted(calls) == list(range(30)) and hook.stats.failed == 10 and hook.stats.delivered == 20
    assert len(list(out.glob("*.json"))) == 30  # the sinks after the broken one got every frame
    assert sum("sink:broken:OSError failed" in r.getMessage() for r in caplog.records) == 1


def test_nan_boxes_reaching_the_overlay_are_counted_and_the_loop_goes_on(tmp_path):
    video = write_video(tmp_path / "v.avi", 20)
    out = tmp_path / "out"

    def infer(frame):
        return square_result(frame, nan=frame.index in (4, 5, 11))

    overlay = OverlaySink(out, Renderer(), png_frames=True)
    summary = Pipeline(iter_frames([str(video)]), infer, sinks=[overlay, FrameJsonSink(out)]).run()
    assert summary.frames == 20 and summary.errors == {"sink:overlay:ValueError": 3}
    assert len(list(out.glob("*.png"))) == 17 and len(list(out.glob("*.json"))) == 20
    assert summary.status == "ended" and summary.exit_code == 1


def test_a_model_error_skips_the_frame_only(tmp_path):
    video = write_video(tmp_path / "v.avi", 12)

    def infer(frame):
        if frame.index == 3:
            raise MemoryError("arena exhausted")
        return square_result(frame)

    jsonl = tmp_path / "r.jsonl"
    health = Heartbeat(tmp_path / "h.json", interval_s=0)
    for threaded in (True, False):
        jsonl.unlink(missing_ok=True)
        summary = Pipeline(iter_frames([str(video)]), infer, sinks=[JsonlSink(str(jsonl))], health=health,
                           options=PipelineOptions(threaded=threaded)).run()
        assert (summary.frames, summary.failed_frames, summary.errors) == (11, 1, {"infer:MemoryError": 1})
        assert [json.loads(x)["frame_id"] for x in jsonl.read_text().splitlines()] == [i for i in range(12) if i != 3]


def test_full_disk_under_the_health_file_and_a_jsonl_sink(tiny_bundle, tmp_path, tmpfs):
    """16 KiB tmpfs: the JSONL sink fills it; health writes then fail too; inference goes on to the end."""
    video = write_video(tmp_path / "v.avi", 150)
    health, jsonl, hook_file = tmpfs / "health.json", tmpfs / "r.jsonl", tmpfs / "g.jsonl"
    proc = run_cli("run", str(video), "--bundle", str(tiny_bundle), "--score", "0.01", "--health-file", str(health),
                   "--jsonl", str(jsonl), "--hook", f"jsonl:{hook_file}", "--grasps")
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.count("instances") == 150  # every frame segmented
    assert "sink:jsonl:OSError failed" in proc.stderr and proc.stderr.count("sink:jsonl:OSError failed") == 1
    assert "health:OSError failed" in proc.stderr
    lines = jsonl.read_bytes().split(b"\n")
    assert lines[-1] == b"" and 0 < len(lines) - 1 < 150  # the disk filled part-way, no torn last line
    ids = [json.loads(x)["frame_id"] for x in lines[:-1]]
    assert ids == list(range(len(ids)))  # what was written stays, whole and in order
    for x in hook_file.read_text().splitlines() if hook_file.exists() else []:
        json.loads(x)
    beat = json.loads(health.read_text())  # an earlier heartbeat, intact
    assert beat["pid"] > 0 and beat["frames"] < 150
    assert [p.name for p in tmpfs.iterdir() if ".tmp" in p.name] == []


def test_sigterm_ends_cleanly_with_hooks_flushed_and_health_stopped(tiny_bundle, tmp_path):
    video = write_video(tmp_path / "long.avi", 3000, size=(48, 32))
    health, jsonl, hook_file = tmp_path / "h.json", tmp_path / "r.jsonl", tmp_path / "g.jsonl"
    proc = subprocess.Popen(edgeseg_cmd("run", str(video), "--bundle", str(tiny_bundle), "--health-file",
                                        str(health), "--jsonl", str(jsonl), "--hook", f"jsonl:{hook_file}?queue_size=10000"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (jsonl.exists() and jsonl.stat().st_size > 2000):
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read()
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    beat = json.loads(health.read_text())
    assert beat["status"] == "stopped" and beat["reason"] == "SIGTERM" and 0 < beat["frames"] < 3000
    results = jsonl.read_text().splitlines()
    grasps = hook_file.read_text().splitlines()
    assert len(results) == len(grasps) == beat["frames"]  # hooks flushed: every finished frame delivered
    assert "Traceback" not in err


def test_live_frames_are_dropped_oldest_first_never_waited_for(tmp_path):
    """A live source faster than the model: the reader never waits, the oldest queued frames are dropped and counted."""
    from edgeseg.sources import Frame

    video = write_video(tmp_path / "v.avi", 5)
    image = next(iter_frames([str(video)])).image
    waits = []

    def camera():
        for i in range(60):
            t0 = time.perf_counter()
            yield Frame(f"cam_{i:06d}", image, None, i, time.time(), live=True, source="cam")
            waits.append(time.perf_counter() - t0)  # how long the pipeline held the camera up

    def slow_model(frame):
        time.sleep(0.01)
        return square_result(frame)

    health = Heartbeat(tmp_path / "h.json", interval_s=0)
    jsonl = tmp_path / "r.jsonl"
    summary = Pipeline(camera(), slow_model, sinks=[JsonlSink(str(jsonl))], health=health,
                       options=PipelineOptions(queue_size=2)).run()
    assert summary.dropped > 0 and summary.frames + summary.dropped == 60 and summary.exit_code == 0
    ids = [json.loads(x)["frame_id"] for x in jsonl.read_text().splitlines()]
    assert ids == sorted(ids) and ids[-1] == 59  # in order, and the newest frame always made it
    assert max(waits) < 0.05  # never blocked for a model call
    assert json.loads((tmp_path / "h.json").read_text())["dropped"] == summary.dropped
