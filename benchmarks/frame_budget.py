"""Frame budget: everything after inference, before and after issue 21, in one run.

For each scene set (640x480 with about 10 instances, 1920x1080 with about
50) every frame goes through both paths, interleaved (the order alternates
per round), on the same decoded detections:

* before (``frame_baseline.py``, the code of commit b2b187a): preprocessing
  with the float conversion first, the per-mask grasp planner, and
  ``json.dumps(to_dict())`` with rows rebuilt and the numpy RLE encoder;
  full frames by ``Result.full_masks()`` into a fresh array;
* after (the runtime now): fused preprocessing, the batched C grasp geometry,
  ``Result.to_json()`` with the C RLE; full frames by ``masks="full"`` into a
  reused buffer.

Inference (edgeseg-nano ONNX, ``device_configs/x86-cpu.yaml``) and the C
decode are shared and timed once per frame. Post-processing = decode + grasp
+ serialize; its share of inference is taken per frame, then the median.
Because the machine is shared, post-processing is also timed in this
thread's CPU time (``time.thread_time``: what other jobs cannot inflate) and
set against the fastest inference of the run (a quiet-machine estimate).
Grasps use the x86-cpu config's calibration (table plane, hand-eye: 3D poses
for every grasp). Times are per frame, p50 / p99 over all frames of a set.

    .venv/bin/python benchmarks/frame_budget.py                  # writes results/frame_budget_<machine>.json
    .venv/bin/python benchmarks/frame_budget.py --table results/frame_budget_<machine>.json
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # before numpy loads BLAS
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import frame_baseline as before  # noqa: E402
from decode_bench import machine  # noqa: E402

import edgeseg  # noqa: E402
from edgeseg.grasp import GraspPlanner  # noqa: E402
from edgeseg.preprocess import Preprocessor  # noqa: E402
from edgeseg.result import Result  # noqa: E402

SAMPLES = sorted((REPO / "edgeseg" / "assets" / "samples").glob("*.jpg"))
CONFIG = REPO / "device_configs" / "x86-cpu.yaml"
STAGES = ("preprocess", "decode", "grasp", "serialize", "post", "full")


def scenes(kind: str) -> tuple[list[np.ndarray], float]:
    """Frames of a scene set and the score threshold that gives its instance count."""
    imgs = [cv2.imread(str(p)) for p in SAMPLES]
    if kind == "640x480":  # the sample scenes: 5-26 instances, about 10 on average
        return [cv2.resize(i, (640, 480)) for i in imgs], 0.05
    n = len(imgs)  # 2 x 2 mosaics of the samples: 29-55 instances, about 50
    mosaics = [np.vstack([np.hstack([imgs[k], imgs[(k + 1) % n]]), np.hstack([imgs[(k + 2) % n], imgs[(k + 3) % n]])])
               for k in range(n)]
    return [cv2.resize(m, (1920, 1080)) for m in mosaics], 0.04


def fresh(r: Result) -> Result:
    """The same instances in a new Result (as each frame has): nothing cached yet."""
    return dataclasses.replace(r)


def run_set(seg, kind: str, rounds: int) -> dict:
    frames, score = scenes(kind)
    cfg_planner = GraspPlanner.from_device_config(seg.device_config)
    old_planner = before.GraspPlannerV0(cfg_planner.gripper, camera=cfg_planner.camera, table=cfg_planner.table,
                                        hand_eye=cfg_planner.hand_eye, pixels_per_metre=cfg_planner.pixels_per_metre)
    pre_new, pre_old = seg.preprocessor, Preprocessor(seg.manifest.input)
    opts = seg.decoder.with_options(score_threshold=score)
    h, w = frames[0].shape[:2]
    buffer = np.zeros((opts.max_detections, h, w), bool)
    clock, cpu = time.perf_counter, time.thread_time
    samples = {p: {s: [] for s in STAGES} for p in ("before", "after")}
    post_cpu = {p: [] for p in ("before", "after")}
    infer, counts = [], []
    for rnd in range(rounds):
        for k, img in enumerate(frames):
            t0 = clock()
            tensor, lb = pre_new(img)
            t1 = clock()
            raw = seg.backend.run(tensor)
            t2, c2 = clock(), cpu()
            det = seg.decoder(raw, lb, opts)
            t3, c3 = clock(), cpu()
            base = Result(det.boxes, det.scores, det.class_ids, det.masks, seg.manifest.classes, lb.orig_size)
            infer.append(t2 - t1)
            counts.append(len(base))
            order = ("before", "after") if (rnd + k) % 2 == 0 else ("after", "before")
            for path in order:
                r = fresh(base)
                if path == "before":
                    a = clock()
                    before.preprocess_v0(pre_old, img)
                    b, cb = clock(), cpu()
                    old_planner.plan(r)
                    c = clock()
                    json.dumps(before.to_dict_v0(r))
                    d, cd = clock(), cpu()
                    seg.decoder(raw, lb, opts)
                    fr = Result(det.boxes, det.scores, det.class_ids, det.masks, seg.manifest.classes, lb.orig_size)
                    fr.full_masks()
                    e = clock()
                else:
                    a = clock()
                    pre_new(img)
                    b, cb = clock(), cpu()
                    cfg_planner.plan(r)
                    c = clock()
                    r.to_json()
                    d, cd = clock(), cpu()
                    seg.decoder.decode_as(raw, lb, opts, "full", buffer)
                    e = clock()
                s = samples[path]
                s["preprocess"].append(b - a)
                s["decode"].append(t3 - t2)
                s["grasp"].append(c - b)
                s["serialize"].append(d - c)
                s["post"].append((t3 - t2) + (d - b))
                post_cpu[path].append((c3 - c2) + (cd - cb))
                s["full"].append(e - d)
        _ = t0
    inf = np.array(infer) * 1e3
    out = {"frames": len(frames), "rounds": rounds, "score_threshold": score, "image_size": [h, w],
           "instances_mean": float(np.mean(counts)), "instances_range": [int(min(counts)), int(max(counts))],
           "infer_ms": {"p50": float(np.median(inf)), "p99": float(np.percentile(inf, 99)), "min": float(inf.min())},
           "paths": {}}
    for path, s in samples.items():
        ms = {k: np.array(v) * 1e3 for k, v in s.items()}
        out["paths"][path] = {k: {"p50": float(np.median(v)), "p99": float(np.percentile(v, 99))} for k, v in ms.items()}
        out["paths"][path]["post_share_of_infer_pct"] = float(np.median(100 * ms["post"] / inf))
        cpu_ms = np.array(post_cpu[path]) * 1e3  # this thread's CPU time: what the load cannot inflate
        out["paths"][path]["post_cpu_ms"] = {"p50": float(np.median(cpu_ms)), "p99": float(np.percentile(cpu_ms, 99))}
        out["paths"][path]["post_cpu_share_of_fastest_infer_pct"] = float(100 * np.median(cpu_ms) / inf.min())
    out["speedup_p50"] = {k: out["paths"]["before"][k]["p50"] / out["paths"]["after"][k]["p50"] for k in STAGES}
    return out


def table(data: dict) -> str:
    m = data["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, numpy {m['numpy']}, OpenCV {m['opencv']}; "
             f"load average at start {m['load_avg_at_start']}. Per frame, ms, p50 / p99.", "",
             "| frames | instances | infer (fastest) | path | preprocess | decode | grasp | serialize "
             "| post (decode+grasp+serialize) | post / infer | post CPU | post CPU / fastest infer | decode + full frames |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for kind, s in data["sets"].items():
        for path in ("before", "after"):
            p = s["paths"][path]
            cell = [f"{p[k]['p50']:.2f} / {p[k]['p99']:.2f}" for k in ("preprocess", "decode", "grasp", "serialize", "post")]
            full, pc = p["full"], p.get("post_cpu_ms")
            cpu_cells = (f"{pc['p50']:.2f} / {pc['p99']:.2f} | {p['post_cpu_share_of_fastest_infer_pct']:.1f}%"
                         if pc else " | ")
            fastest = f" ({s['infer_ms']['min']:.2f})" if "min" in s["infer_ms"] else ""
            lines.append(f"| {kind} | {s['instances_mean']:.1f} ({s['instances_range'][0]}-{s['instances_range'][1]}) "
                         f"| {s['infer_ms']['p50']:.2f}{fastest} | {path} | " + " | ".join(cell)
                         + f" | {p['post_share_of_infer_pct']:.1f}% | {cpu_cells} | {full['p50']:.2f} / {full['p99']:.2f} |")
        sp = s["speedup_p50"]
        lines.append(f"| {kind} | | | before / after | {sp['preprocess']:.1f}x | | {sp['grasp']:.1f}x "
                     f"| {sp['serialize']:.1f}x | {sp['post']:.1f}x | | | | {sp['full']:.1f}x |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30, help="passes over each scene set (frames x rounds samples)")
    ap.add_argument("--out", type=Path, default=None, help="results JSON (default results/frame_budget_<machine>.json)")
    ap.add_argument("--table", type=Path, default=None, help="print the README table of a results JSON and exit")
    args = ap.parse_args()
    if args.table:
        print(table(json.loads(args.table.read_text())))
        return
    data = {"machine": machine(), "command": "python benchmarks/frame_budget.py " + " ".join(sys.argv[1:]),
            "bundle": "edgeseg-nano onnx (edgeseg/assets/edgeseg-nano)", "device_config": "device_configs/x86-cpu.yaml",
            "sets": {}}
    with edgeseg.load(device_config=CONFIG) as seg:
        data["decoder"] = seg.decoder.path
        for kind in ("640x480", "1920x1080"):
            for img in scenes(kind)[0][:2]:  # warm-up
                seg(img)
            data["sets"][kind] = run_set(seg, kind, args.rounds)
            print(f"{kind}: done", file=sys.stderr)
    slug = re.sub(r"[^a-z0-9]+", "-", f"{data['machine']['arch']} {data['machine']['cpu']} {data['machine']['cores']}c".lower())
    out = args.out or HERE / "results" / f"frame_budget_{slug.strip('-')}.json"
    out.write_text(json.dumps(data, indent=1) + "\n")
    print(table(data))
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
