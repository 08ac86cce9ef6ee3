"""TRIGGER-to-reply latency of the pick server on this machine (README: benchmarks/README.md).

    .venv/bin/python benchmarks/pick_latency.py --rounds 200

One process plays both sides over loopback TCP, as ``edgeseg run --serve
tcp://...?trigger=1`` does: a loop thread waits on the trigger gate, reads
the next sample image from disk, segments it with the default bundle, plans
grasps with the x86-cpu device config and hands them to the server; a robot
client sends ``TRIGGER`` and times until its answer line (ASCII) or frame
(binary) is complete. ``GET_NEXT`` on an already published frame measures the
server alone. The contenders are interleaved round by round; the loop's own
time per frame (read + segment + plan) is recorded so that what the server
adds is TRIGGER minus that. Writes ``results/pick_latency_<machine>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import edgeseg  # noqa: E402
from edgeseg import protocol  # noqa: E402
from edgeseg.cell import open_server, triggered_frames  # noqa: E402
from edgeseg.cell.pick_protocol import Op, Request, encode_request  # noqa: E402
from edgeseg.grasp import GraspPlanner  # noqa: E402
from edgeseg.sources import iter_frames  # noqa: E402


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def machine() -> dict:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {"cpu": model, "cores": os.cpu_count(), "arch": platform.machine(), "python": platform.python_version(),
            "load_avg_at_start": [round(x, 2) for x in os.getloadavg()]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args()

    seg = edgeseg.load(device_config=str(HERE.parent / "device_configs" / "x86-cpu.yaml"))
    planner = GraspPlanner.from_device_config(seg.device_config)
    samples = [str(p) for p in sorted((HERE.parent / "edgeseg" / "assets" / "samples").glob("*.jpg"))]
    trig = open_server("tcp://127.0.0.1:0?trigger=1&reply_timeout_s=30")
    free = open_server("tcp://127.0.0.1:0")
    loop_ms: list[float] = []

    def endless():
        while True:
            yield from iter_frames(samples)

    def run_loop():
        for frame in triggered_frames(endless(), [trig]):
            t0 = time.perf_counter()
            image = frame.image if frame.image is not None else cv2.imread(samples[0])
            result = seg(image, frame_id=frame.index)
            grasps = planner.plan(result)
            loop_ms.append((time.perf_counter() - t0) * 1e3)
            trig(result, grasps, timestamp_us=frame.timestamp_us)

    threading.Thread(target=run_loop, daemon=True).start()
    result = seg(cv2.imread(samples[0]))
    grasps = planner.plan(result)

    ascii_sock = socket.create_connection(trig.address)
    ascii_sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    ascii_file = ascii_sock.makefile("rwb")
    bin_sock = socket.create_connection(trig.address)
    bin_sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    free_sock = socket.create_connection(free.address)
    free_sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    free_file = free_sock.makefile("rwb")

    def ascii_ask(f, line: bytes) -> bytes:
        f.write(line)
        f.flush()
        return f.readline()

    def trigger_ascii() -> None:
        assert ascii_ask(ascii_file, b"TRIGGER\n").startswith(b"PICK")

    seq = 0

    def trigger_binary() -> None:
        nonlocal seq
        bin_sock.sendall(encode_request(Request(Op.TRIGGER, 0, seq)))
        seq += 1
        data = b""
        while not data.endswith(b"\x00"):
            data += bin_sock.recv(65536)

    def get_next() -> None:
        free.book.publish(0, 0, tuple(protocol.GraspRecord.from_grasp(g) for g in grasps))
        assert ascii_ask(free_file, b"GET_NEXT\n").startswith(b"PICK")

    contenders = {"trigger_ascii": trigger_ascii, "trigger_binary": trigger_binary, "get_next_ascii": get_next}
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for r in range(args.warmup + args.rounds):
        for name, fn in contenders.items():
            t0 = time.perf_counter()
            fn()
            if r >= args.warmup:
                times[name].append((time.perf_counter() - t0) * 1e3)
    loop = loop_ms[2 * args.warmup:]
    summary = {k: {"p50_ms": round(pct(v, 50), 3), "p99_ms": round(pct(v, 99), 3), "mean_ms": round(statistics.fmean(v), 3)}
               for k, v in {**times, "loop_read_segment_plan": loop}.items()}
    summary["server_added_p50_ms"] = round(summary["trigger_ascii"]["p50_ms"] - summary["loop_read_segment_plan"]["p50_ms"], 3)
    report = {"benchmark": "pick_latency", "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
              "machine": machine(), "rounds": args.rounds, "instances_per_frame": len(result),
              "summary": summary, "samples_ms": {k: [round(x, 3) for x in v] for k, v in times.items()}}
    trig.close()
    free.close()
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"pick_latency_{platform.machine()}-{os.cpu_count()}c.json"
    (args.out / name).write_text(json.dumps(report, indent=1) + "\n")
    print("| contender | p50 ms | p99 ms | mean ms |\n|---|---:|---:|---:|")
    for k, v in summary.items():
        if isinstance(v, dict):
            print(f"| {k} | {v['p50_ms']:.2f} | {v['p99_ms']:.2f} | {v['mean_ms']:.2f} |")
    print(f"server added (TRIGGER p50 - loop p50): {summary['server_added_p50_ms']:.2f} ms -> {args.out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
