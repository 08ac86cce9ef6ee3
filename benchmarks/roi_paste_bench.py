"""Mask R-CNN paste benchmark: edgeseg's C paste vs torchvision's ``paste_masks_in_image``.

N = 10 / 50 / 100 detections in a 1280x720 image, each with a 28x28 mask map
of a smooth blob (like a mask head's), boxes of 20-400 px. Both sides start
from the same inputs, torchvision's per-ROI logits and its boxes in original
pixels, and end with boolean masks:

* **torchvision**: ``sigmoid``, ``paste_masks_in_image`` (full ``(N, 1, H, W)``
  probability frames), ``> 0.5`` (what ``maskrcnn_inference`` + a user's
  threshold do);
* **edgeseg cropped**: ``torchvision_paste_inputs`` (sigmoid, border, grown
  integer boxes) + C paste into box-cropped bitmaps (the runtime's default);
* **edgeseg full**: the same into ``(N, H, W)`` full frames (a reused buffer),
  the form torchvision returns.

Timed in one process, one thread each (``torch.set_num_threads(1)``), rounds
interleaved, medians; ratios are torchvision's median over edgeseg's. The
outputs are checked equal (IoU >= 0.999 per mask) before timing.

Usage::

    .venv/bin/python benchmarks/roi_paste_bench.py        # writes benchmarks/results/roi_paste_<arch>-<cores>c.json
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # before numpy loads BLAS
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from torchvision.models.detection.roi_heads import paste_masks_in_image  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from decode_bench import machine  # noqa: E402

from edgeseg.decode import cpath, reference_roi  # noqa: E402
from edgeseg.decode.tensors import QTensor  # noqa: E402

HERE = Path(__file__).resolve().parent
SIZE = (720, 1280)
M = 28


def make_inputs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(logits (n, 28, 28) float32, boxes (n, 4) float32 XYXY)`` inside a 1280x720 image."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:M, 0:M].astype(np.float32) / M
    cx, cy = rng.uniform(0.4, 0.6, (2, n, 1, 1)).astype(np.float32)
    r = rng.uniform(0.3, 0.45, (n, 1, 1)).astype(np.float32)
    logits = (10 * (r - np.hypot(xx - cx, yy - cy)) + rng.normal(0, 0.3, (n, M, M))).astype(np.float32)
    w, h = rng.uniform(20, 400, (2, n))
    x1, y1 = rng.uniform(0, SIZE[1] - w), rng.uniform(0, SIZE[0] - h)
    return logits, np.stack([x1, y1, x1 + w, y1 + h], 1).astype(np.float32)


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def run_n(n: int, rounds: int) -> dict:
    logits, boxes = make_inputs(n, seed=n)
    tl, tb = torch.from_numpy(logits)[:, None], torch.from_numpy(boxes)
    frames = np.zeros((n, *SIZE), bool)

    def tv():
        with torch.no_grad():
            return (paste_masks_in_image(tl.sigmoid(), tb, SIZE)[:, 0] > 0.5).numpy()

    def es(output: str):
        maps, paste = reference_roi.torchvision_paste_inputs(logits, boxes)
        return cpath.paste_roi(QTensor(maps, None), paste, SIZE, output=output, out=frames if output == "full" else None)

    expected = tv()
    got = es("cropped")
    for i in range(n):
        a = got[i].full()
        inter, union = np.logical_and(a, expected[i]).sum(), np.logical_or(a, expected[i]).sum()
        if union and inter / union < 0.999:
            raise AssertionError(f"N={n}: mask {i} IoU {inter / union:.4f} against torchvision")
    contenders = {"torchvision": tv, "edgeseg_cropped": lambda: es("cropped"), "edgeseg_full": lambda: es("full")}
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():  # interleaved: noise hits every contender alike
            times[name].append(timed(fn))
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "n": n,
        "median_ms": {k: round(v, 3) for k, v in med.items()},
        "speedup_vs_torchvision": {k: round(med["torchvision"] / v, 1) for k, v in med.items() if k != "torchvision"},
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[10, 50, 100])
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    if not cpath.available():
        raise SystemExit("the C decoder extension is not built (pip install -e .)")
    torch.set_num_threads(1)
    info = machine() | {"torch": torch.__version__, "torchvision": torchvision.__version__}
    rows = [run_n(n, args.rounds) for n in args.n]
    result = {"benchmark": "roi_paste", "image": list(SIZE), "mask": [M, M], "rounds": args.rounds,
              "threads": 1, "machine": info, "results": rows}
    out = args.out or HERE / "results" / f"roi_paste_{platform.machine()}-{os.cpu_count()}c.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    for r in rows:
        print(f"N={r['n']:4d}  " + "  ".join(f"{k} {v:.2f} ms" for k, v in r["median_ms"].items())
              + f"  speedup {r['speedup_vs_torchvision']}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
