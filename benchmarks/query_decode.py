"""Query-family decode time at 1280x720: edgeseg against transformers' own ``post_process_instance_segmentation``.

One process, one run, rounds interleaved across contenders (machine noise
hits all alike), one thread each (torch, BLAS and OpenCV pinned to 1),
medians and ratios against transformers. Input: Mask2Former-shaped outputs of
a 384 x 384 model (100 queries, 80 classes + no object, 96 x 96 mask logits)
in which exactly N queries hold a confident instance (an elliptic blob of
logits, 2-15 % of the image wide) and the rest say "no object"; every
contender returns N instances with masks at 1280 x 720:

* ``transformers``: ``Mask2FormerImageProcessor.post_process_instance_segmentation(
  outputs, threshold=0.5, target_sizes=[(720, 1280)], return_binary_maps=True)``
  (torch tensors in, binary maps out);
* ``edgeseg_transformers``: the ``query`` family decoder with ``mask_sampling=
  "transformers"`` (the import default: the library's masks, box-cropped);
* ``edgeseg_exact_c`` / ``edgeseg_exact_numpy``: ``mask_sampling="exact"``
  through the mask-first path, C renderer or numpy reference (box-cropped).

Run it in a venv with transformers and torch, the repository on the path
(it imports the in-tree C extension that ``make install-dev`` built)::

    /work/venvs/ultra/bin/python benchmarks/query_decode.py          # N = 10 50 100
    /work/venvs/ultra/bin/python benchmarks/query_decode.py --n 10 --repeats 5 --out /tmp/q.json

Writes ``benchmarks/results/query_decode_<arch>-<cores>c.json``.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # before numpy loads BLAS
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from decode_bench import machine  # noqa: E402

from edgeseg.decode import cpath  # noqa: E402
from edgeseg.families.query import QueryDecoder  # noqa: E402
from edgeseg.manifest import parse_manifest  # noqa: E402
from edgeseg.preprocess import LetterboxInfo  # noqa: E402

ORIG, INPUT, GRID, QUERIES, CLASSES = (720, 1280), (384, 384), (96, 96), 100, 80


def outputs(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Mask2Former-shaped raw outputs with exactly ``n`` confident queries."""
    rng = np.random.default_rng(seed)
    cls = rng.normal(0.0, 1.0, (1, QUERIES, CLASSES + 1)).astype(np.float32)
    cls[0, n:, -1] += 12.0  # no object
    cls[0, np.arange(n), rng.integers(0, CLASSES, n)] += 12.0
    yy, xx = np.mgrid[0 : GRID[0], 0 : GRID[1]].astype(np.float32)
    masks = rng.normal(-6.0, 1.0, (1, QUERIES, *GRID)).astype(np.float32)
    for q in range(n):
        cx, cy = rng.uniform(0, GRID[1]), rng.uniform(0, GRID[0])
        rx, ry = rng.uniform(0.01, 0.075, 2) * np.array(GRID[::-1])
        d = np.sqrt(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2)
        masks[0, q] = 8.0 * (1.0 - d) + rng.normal(0, 0.5, GRID).astype(np.float32)
    return {"class_queries_logits": cls, "masks_queries_logits": masks}


def manifest():
    return parse_manifest({
        "schema_version": 1, "name": "bench", "family": "query", "format": "onnx", "precision": "fp32",
        "model": "m.onnx", "input": {"name": "pixel_values", "shape": [1, 3, *INPUT],
                                     "letterbox": {"keep_aspect": False, "resample": "torchvision-bilinear"}},
        "outputs": [{"name": "class_queries_logits", "role": "class_logits", "layout": "BAC"},
                    {"name": "masks_queries_logits", "role": "mask_logits", "layout": "NCHW"}],
        "classes": [f"c{i}" for i in range(CLASSES)],
        "thresholds": {"score": 0.5, "nms": False, "max_detections": QUERIES, "drop_empty_masks": True},
    })


def contenders(raw: dict[str, np.ndarray]) -> dict:
    import torch
    from transformers import Mask2FormerImageProcessor

    processor = Mask2FormerImageProcessor()

    class Out:
        class_queries_logits = torch.from_numpy(raw["class_queries_logits"])
        masks_queries_logits = torch.from_numpy(raw["masks_queries_logits"])

    def library() -> int:
        (res,) = processor.post_process_instance_segmentation(Out, threshold=0.5, target_sizes=[ORIG],
                                                              return_binary_maps=True)
        return len(res["segments_info"])

    m, lb = manifest(), LetterboxInfo.stretch(ORIG, INPUT)
    base = QueryDecoder(m, "numpy")
    from edgeseg.families.query import FAMILY

    opts = FAMILY.options(m)
    lib_opts = dataclasses.replace(opts, mask_sampling="transformers")
    c = QueryDecoder(m, "c") if cpath.available() else None
    runs = {
        "transformers": library,
        "edgeseg_transformers": lambda: len(base(raw, lb, lib_opts)),
        "edgeseg_exact_numpy": lambda: len(base(raw, lb, opts)),
    }
    if c is not None:
        runs["edgeseg_exact_c"] = lambda: len(c(raw, lb, opts))
    return runs


def bench(n: int, repeats: int) -> dict:
    raw = outputs(n)
    runs = contenders(raw)
    counts = {name: fn() for name, fn in runs.items()}  # warm-up, and every contender finds the n instances
    if set(counts.values()) != {n}:
        raise RuntimeError(f"contenders disagree on the instance count (expected {n}): {counts}")
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t0) * 1e3)
    med = {name: statistics.median(t) for name, t in times.items()}
    return {"n": n, "median_ms": {k: round(v, 2) for k, v in med.items()},
            "speedup_vs_transformers": {k: round(med["transformers"] / v, 2) for k, v in med.items()},
            "repeats": repeats}


def main() -> None:
    import torch
    import transformers

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, nargs="+", default=[10, 50, 100])
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--out")
    args = p.parse_args()
    info = machine()
    info.update(torch=torch.__version__, transformers=transformers.__version__, threads=1)
    rows = []
    for n in args.n:
        rows.append(bench(n, args.repeats))
        print(json.dumps(rows[-1]))
    out = Path(args.out) if args.out else HERE / "results" / f"query_decode_{info['arch']}-{info['cores']}c.json"
    out.write_text(json.dumps({"machine": info, "image": list(ORIG), "queries": QUERIES, "classes": CLASSES,
                               "mask_grid": list(GRID), "results": rows}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
