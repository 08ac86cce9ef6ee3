"""Mask decoding benchmark: the C path vs the numpy reference vs the public YOLO-seg variants A and B.

Everything is timed in one process and one run, interleaved round by round
(so machine noise hits all contenders alike), one thread each (BLAS and
OpenCV pinned to 1 thread), and reported as medians and ratios:

* C path, whole decode from raw outputs (8400 anchors x 80 classes: candidates,
  NMS, letterbox undo, masks) with three mask outputs: box-cropped bitmaps,
  full frames into a reused buffer, COCO RLE; and with single speed tricks
  switched off, to measure each one;
* the numpy reference decoder (same semantics, same outputs bit for bit);
* variants A and B (``benchmarks/decode_variants.py``), timed on the mask step
  only, given the kept detections, which flatters them;
* the memory-write floor: the bytes a full-frame output must write, divided by
  this machine's streaming-store bandwidth; taken as the fastest of a
  pre-touched numpy ``fill`` of the same frames, the C path's own streaming
  zero-fill of them (zero-area boxes), and ``bytes / bandwidth`` of a large fill.

Usage::

    .venv/bin/python benchmarks/decode_bench.py                  # N = 1 10 50 100, writes benchmarks/results/
    .venv/bin/python benchmarks/decode_bench.py --n 50 --repeats 9 --out /tmp/d.json
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # before numpy loads BLAS
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import decode_variants as dv  # noqa: E402

from edgeseg.decode import cpath, reference  # noqa: E402

HERE = Path(__file__).resolve().parent
ORIG = (720, 1280)


def machine() -> dict:
    """CPU model, cores, memory and library versions of this run."""
    model = "unknown"
    try:
        text = Path("/proc/cpuinfo").read_text()
        found = re.search(r"^model name\s*:\s*(.+)$", text, re.M) or re.search(r"^Hardware\s*:\s*(.+)$", text, re.M)
        model = found.group(1).strip() if found else model
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "arch": platform.machine(),
        "system": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "load_avg_at_start": [round(x, 2) for x in load] if load else None,
    }


def interleaved_medians(runs: dict, rounds: int) -> dict[str, float]:
    """Median ms per contender over ``rounds`` rounds, each calling every contender once in turn.

    Interleaving makes a shared machine's noise hit every contender alike, so their ratios hold.
    """
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t0) * 1e3)
    return {name: statistics.median(t) for name, t in times.items()}


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def write_bandwidth(frames: np.ndarray, repeats: int) -> float:
    """Streaming-store bandwidth in bytes/s: ``fill`` of a large, already touched buffer."""
    frames.fill(False)
    return frames.nbytes / (median_ms(lambda: frames.fill(False), repeats) / 1e3)


def binding_overhead_us(calls: int = 20000) -> dict:
    """Per-call cost of the C-API binding on a trivial call (no instances), and of the whole cpath on an empty frame."""
    from edgeseg._c import _cdecode

    maps, boxes, lb = np.zeros((0, 4, 4), np.float32), np.zeros((0, 4), np.float32), (8, 8, 1, 1, 0, 0, 1.0, 1.0)

    def trivial():
        for _ in range(calls):
            _cdecode.masks(0, _cdecode.ROI, None, maps, 1.0, 0.0, boxes, lb, None, 1, 0)

    empty = dv.make_scene(0)
    one_frame = lambda: cpath.decode_proto(empty.tensors, empty.letterbox, empty.options, empty.grid)  # noqa: E731
    return {
        "binding_trivial_call_us": round(min(median_ms(trivial, 1) for _ in range(5)) * 1e3 / calls, 3),
        "cpath_empty_frame_us (8400x80 candidates scan)": round(median_ms(one_frame, 51) * 1e3, 1),
    }


def run_n(n: int, repeats: int, slow_repeats: int, frames: np.ndarray, bandwidth: float) -> dict:
    scene = dv.make_scene(n, seed=n)
    t, lb, opts, grid = scene.tensors, scene.letterbox, scene.options, scene.grid
    boxes_in, boxes_orig, coeffs = dv.kept_instances(scene)
    protos = t.protos.data
    boxes_only = dataclasses.replace(opts, with_masks=False)
    from edgeseg._c import _cdecode

    empty_maps, empty_boxes = np.zeros((n, 2, 2), np.float32), np.zeros((n, 4), np.float32)  # zero-area boxes
    zero_lb = (*ORIG, 1, 1, 0, 0, 1.0, 1.0)

    empty_maps, empty_boxes = np.zeros((n, 2, 2), np.float32), np.zeros((n, 4), np.float32)  # zero-area boxes
    zero_lb = (*ORIG, 1, 1, 0, 0, 1.0, 1.0)

    fast = {
        "c_cropped": lambda: cpath.decode_proto(t, lb, opts, grid),
        "c_full_reused": lambda: cpath.decode_proto_full(t, lb, opts, grid, frames),
        "c_rle": lambda: cpath.decode_proto_rle(t, lb, opts, grid),
        "c_boxes_only": lambda: cpath.decode_proto(t, lb, boxes_only, grid),
        "c_cropped_2threads": lambda: cpath.decode_proto(t, lb, opts, grid, threads=2),
        "c_cropped_no_window": lambda: cpath.decode_proto(t, lb, opts, grid, flags=_cdecode.FULL_LOGITS),
        "c_cropped_no_blockfill": lambda: cpath.decode_proto(t, lb, opts, grid, flags=_cdecode.NO_BLOCKFILL),
        "c_full_no_stream": lambda: cpath.decode_proto_full(t, lb, opts, grid, frames, flags=_cdecode.NO_STREAM),
        "c_full_fresh_buffer": lambda: cpath.decode_proto_full(t, lb, opts, grid, np.empty((n, *ORIG), bool)),
        # pure writes of the same n frames: the floor a full-frame output cannot beat
        "floor_numpy_fill": lambda: frames[:n].fill(False),
        "floor_c_stream_zero": lambda: _cdecode.masks(_cdecode.FULL, _cdecode.ROI, None, empty_maps, 1.0, 0.0, empty_boxes, zero_lb, frames, 1, 0),
    }
    slow = {
        "numpy_reference": lambda: reference.decode_proto(t, lb, opts, grid),
        "variant_a": lambda: dv.variant_a(protos, coeffs, boxes_in, lb),
        "variant_b": lambda: dv.variant_b(protos, coeffs, boxes_orig, lb),
    }
    samples: dict[str, list[float]] = {k: [] for k in (*fast, *slow)}
    for fn in (*fast.values(), *slow.values()):
        fn()  # warm-up
    every = max(1, repeats // slow_repeats)  # slow contenders in evenly spread rounds
    for r in range(repeats):
        for name, fn in (fast | slow if r % every == 0 and len(samples["variant_b"]) < slow_repeats else fast).items():
            t0 = time.perf_counter()
            fn()
            samples[name].append((time.perf_counter() - t0) * 1e3)
    ms = {k: round(statistics.median(v), 4) for k, v in samples.items()}
    best = {k: round(min(v), 4) for k, v in samples.items()}  # least disturbed by other jobs on a shared machine

    # agreement: bit-exact against the reference, IoU against A and B
    ref = reference.decode_proto(t, lb, opts, grid)
    det = cpath.decode_proto(t, lb, opts, grid)
    exact = len(ref.masks) == len(det.masks) and np.array_equal(ref.boxes, det.boxes) and all(
        (a.x0, a.y0) == (b.x0, b.y0) and np.array_equal(a.bitmap, b.bitmap) for a, b in zip(ref.masks, det.masks, strict=True)
    )
    _, full = cpath.decode_proto_full(t, lb, opts, grid, frames)
    iou = {
        "variant_b": dv.mask_iou(full, dv.variant_b(protos, coeffs, boxes_orig, lb)),
        "variant_a": dv.mask_iou(full, dv.variant_a(protos, coeffs, boxes_in, lb)),
    }
    floor_ms = min(ms["floor_numpy_fill"], ms["floor_c_stream_zero"], n * ORIG[0] * ORIG[1] / bandwidth * 1e3)
    ratio = lambda a, b: round(ms[a] / ms[b], 2)  # noqa: E731
    return {
        "n": n,
        "median_ms": ms,
        "min_ms": best,
        "memory_write_floor_ms": round(floor_ms, 4),
        "ratios": {
            "variant_b / c_cropped": ratio("variant_b", "c_cropped"),
            "variant_b / c_full_reused": ratio("variant_b", "c_full_reused"),
            "variant_a / c_cropped": ratio("variant_a", "c_cropped"),
            "numpy_reference / c_cropped": ratio("numpy_reference", "c_cropped"),
            "c_rle / c_cropped": ratio("c_rle", "c_cropped"),
            "c_full_reused / memory_write_floor": round(ms["c_full_reused"] / floor_ms, 2),
            "trick window: c_cropped_no_window / c_cropped": ratio("c_cropped_no_window", "c_cropped"),
            "trick blockfill: c_cropped_no_blockfill / c_cropped": ratio("c_cropped_no_blockfill", "c_cropped"),
            "trick stream: c_full_no_stream / c_full_reused": ratio("c_full_no_stream", "c_full_reused"),
            "trick reuse: c_full_fresh_buffer / c_full_reused": ratio("c_full_fresh_buffer", "c_full_reused"),
            "threads: c_cropped / c_cropped_2threads": ratio("c_cropped", "c_cropped_2threads"),
        },
        "ratios_of_min": {
            "variant_b / c_cropped": round(best["variant_b"] / best["c_cropped"], 2),
            "variant_b / c_full_reused": round(best["variant_b"] / best["c_full_reused"], 2),
            "c_rle / c_cropped": round(best["c_rle"] / best["c_cropped"], 2),
            "c_full_reused / memory_write_floor": round(
                best["c_full_reused"] / min(best["floor_numpy_fill"], best["floor_c_stream_zero"]), 2
            ),
        },
        "mean_mask_iou": {k: round(float(v.mean()), 5) for k, v in iou.items()},
        "min_mask_iou": {k: round(float(v.min()), 5) for k, v in iou.items()},
        "bit_exact_vs_reference": bool(exact),
        "repeats": {k: len(v) for k, v in samples.items()},
    }


def markdown_table(payload: dict) -> str:
    """The README table of a results JSON: medians in ms and the ratios the targets are stated in."""
    m = payload["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, numpy {m['numpy']}, "
        f"OpenCV {m['opencv']}; load average at start {m['load_avg_at_start']}. One thread, medians.",
        "",
        "| N | C cropped | C full (reused) | write floor | C RLE | numpy ref | A | B | B / cropped | B / full | full / floor | RLE / cropped | IoU vs B | IoU vs A |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in payload["results"]:
        ms, q, iou = r["median_ms"], r["ratios"], r["mean_mask_iou"]
        lines.append(
            f"| {r['n']} | {ms['c_cropped']:.2f} | {ms['c_full_reused']:.2f} | {r['memory_write_floor_ms']:.2f} | "
            f"{ms['c_rle']:.2f} | {ms['numpy_reference']:.1f} | {ms['variant_a']:.1f} | {ms['variant_b']:.1f} | "
            f"{q['variant_b / c_cropped']:.0f}x | {q['variant_b / c_full_reused']:.0f}x | "
            f"{q['c_full_reused / memory_write_floor']:.2f} | {q['c_rle / c_cropped']:.2f} | "
            f"{iou['variant_b']:.4f} | {iou['variant_a']:.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[1, 10, 50, 100], help="instance counts")
    ap.add_argument("--repeats", type=int, default=101, help="timing rounds for the C paths and floors")
    ap.add_argument("--slow-repeats", type=int, default=7, help="rounds (spread evenly) for the reference and A/B")
    ap.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/decode_<cpu>.json)")
    ap.add_argument("--table", type=Path, default=None, help="only print the Markdown table of a results JSON")
    args = ap.parse_args(argv)
    if args.table:
        print(markdown_table(json.loads(args.table.read_text())))
        return 0
    if not cpath.available():
        print("the C decoder extension is not built (pip install -e .)", file=sys.stderr)
        return 1
    cv2.setNumThreads(1)
    info = machine()
    frames = np.zeros((max(args.n), *ORIG), bool)  # the reused full-frame buffer, touched once
    bandwidth = write_bandwidth(frames, 15)
    print(f"machine: {info['cpu']}, {info['cores']} cores, python {info['python']}, numpy {info['numpy']}")
    print(f"streaming-store bandwidth: {bandwidth / 1e9:.2f} GB/s")
    overhead = binding_overhead_us()
    print(f"binding overhead: {overhead}")
    results = []
    for n in args.n:
        res = run_n(n, args.repeats, args.slow_repeats, frames, bandwidth)
        results.append(res)
        m, r = res["median_ms"], res["ratios"]
        print(
            f"N={n:3d}  C cropped {m['c_cropped']:.3f} ms | full {m['c_full_reused']:.3f} ms (floor "
            f"{res['memory_write_floor_ms']:.3f}) | RLE {m['c_rle']:.3f} ms | numpy ref {m['numpy_reference']:.1f} ms | "
            f"A {m['variant_a']:.1f} ms | B {m['variant_b']:.1f} ms"
        )
        print(f"        ratios {json.dumps(r)}")
        print(f"        IoU mean {res['mean_mask_iou']}  min {res['min_mask_iou']}  exact={res['bit_exact_vs_reference']}")
    slug = re.sub(r"[^a-z0-9]+", "-", info["cpu"].lower()).strip("-")[:40]
    out = args.out or HERE / "results" / f"decode_{info['arch']}-{slug}-{info['cores']}c.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": "decode",
        "command": "python benchmarks/decode_bench.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "setup": {"input": [640, 640], "protos": [32, 160, 160], "original": list(ORIG), "anchors": 8400, "classes": 80,
                  "threads": 1, "timing": "median ms, rounds interleaved across contenders"},
        "machine": info,
        "streaming_write_bandwidth_GBps": round(bandwidth / 1e9, 3),
        "overhead": overhead,
        "results": results,
    }
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(markdown_table(payload))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
