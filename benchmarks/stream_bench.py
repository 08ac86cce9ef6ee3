"""Throughput of ``edgeseg run`` on a video file: the pipelined loop against the same stages run sequentially.

One run, interleaved: each round runs both modes (order alternating) on the
same MJPG video (the sample scenes sliding as on a conveyor), with what
``edgeseg run video --track --out DIR`` does per frame: decode the frame,
segment it with the default bundle, track, write per-frame JSON and the
annotated video. Frames per second, median over rounds, and the ratio::

    .venv/bin/python benchmarks/stream_bench.py --frames 120 --rounds 5

writes ``benchmarks/results/stream_<machine>.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from decode_bench import machine  # noqa: E402

import edgeseg  # noqa: E402
from edgeseg.sources import iter_frames  # noqa: E402
from edgeseg.stream import FrameJsonSink, OverlaySink, Pipeline, PipelineOptions, Renderer  # noqa: E402
from edgeseg.track import InstanceTracker  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[1] / "edgeseg" / "assets" / "samples"


def make_video(path: Path, frames: int) -> Path:
    scenes = [cv2.imread(str(p)) for p in sorted(SAMPLES.glob("*.jpg"))]
    h, w = scenes[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (w, h))
    for i in range(frames):
        writer.write(np.roll(cv2.resize(scenes[(i // 30) % len(scenes)], (w, h)), (i % 30) * 8, axis=1))
    writer.release()
    return path


def run_once(seg, video: Path, out: Path, *, threaded: bool) -> tuple[float, int]:
    tracker = InstanceTracker()
    steps = [("track", lambda rec: setattr(rec, "result", tracker.update(rec.result)))]
    sinks = [FrameJsonSink(out), OverlaySink(out, Renderer())]
    pipe = Pipeline(iter_frames([str(video)]), lambda f: seg(f.image, frame_id=f.index), steps=steps, sinks=sinks,
                    options=PipelineOptions(threaded=threaded))
    t0 = time.perf_counter()
    summary = pipe.run()
    return time.perf_counter() - t0, summary.frames


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    info = machine()
    seg = edgeseg.load()
    fps: dict[str, list[float]] = {"sequential": [], "pipelined": []}
    with tempfile.TemporaryDirectory() as tmp:
        video = make_video(Path(tmp) / "belt.avi", args.frames)
        run_once(seg, video, Path(tmp) / "warm", threaded=False)
        for r in range(args.rounds):
            for mode in (("sequential", "pipelined") if r % 2 == 0 else ("pipelined", "sequential")):
                wall, frames = run_once(seg, video, Path(tmp) / f"{mode}{r}", threaded=mode == "pipelined")
                assert frames == args.frames, f"{mode}: {frames} of {args.frames} frames"
                fps[mode].append(frames / wall)
                print(f"round {r} {mode:10s} {frames / wall:6.2f} fps", flush=True)
    med = {k: round(statistics.median(v), 3) for k, v in fps.items()}
    payload = {
        "command": f"python benchmarks/stream_bench.py --frames {args.frames} --rounds {args.rounds}",
        "machine": info, "bundle": "default (edgeseg-nano, onnxruntime CPU)",
        "video": f"{args.frames} frames 640x480 MJPG; per frame: segment, track, JSON + annotated mp4",
        "fps_median": med, "fps_samples": {k: [round(x, 3) for x in v] for k, v in fps.items()},
        "speedup_pipelined_over_sequential": round(med["pipelined"] / med["sequential"], 3),
    }
    slug = f"{info['arch']}-{info['cores']}c"
    out = args.out or Path(__file__).resolve().parent / "results" / f"stream_{slug}.json"
    out.write_text(json.dumps(payload, indent=1) + "\n")
    print(json.dumps(med), "speedup", payload["speedup_pipelined_over_sequential"], "->", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
