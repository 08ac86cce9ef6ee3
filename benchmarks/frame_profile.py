"""Where the post-processing time of a frame goes: CPU time per step, per frame and per call.

The frame budget (``frame_budget.py``) times whole stages; this splits each
one into the steps the runtime takes, on the same scenes (640x480, about 10
instances; 1920x1080, about 50) and the same decoder and planner, so the
largest share is the one to attack. Each step is timed in this thread's CPU
time (``time.thread_time``: what other jobs on the shared machine cannot
inflate) by calling the step's own function in the order the runtime does,
on a fresh Result per frame (nothing cached across steps that the runtime
would not share). ``plan()`` is timed whole and, inside it, the functions
it calls (wrapped to add up their CPU time); serialization is the RLE,
the frame dict and ``json.dumps``, as ``Result.to_json()`` runs them.

    nice -n 10 .venv/bin/python benchmarks/frame_profile.py --rounds 20
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # before numpy loads BLAS
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from decode_bench import machine  # noqa: E402
from frame_budget import CONFIG, scenes  # noqa: E402

import edgeseg  # noqa: E402
from edgeseg.decode import cpath  # noqa: E402
from edgeseg.grasp import GraspPlanner  # noqa: E402
from edgeseg.grasp import shape as gshape  # noqa: E402
from edgeseg.result import Result, json_text  # noqa: E402


class Steps:
    """CPU time per named step, collected over frames."""

    def __init__(self) -> None:
        self.ms: dict[str, list[float]] = defaultdict(list)
        self._t = 0.0

    def start(self) -> None:
        self._t = time.thread_time()

    def lap(self, name: str) -> None:
        t = time.thread_time()
        self.ms[name].append((t - self._t) * 1e3)
        self._t = t

    def timed(self, owner, attr: str, name: str) -> None:
        """Wraps ``owner.attr`` so that its calls add their CPU time to step ``name`` (of this frame)."""
        inner = getattr(owner, attr)

        def wrapper(*args, **kwargs):
            t = time.thread_time()
            try:
                return inner(*args, **kwargs)
            finally:
                self.inside[name] = self.inside.get(name, 0.0) + (time.thread_time() - t) * 1e3

        setattr(owner, attr, wrapper)

    inside: dict[str, float] = {}


PLAN_STEPS = ((gshape, "shapes", "grasp: shapes (C)"), (gshape, "extents", "grasp: extents (C)"),
              (gshape, "clearances", "grasp: clearances (C + fillConvexPoly)"),
              (GraspPlanner, "_poses", "grasp: 3D poses (C + objects)"), (GraspPlanner, "_near", "grasp: neighbours"),
              (GraspPlanner, "_depths", "grasp: depths on the table"))


def profile_frame(seg, planner: GraspPlanner, img: np.ndarray, opts, st: Steps) -> None:
    tensor, lb = seg.preprocessor(img)
    raw = seg.backend.run(tensor)
    impl = seg.decoder.impl
    st.start()
    t, kw = impl._prepare(raw, lb, opts)
    st.lap("decode: tensors")
    anchor, det = cpath._detect(t, lb, opts, impl.grid, kw["class_names"])
    st.lap("decode: detect + NMS (C)")
    bits, spans, offsets = cpath._proto_masks(t, anchor, det, kw["mask_letterbox"] or lb, cpath._cdecode.CROPPED,
                                              None, 1, 0)
    st.lap("decode: render masks (C)")
    r = dataclasses.replace(det, masks=cpath._cropped(bits, spans, offsets, lb.orig_size))
    st.lap("decode: CroppedMask views")
    _ = r.packed_masks.runs  # made once per frame, shared by grasp planning and RLE
    st.lap("grasp: runs of the masks (C)")
    st.inside = {}
    planner.plan(r)
    st.lap("grasp: plan()")
    for name, ms in st.inside.items():
        st.ms[name].append(ms)
    rr = Result(r.boxes, r.scores, r.class_ids, r.masks, r.class_names, r.image_size)  # nothing cached but the runs
    st.start()
    rr.rles()
    st.lap("serialize: RLE (C)")
    d = rr.to_dict()
    st.lap("serialize: dict")
    json_text(d)
    st.lap("serialize: json.dumps")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--cprofile", action="store_true", help="also print cProfile of plan() + to_json()")
    ap.add_argument("--out", type=Path, default=None, help="also write the per-step p50 / mean (ms) as JSON here")
    args = ap.parse_args()
    report = {"machine": machine(), "command": "python benchmarks/frame_profile.py " + " ".join(sys.argv[1:]),
              "edgeseg": str(Path(edgeseg.__file__).resolve().parent), "sets": {}}
    st = Steps()
    for owner, attr, name in PLAN_STEPS:
        st.timed(owner, attr, name)
    with edgeseg.load(device_config=CONFIG) as seg:
        planner = GraspPlanner.from_device_config(seg.device_config)
        for kind in ("640x480", "1920x1080"):
            frames, score = scenes(kind)
            opts = seg.decoder.with_options(score_threshold=score)
            st.ms.clear()
            for _ in range(args.rounds):
                for img in frames:
                    profile_frame(seg, planner, img, opts, st)
            print(f"\n{kind}: CPU ms per frame, p50 / mean (indented: parts of plan())")
            total = 0.0
            for name, v in st.ms.items():
                part = any(name == step[2] for step in PLAN_STEPS)
                total += 0.0 if part else float(np.mean(v))
                print(f"  {'  ' if part else ''}{name:42s} {np.median(v):7.3f} / {np.mean(v):7.3f}")
            print(f"  {'sum (decode + grasp + serialize)':42s}           {total:7.3f}")
            report["sets"][kind] = {"sum_of_means_ms": total, "steps": {
                name: {"p50": float(np.median(v)), "mean": float(np.mean(v))} for name, v in st.ms.items()}}
            if args.cprofile:
                import cProfile
                import pstats

                pr = cProfile.Profile()
                dets = []
                for img in frames:
                    tensor, lb = seg.preprocessor(img)
                    dets.append(seg.decoder(seg.backend.run(tensor), lb, opts))
                pr.enable()
                for _ in range(args.rounds):
                    for d in dets:
                        r = dataclasses.replace(d)
                        planner.plan(r)
                        r.to_json()
                pr.disable()
                pstats.Stats(pr).sort_stats("tottime").print_stats(18)
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
