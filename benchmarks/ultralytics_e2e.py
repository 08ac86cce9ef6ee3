"""End-to-end frames per second: edgeseg against Ultralytics' own ONNX ``predict``, same model and images.

One process, one run, rounds interleaved across contenders (machine noise
hits all alike), medians and ratios. Each contender gets a BGR image and
returns instances with masks at the original resolution:

* ``ultralytics``: ``YOLO(model.onnx, task="segment").predict(image, retina_masks=True)``
  (its letterbox, onnxruntime session, NMS, ``process_mask_native``), the
  ONNX file exactly as Ultralytics exported it;
* ``edgeseg_fp32``: ``edgeseg.load(bundle)(image)`` on the bundle
  ``edgeseg import`` made from the same file (C decoder, box-cropped masks);
* ``edgeseg_int8``: the same on the int8 bundle of ``edgeseg import --int8``.

Thread count: Ultralytics' AutoBackend opens its onnxruntime session with
onnxruntime's defaults (one intra-op thread per core); edgeseg gets
``--threads`` (default: the machine's core count), so both run with the same
number of threads.

Run it in the Ultralytics venv (edgeseg installed there with ``pip install
-e . --no-deps``), after making the bundles with the repo's own venv::

    .venv/bin/edgeseg import tests/fixtures/ultralytics/yolov8n-seg/model.onnx --out out/import/yolov8n-seg
    .venv/bin/edgeseg import tests/fixtures/ultralytics/yolov8n-seg/model.onnx --out out/import/yolov8n-seg \\
        --int8 --calib data/synth/train/images --val data/synth/val --force
    YOLO_OFFLINE=1 YOLO_CONFIG_DIR=/tmp/yolo-cfg MPLCONFIGDIR=/tmp/mpl /work/venvs/ultra/bin/python \\
        benchmarks/ultralytics_e2e.py --model tests/fixtures/ultralytics/yolov8n-seg/model.onnx \\
        --bundle out/import/yolov8n-seg --int8-bundle out/import/yolov8n-seg-int8 --images data/synth/val/images

Writes ``benchmarks/results/ultralytics_e2e_<machine>.json``; ``--table
JSON`` prints the README table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _machine() -> dict:
    """The board (edgeseg's own detection), Python and the load when the run started."""
    from edgeseg.board import detect_board

    board = detect_board()
    return {"cpu": board.cpu_model or board.model, "cores": board.cores, "arch": board.arch,
            "python": platform.python_version(), "load_average_at_start": list(os.getloadavg())}


def _contenders(args):
    import edgeseg
    from edgeseg.device_config import BackendOptions, DeviceConfig

    cfg = DeviceConfig(backend=BackendOptions(threads=args.threads))
    found = {}
    from ultralytics import YOLO

    ul = YOLO(args.model, task="segment")
    kw = dict(imgsz=args.imgsz, retina_masks=True, verbose=False)
    found["ultralytics"] = lambda img: len(ul.predict(img, **kw)[0])
    seg = edgeseg.load(args.bundle, device_config=cfg)
    found["edgeseg_fp32"] = lambda img: len(seg(img))
    if args.int8_bundle:
        seg8 = edgeseg.load(args.int8_bundle, device_config=cfg)
        found["edgeseg_int8"] = lambda img: len(seg8(img))
    versions = {"edgeseg": edgeseg.__version__}
    import onnxruntime
    import ultralytics

    versions.update(ultralytics=ultralytics.__version__, onnxruntime=onnxruntime.__version__)
    return found, versions


def run(args) -> dict:
    import cv2

    paths = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() in (".jpg", ".png"))[: args.num_images]
    images = [cv2.imread(str(p)) for p in paths]
    contenders, versions = _contenders(args)
    for fn in contenders.values():  # warm-up: sessions, caches, lazy imports
        for img in images[: args.warmup]:
            fn(img)
    times = {name: [] for name in contenders}
    counts = {name: 0 for name in contenders}
    for _ in range(args.rounds):
        for img in images:
            for name, fn in contenders.items():  # interleaved per image
                t0 = time.perf_counter()
                counts[name] += fn(img)
                times[name].append(time.perf_counter() - t0)
    med = {n: statistics.median(t) * 1e3 for n, t in times.items()}
    out = {
        "machine": _machine(), "versions": versions, "threads": args.threads, "imgsz": args.imgsz,
        "images": len(images), "image_sizes": sorted({f"{w}x{h}" for h, w in (i.shape[:2] for i in images)}),
        "rounds": args.rounds, "model": args.model,
        "median_ms": med, "fps": {n: 1e3 / v for n, v in med.items()},
        "p90_ms": {n: sorted(t)[int(0.9 * (len(t) - 1))] * 1e3 for n, t in times.items()},
        "instances_per_frame": {n: c / len(times[n]) for n, c in counts.items()},
        "speedup_vs_ultralytics": {n: med["ultralytics"] / v for n, v in med.items() if n != "ultralytics"},
    }
    return out


def table(result: dict) -> str:
    m = result["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores, load average at start {m['load_average_at_start']}; "
             f"{result['images']} images ({', '.join(result.get('image_sizes', []))}) x {result['rounds']} rounds, "
             f"{result['threads']} onnxruntime threads, model input {result['imgsz']} px.", "",
             "| contender | median ms | p90 ms | FPS | instances / frame | speed-up vs Ultralytics |",
             "|---|---|---|---|---|---|"]
    for n, v in result["median_ms"].items():
        sp = result["speedup_vs_ultralytics"].get(n)
        lines.append(f"| {n} | {v:.1f} | {result['p90_ms'][n]:.1f} | {result['fps'][n]:.1f} | "
                     f"{result['instances_per_frame'][n]:.1f} | {'' if sp is None else f'{sp:.2f}x'} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="the ONNX file as Ultralytics exported it")
    p.add_argument("--bundle", help="edgeseg import of the same file")
    p.add_argument("--int8-bundle", help="edgeseg import --int8 of the same file")
    p.add_argument("--images", help="image folder")
    p.add_argument("--num-images", type=int, default=40)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--out", help="result JSON (default benchmarks/results/ultralytics_e2e_<cpu>.json)")
    p.add_argument("--table", help="print the README table of a result JSON and exit")
    args = p.parse_args(argv)
    if args.table:
        print(table(json.loads(Path(args.table).read_text())))
        return 0
    if not (args.model and args.bundle and args.images):
        p.error("--model, --bundle and --images are required")
    result = run(args)
    out = Path(args.out) if args.out else HERE / "results" / "ultralytics_e2e_x86_64.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
