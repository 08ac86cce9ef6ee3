"""Tracking quality and cost: edgeseg's tracker against the ``trackers`` library on the same detections.

Sequences come from ``export/data/track_sequences.py`` (seeded: conveyor,
same-class crossings, full occlusions, entering / leaving, a brightness drop),
detections from their ground truth with noise, misses and false positives,
so every tracker sees exactly the same input. Metrics: IDF1, MOTA and ID
switches from ``motmetrics`` (IoU >= 0.5 matching), summed over all
sequences; HOTA from ``trackers.eval`` (a port of TrackEval's), mean over sequences. Cost: milliseconds per frame of each tracker's ``update``,
trackers interleaved per sequence (noise on a shared machine hits all
alike), medians; and edgeseg's / ByteTrack's cost with 10, 50 and 100
instances in view.

``trackers`` needs ``opencv-python`` (it would clobber the runtime's
headless OpenCV) and ``motmetrics`` pulls pandas, so this runs in its own
virtual environment::

    scripts/track_bench.sh          # makes .venv-trackers, runs this, writes benchmarks/results/tracking.json

McByte runs without its mask manager (that needs SAM / Cutie and torch);
BoT-SORT and McByte without camera motion compensation (no frames here).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgeseg.track import InstanceTracker  # noqa: E402
from edgeseg.track.association import box_iou  # noqa: E402
from export.data.track_sequences import SCENARIOS, dense  # noqa: E402


def machine() -> dict:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    found = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    return {"cpu": found.group(1).strip() if found else "unknown", "cores": os.cpu_count(),
            "arch": platform.machine(), "python": platform.python_version(),
            "load_avg_at_start": [round(x, 2) for x in os.getloadavg()]}


class EdgesegAdapter:
    name = "edgeseg"

    def __init__(self) -> None:
        self.t = InstanceTracker()

    def __call__(self, det):
        out = self.t.update(det)
        keep = out.track_ids >= 0
        return out.track_ids[keep], out.boxes[keep]


class TrackersAdapter:
    def __init__(self, name: str, make) -> None:
        import supervision as sv

        self.name, self.t, self.sv = name, make(), sv

    def __call__(self, det):
        d = self.sv.Detections(xyxy=det.boxes.astype(np.float32), confidence=det.scores,
                               class_id=det.class_ids.astype(int))
        out = self.t.update(d)
        ids = np.asarray(out.tracker_id if out.tracker_id is not None else [], np.int64)
        keep = ids >= 0
        return ids[keep], np.asarray(out.xyxy)[keep]


def contenders() -> dict:
    import trackers as tr

    return {
        "edgeseg": EdgesegAdapter,
        "trackers.ByteTrack": lambda: TrackersAdapter("trackers.ByteTrack", tr.ByteTrackTracker),
        "trackers.SORT": lambda: TrackersAdapter("trackers.SORT", tr.SORTTracker),
        "trackers.OC-SORT": lambda: TrackersAdapter("trackers.OC-SORT", tr.OCSORTTracker),
        "trackers.BoT-SORT": lambda: TrackersAdapter("trackers.BoT-SORT", lambda: tr.BoTSORTTracker(enable_cmc=False)),
        "trackers.McByte": lambda: TrackersAdapter("trackers.McByte", lambda: tr.McByteTracker(enable_cmc=False)),
    }


def iou_distance(gt: np.ndarray, hyp: np.ndarray) -> np.ndarray:
    """motmetrics' IoU distance (1 - IoU, NaN below IoU 0.5); its own ``iou_matrix`` calls
    ``np.asfarray``, gone in numpy 2, which ``trackers`` requires."""
    iou = box_iou(np.asarray(gt, np.float64).reshape(-1, 4), np.asarray(hyp, np.float64).reshape(-1, 4))
    return np.where(iou >= 0.5, 1.0 - iou, np.nan)


def run_sequence(make, seq) -> tuple[list, list[float]]:
    tracker, outs, times = make(), [], []
    for det in seq.detections:
        t0 = time.perf_counter()
        outs.append(tracker(det))
        times.append((time.perf_counter() - t0) * 1e3)
    return outs, times


def accumulate(seq, outs):
    import motmetrics as mm

    acc = mm.MOTAccumulator(auto_id=True)
    for (gids, gboxes, _), (hids, hboxes) in zip(seq.gt, outs, strict=True):
        dist = iou_distance(gboxes, hboxes)
        acc.update(list(map(int, gids)), list(map(int, hids)), dist)
    return acc


def hota(seq, outs) -> float:
    """HOTA of one sequence, by ``trackers.eval`` (its port of TrackEval's HOTA)."""
    from trackers.eval.hota import compute_hota_metrics

    gt_ids = [np.asarray(g[0], np.int64) for g in seq.gt]
    hyp_ids = [np.asarray(h[0], np.int64) for h in outs]
    sims = [box_iou(np.asarray(g[1], np.float64).reshape(-1, 4), np.asarray(h[1], np.float64).reshape(-1, 4))
            for g, h in zip(seq.gt, outs, strict=True)]
    return float(compute_hota_metrics(gt_ids, hyp_ids, sims)["HOTA"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=3, help="sequences per scenario")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/tracking.json"))
    args = ap.parse_args()
    import motmetrics as mm
    import trackers

    makers = contenders()
    accs: dict[str, list] = {k: [] for k in makers}
    names: list[str] = []
    times: dict[str, list[float]] = {k: [] for k in makers}
    hotas: dict[str, list[float]] = {k: [] for k in makers}
    per_scenario: dict[str, dict[str, list]] = {}
    order = list(makers)
    for scenario, gen in SCENARIOS.items():
        for seed in range(args.seeds):
            seq = gen(100 + seed)
            names.append(f"{scenario}-{seed}")
            order = order[1:] + order[:1]  # interleave: a different tracker goes first each sequence
            for k in order:
                outs, t = run_sequence(makers[k], seq)
                acc = accumulate(seq, outs)
                hotas[k].append(hota(seq, outs))
                accs[k].append(acc)
                per_scenario.setdefault(scenario, {}).setdefault(k, []).append(acc)
                times[k] += t
    mh = mm.metrics.create()
    metrics = ["idf1", "mota", "num_switches", "num_false_positives", "num_misses", "num_unique_objects"]
    overall, scen = {}, {}
    for k in makers:
        s = mh.compute_many(accs[k], metrics=metrics, names=names, generate_overall=True)
        row = s.loc["OVERALL"]
        overall[k] = {"idf1": round(float(row.idf1), 4), "mota": round(float(row.mota), 4),
                      "hota_mean_over_sequences": round(statistics.mean(hotas[k]), 4),
                      "id_switches": int(row.num_switches), "false_positives": int(row.num_false_positives),
                      "misses": int(row.num_misses),
                      "ms_per_frame_median": round(statistics.median(times[k]), 4),
                      "ms_per_frame_p90": round(float(np.percentile(times[k], 90)), 4)}
        for sc, by in per_scenario.items():
            r = mh.compute_many(by[k], metrics=["idf1", "num_switches"], generate_overall=True).loc["OVERALL"]
            scen.setdefault(sc, {})[k] = {"idf1": round(float(r.idf1), 4), "id_switches": int(r.num_switches)}
    cost: dict[str, dict[str, float]] = {}
    for n in (10, 50, 100):
        seq = dense(7, n)
        samples: dict[str, list[float]] = {"edgeseg": [], "trackers.ByteTrack": []}
        for rep in range(3):
            for k in (list(samples) if rep % 2 == 0 else list(samples)[::-1]):
                samples[k] += run_sequence(makers[k], seq)[1][1:]  # the first frame only births tracks
        cost[str(n)] = {k: round(statistics.median(v), 4) for k, v in samples.items()}
    payload = {
        "command": f"scripts/track_bench.sh --seeds {args.seeds}",
        "machine": machine(),
        "versions": {"trackers": trackers.__version__ if hasattr(trackers, "__version__") else "2.6.1",
                     "motmetrics": mm.__version__, "numpy": np.__version__},
        "sequences": names, "frames": sum(len(SCENARIOS[n.rsplit("-", 1)[0]](100).detections) for n in names),
        "overall": overall, "per_scenario": scen, "cost_ms_per_frame_by_instances": cost,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=1) + "\n")
    print("| tracker | IDF1 | MOTA | HOTA | ID switches | ms / frame (median) |\n|---|---|---|---|---|---|")
    for k, r in overall.items():
        print(f"| {k} | {r['idf1']:.3f} | {r['mota']:.3f} | {r['hota_mean_over_sequences']:.3f} | {r['id_switches']} "
              f"| {r['ms_per_frame_median']:.3f} |")
    print("\n| instances | " + " | ".join(cost["10"]) + " |")
    for n, r in cost.items():
        print(f"| {n} | " + " | ".join(f"{v:.3f} ms" for v in r.values()) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
