"""Query-family decode time at 1280x720: edgeseg against each library's own post-processing.

Two models (``--models``): Mask2Former against transformers'
``post_process_instance_segmentation``, RF-DETR-Seg against rfdetr's
``PostProcess`` (below).

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

RF-DETR-Seg (``--models rfdetr``): outputs of an RF-DETR-Seg-Nano-shaped
model (312 x 312 input, 100 queries, 91 class-logit columns as rfdetr's COCO
models have, 78 x 78 mask logits, ``dets`` boxes) with exactly N confident
(query, class) pairs, the same blobs as masks and their boxes as ``dets``:

* ``rfdetr``: ``rfdetr.models.postprocess.PostProcess(num_select=100)(outputs,
  target_sizes=[(720, 1280)], score_threshold=0.5)`` and ``RFDETR.predict``'s
  ``score > 0.5`` filter, masks as numpy (torch tensors in);
* ``edgeseg_exact_c`` / ``edgeseg_exact_numpy``: the ``query`` family decoder
  with an rfdetr import's manifest (sigmoid scoring, model boxes, masks
  through the mask-first path).

Run it in a venv with transformers, torch (and rfdetr for ``rfdetr``), the
repository on the path (it imports the in-tree C extension that ``make
install-dev`` built); the rfdetr venv of ``scripts/rfdetr_fixtures.py`` has
all three::

    /work/venvs/rfdetr/bin/python benchmarks/query_decode.py          # both models, N = 10 50 100
    /work/venvs/ultra/bin/python benchmarks/query_decode.py --models mask2former --n 10 --repeats 5 --out /tmp/q.json

Writes ``benchmarks/results/query_decode_<arch>-<cores>c.json`` (Mask2Former)
and ``query_decode_rfdetr_<arch>-<cores>c.json``.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # before numpy loads BLAS
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from decode_bench import interleaved_medians, machine  # noqa: E402

from edgeseg.decode import cpath  # noqa: E402
from edgeseg.families.query import QueryDecoder  # noqa: E402
from edgeseg.manifest import parse_manifest  # noqa: E402
from edgeseg.preprocess import LetterboxInfo  # noqa: E402

ORIG, INPUT, GRID, QUERIES, CLASSES = (720, 1280), (384, 384), (96, 96), 100, 80


def blobs(rng: np.random.Generator, n: int, grid: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``(1, QUERIES, *grid)`` mask logits with an elliptic blob in the first ``n`` maps, and the blobs'
    ``(n, 4)`` normalized ``cx, cy, w, h``."""
    yy, xx = np.mgrid[0 : grid[0], 0 : grid[1]].astype(np.float32)
    masks = rng.normal(-6.0, 1.0, (1, QUERIES, *grid)).astype(np.float32)
    boxes = np.zeros((n, 4), np.float32)
    for q in range(n):
        cx, cy = rng.uniform(0, grid[1]), rng.uniform(0, grid[0])
        rx, ry = rng.uniform(0.01, 0.075, 2) * np.array(grid[::-1])
        d = np.sqrt(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2)
        masks[0, q] = 8.0 * (1.0 - d) + rng.normal(0, 0.5, grid).astype(np.float32)
        boxes[q] = (cx / grid[1], cy / grid[0], 2 * rx / grid[1], 2 * ry / grid[0])
    return masks, boxes


def outputs(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Mask2Former-shaped raw outputs with exactly ``n`` confident queries."""
    rng = np.random.default_rng(seed)
    cls = rng.normal(0.0, 1.0, (1, QUERIES, CLASSES + 1)).astype(np.float32)
    cls[0, n:, -1] += 12.0  # no object
    cls[0, np.arange(n), rng.integers(0, CLASSES, n)] += 12.0
    masks, _ = blobs(rng, n, GRID)
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


RF_INPUT, RF_GRID, RF_COLUMNS = (312, 312), (78, 78), 91


def rfdetr_outputs(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """RF-DETR-Seg-shaped raw outputs with exactly ``n`` (query, class) pairs above 0.5."""
    rng = np.random.default_rng(seed)
    cls = rng.normal(-8.0, 1.0, (1, QUERIES, RF_COLUMNS)).astype(np.float32)
    cls[0, np.arange(n), rng.integers(0, RF_COLUMNS, n)] += 12.0
    masks, boxes = blobs(rng, n, RF_GRID)
    dets = rng.uniform(0.2, 0.8, (1, QUERIES, 4)).astype(np.float32)
    dets[0, :n] = boxes
    return {"labels": cls, "masks": masks, "dets": dets}


def rfdetr_manifest():
    """What ``edgeseg import`` writes for such an rfdetr export (:mod:`edgeseg.imports.rfdetr`)."""
    from edgeseg.imports.base import ImportOptions
    from edgeseg.imports.model_file import ModelFile, TensorInfo
    from edgeseg.imports.rfdetr import SOURCE

    info = ModelFile(path=Path("rfdetr-seg.onnx"), format="onnx", metadata={},
                     inputs=(TensorInfo("input", (1, 3, *RF_INPUT), "float32"),),
                     outputs=(TensorInfo("dets", (1, QUERIES, 4), "float32"),
                              TensorInfo("labels", (1, QUERIES, RF_COLUMNS), "float32"),
                              TensorInfo("masks", (1, QUERIES, *RF_GRID), "float32")))
    return SOURCE.manifest(info, ImportOptions())


def rfdetr_contenders(raw: dict[str, np.ndarray]) -> dict:
    import torch
    from rfdetr.models.postprocess import PostProcess

    post = PostProcess(num_select=QUERIES)
    outs = {"pred_logits": torch.from_numpy(raw["labels"]), "pred_boxes": torch.from_numpy(raw["dets"]),
            "pred_masks": torch.from_numpy(raw["masks"])}
    target = torch.tensor([ORIG])

    def library() -> int:
        (res,) = post(outs, target_sizes=target, score_threshold=0.5)
        keep = (res["scores"] > 0.5).nonzero(as_tuple=True)[0]  # RFDETR.predict's filter
        masks = res["masks"][keep].squeeze(1).numpy()
        return len(masks)

    m, lb = rfdetr_manifest(), LetterboxInfo.stretch(ORIG, RF_INPUT)
    from edgeseg.families.query import FAMILY

    opts = FAMILY.options(m)
    runs = {"rfdetr": library, "edgeseg_exact_numpy": lambda: len(QueryDecoder(m, "numpy")(raw, lb, opts))}
    if cpath.available():
        c = QueryDecoder(m, "c")
        runs["edgeseg_exact_c"] = lambda: len(c(raw, lb, opts))
    return runs


@dataclasses.dataclass(frozen=True)
class Model:
    """One library's side of the benchmark."""

    outputs: Callable[[int], dict[str, np.ndarray]]  # N -> raw outputs with N instances
    contenders: Callable[[dict[str, np.ndarray]], dict[str, Callable[[], int]]]  # the first is the library
    result_name: str  # results file stem
    shapes: dict  # recorded with the results


MODELS = {
    "mask2former": Model(outputs, contenders, "query_decode",
                         {"queries": QUERIES, "classes": CLASSES, "mask_grid": list(GRID)}),
    "rfdetr": Model(rfdetr_outputs, rfdetr_contenders, "query_decode_rfdetr",
                    {"queries": QUERIES, "class_columns": RF_COLUMNS, "input": list(RF_INPUT), "mask_grid": list(RF_GRID)}),
}


def bench(model: Model, n: int, repeats: int) -> dict:
    raw = model.outputs(n)
    runs = model.contenders(raw)
    library = next(iter(runs))
    counts = {name: fn() for name, fn in runs.items()}  # warm-up, and every contender finds the n instances
    if set(counts.values()) != {n}:
        raise RuntimeError(f"contenders disagree on the instance count (expected {n}): {counts}")
    med = interleaved_medians(runs, repeats)
    return {"n": n, "median_ms": {k: round(v, 2) for k, v in med.items()},
            f"speedup_vs_{library}": {k: round(med[library] / v, 2) for k, v in med.items()},
            "repeats": repeats}


def main() -> None:
    import torch
    import transformers

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    p.add_argument("--n", type=int, nargs="+", default=[10, 50, 100])
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--out", help="results file (one model only)")
    args = p.parse_args()
    info = machine()
    info.update(torch=torch.__version__, transformers=transformers.__version__, threads=1)
    if "rfdetr" in args.models:
        import importlib.metadata

        info["rfdetr"] = importlib.metadata.version("rfdetr")
    for name in args.models:
        model = MODELS[name]
        rows = []
        for n in args.n:
            rows.append(bench(model, n, args.repeats))
            print(name, json.dumps(rows[-1]))
        out = (Path(args.out) if args.out and len(args.models) == 1
               else HERE / "results" / f"{model.result_name}_{info['arch']}-{info['cores']}c.json")
        out.write_text(json.dumps({"machine": info, "model": name, "image": list(ORIG), **model.shapes,
                                   "results": rows}, indent=1) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
