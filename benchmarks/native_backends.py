"""Per-stage latency of the same model on every backend of this machine: ONNX Runtime, LiteRT, OpenVINO, ncnn.

One process, one run: each round runs every bundle once on the same image,
in a rotated order (machine noise hits all alike); per stage (preprocess,
infer, decode, as :class:`edgeseg.result.StageTimings` measures them inside
``Segmenter.__call__``) the median, p90 and the ratio of the median
inference to the first bundle's. Every bundle runs with the same thread
count (``--threads``) and its runtime's defaults otherwise (OpenVINO CPU
``LATENCY``/f32, ncnn fp16 storage, LiteRT XNNPACK).

Make the bundles first (the parity runs of README, "Board-native backends",
write them), then::

    .venv/bin/python benchmarks/native_backends.py \\
        onnx=edgeseg/assets/edgeseg-nano onnx-int8=bundles/nano/edgeseg-nano-onnx-int8 \\
        tflite=bundles/nano/edgeseg-nano-tflite tflite-int8=bundles/nano/edgeseg-nano-tflite-int8 \\
        openvino=bundles/native-nano/edgeseg-nano-openvino openvino-int8=bundles/native-nano/edgeseg-nano-openvino-int8 \\
        ncnn=bundles/native-nano/edgeseg-nano-ncnn --rounds 200 --threads 1

Writes ``benchmarks/results/native_backends_<machine>.json``; ``--table JSON``
prints the README table from a results file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
STAGES = ("preprocess_ms", "infer_ms", "decode_ms", "total_ms")


def _machine() -> dict:
    from edgeseg.board import detect_board

    board = detect_board()
    return {"cpu": board.cpu_model or board.model, "cores": board.cores, "arch": board.arch,
            "python": platform.python_version(), "load_average_at_start": list(os.getloadavg())}


def _named(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"contenders are NAME=BUNDLE, got {text!r}")
    return name, path


def run(args) -> dict:
    import cv2

    import edgeseg
    from edgeseg.backends import available_backends
    from edgeseg.device_config import BackendOptions, DeviceConfig
    from edgeseg.sources import list_images

    cfg = DeviceConfig(backend=BackendOptions(threads=args.threads))
    segs = {name: edgeseg.load(path, device_config=cfg) for name, path in args.bundles}
    images = [cv2.imread(str(p)) for p in list_images([args.images], limit=args.max_images)]
    samples = {name: {s: [] for s in STAGES} for name in segs}
    names = list(segs)
    for i in range(args.warmup + args.rounds):
        image = images[i % len(images)]
        for name in names[i % len(names):] + names[: i % len(names)]:
            t = segs[name](image).timings
            if i >= args.warmup:
                for stage in STAGES:
                    samples[name][stage].append(getattr(t, stage))
    first = names[0]
    base = float(np.median(samples[first]["infer_ms"]))
    rows = {}
    for name, seg in segs.items():
        m = seg.manifest
        row = {"bundle": dict(args.bundles)[name], "format": m.format, "precision": m.precision,
               "device": seg.backend.device}
        for stage in STAGES:
            values = np.asarray(samples[name][stage])
            row[stage] = {"p50": round(float(np.median(values)), 3), "p90": round(float(np.percentile(values, 90)), 3)}
        row["infer_ratio_to_" + first] = round(row["infer_ms"]["p50"] / base, 3)
        rows[name] = row
        seg.close()
    return {"machine": _machine(), "threads": args.threads, "rounds": args.rounds, "warmup": args.warmup,
            "images": args.images, "model": next(iter(segs.values())).manifest.name,
            "backends": available_backends(), "command": " ".join(["benchmarks/native_backends.py", *sys.argv[1:]]),
            "contenders": rows}


def table(results: dict) -> str:
    """The README table: one row per contender."""
    first = next(iter(results["contenders"]))
    lines = [f"| contender | precision | preprocess ms | infer ms p50 / p90 | decode ms | total ms | infer / {first} |",
             "|---|---|---|---|---|---|---|"]
    for name, r in results["contenders"].items():
        lines.append(f"| {name} | {r['precision']} | {r['preprocess_ms']['p50']:.2f} | {r['infer_ms']['p50']:.2f} / "
                     f"{r['infer_ms']['p90']:.2f} | {r['decode_ms']['p50']:.2f} | {r['total_ms']['p50']:.2f} | "
                     f"{r['infer_ratio_to_' + first]:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundles", nargs="*", type=_named, help="NAME=BUNDLE, the first is the ratio's base")
    p.add_argument("--images", default="data/synth/val/images", help="image folder (default data/synth/val/images)")
    p.add_argument("--max-images", type=int, default=50, help="images cycled through (default 50)")
    p.add_argument("--rounds", type=int, default=200, help="timed rounds (default 200)")
    p.add_argument("--warmup", type=int, default=10, help="untimed rounds first (default 10)")
    p.add_argument("--threads", type=int, default=1, help="inference threads of every backend (default 1)")
    p.add_argument("--out", type=Path, help="results file (default benchmarks/results/native_backends_<arch>-<cores>c.json)")
    p.add_argument("--table", type=Path, help="print the README table of this results file and exit")
    args = p.parse_args(argv)
    if args.table:
        print(table(json.loads(args.table.read_text())))
        return 0
    if not args.bundles:
        p.error("name at least one NAME=BUNDLE")
    results = run(args)
    m = results["machine"]
    out = args.out or HERE / "results" / f"native_backends_{m['arch']}-{m['cores']}c.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
