"""Where and why the ``exact`` masks of a Mask2Former bundle differ from transformers' own masks.

For a fixture directory (``model.onnx`` + ``predictions.json`` as
``scripts/mask2former_fixtures.py`` writes them) the model is imported, each
image decoded with ``mask_sampling="exact"`` and ``"transformers"``, and per
instance of the library's list (paired by label and nearest score) it
records the IoU of each mode against the library's mask, the mask's area and
boundary length (pixels with a 4-neighbour outside), and how the exact
mode's disagreement splits into the library's two steps:

* ``grid``: the library thresholds logits on a fixed 384 x 384 grid, then
  resizes the binary grid with ``nearest`` (``floor(x * scale)``, no
  half-pixel centring: a shift of up to one grid cell);
* the IoU of "bilinear to the 384 grid, bilinear again to the image, > 0"
  (``via_grid_bilinear``) against the library isolates the ``nearest`` step;
  against ``exact`` it isolates the double interpolation.

Also the share of disagreeing pixels within 1 px of the exact mask's boundary.
Runs in the dev venv (``.venv``: the runtime, OpenCV, pycocotools)::

    .venv/bin/python scripts/query_mask_agreement.py tests/fixtures/mask2former --out /tmp/agreement.json

Prints a summary (min / median / mean per mode, and the lowest instances with
their area and boundary) and writes every instance's row as JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from mask_parity import decode_rle, iou  # noqa: E402

import edgeseg  # noqa: E402
from edgeseg.decode import queries  # noqa: E402
from edgeseg.imports import import_model  # noqa: E402


def boundary(mask: np.ndarray) -> int:
    """Pixels of ``mask`` with a 4-neighbour outside it (the image border counts as outside)."""
    inner = cv2.erode(mask.astype(np.uint8), np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], np.uint8),
                      borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return int(mask.sum() - inner.sum())


def near_boundary(diff: np.ndarray, mask: np.ndarray) -> float:
    """Share of ``diff`` pixels within 1 px (8-neighbourhood) of ``mask``'s boundary."""
    if not diff.any():
        return 1.0
    m = mask.astype(np.uint8)
    k = np.ones((3, 3), np.uint8)
    band = cv2.dilate(m, k) != cv2.erode(m, k, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return float((diff & band).sum() / diff.sum())


def via_grid_bilinear(logits: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear to the 384 grid, bilinear again to the image (half-pixel centres), ``> 0``."""
    grid = queries.upsample(logits)
    return cv2.resize(grid, (size[1], size[0]), interpolation=cv2.INTER_LINEAR) > 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("fixture", type=Path)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    pred = json.loads((args.fixture / "predictions.json").read_text())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        seg = edgeseg.load(import_model(args.fixture / pred["model"], Path(tmp) / "b").root)
        for name, item in pred["images"].items():
            image = cv2.imread(str(REPO / item["path"]))
            tensor, lb = seg.preprocessor(image)
            raw = seg.backend.run(tensor)
            opts = dataclasses.replace(seg.decoder.options, score_threshold=pred["threshold"])
            exact = seg.decoder(raw, lb, dataclasses.replace(opts, mask_sampling="exact"))
            maps = raw[seg.manifest.output("mask_logits").name][0]
            free = list(range(len(exact)))
            for e in sorted(item["instances"], key=lambda e: -e["score"]):
                j = min((j for j in free if exact.class_ids[j] == e["label_id"]),
                        key=lambda j: abs(float(exact.scores[j]) - e["score"]))
                free.remove(j)
                lib, mine = decode_rle(e["mask"]), exact.masks[j].full()
                query = _query_of(maps, mine, lb)
                grid2 = via_grid_bilinear(maps[query], image.shape[:2])
                rows.append({
                    "image": name, "label": e["label_id"], "score": e["score"], "area": int(lib.sum()),
                    "boundary": boundary(lib), "iou_exact": iou(mine, lib),
                    "iou_grid_bilinear_vs_library": iou(grid2, lib), "iou_grid_bilinear_vs_exact": iou(grid2, mine),
                    "diff_near_boundary": near_boundary(mine ^ lib, mine),
                    "centroid_shift_xy": list(np.subtract(_centroid(lib), _centroid(mine))) if mine.any() and lib.any() else [0.0, 0.0],
                })
    rows.sort(key=lambda r: r["iou_exact"])
    for key in ("iou_exact", "iou_grid_bilinear_vs_library", "iou_grid_bilinear_vs_exact", "diff_near_boundary"):
        vals = [r[key] for r in rows]
        print(f"{key:32s} min {min(vals):.4f} median {statistics.median(vals):.4f} mean {statistics.mean(vals):.4f}")
    shift = np.array([r["centroid_shift_xy"] for r in rows])
    print(f"library centroid - exact centroid, px: mean x {shift[:, 0].mean():+.3f} y {shift[:, 1].mean():+.3f} "
          f"(sd {shift[:, 0].std():.3f}, {shift[:, 1].std():.3f})")
    ratio = [r["boundary"] / max(r["area"], 1) for r in rows]
    corr = float(np.corrcoef(ratio, [1 - r["iou_exact"] for r in rows])[0, 1])
    print(f"{len(rows)} instances; correlation of boundary/area with 1 - IoU: {corr:.3f}; lowest:")
    for r in rows[:6]:
        print(f"  {r['image']:20s} area {r['area']:6d} boundary {r['boundary']:5d} "
              f"({r['boundary'] / max(r['area'], 1):.2f} of it) IoU exact {r['iou_exact']:.3f} "
              f"grid+bilinear vs library {r['iou_grid_bilinear_vs_library']:.3f} "
              f"vs exact {r['iou_grid_bilinear_vs_exact']:.3f}")
    if args.out:
        args.out.write_text(json.dumps({"fixture": str(args.fixture), "boundary_area_corr": corr, "instances": rows},
                                       indent=1) + "\n")


def _centroid(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [float(xs.mean()), float(ys.mean())]


def _query_of(maps: np.ndarray, mask: np.ndarray, lb) -> int:
    """The query whose exact mask is ``mask`` (the decoder does not report query indices)."""
    from edgeseg.decode import maskfirst
    from edgeseg.decode.tensors import QTensor

    _, rendered = maskfirst.decode_masks(QTensor(maps), lb, "numpy")
    for q, m in enumerate(rendered):
        if np.array_equal(m.full(), mask):
            return q
    raise RuntimeError("no query renders this mask")


if __name__ == "__main__":
    main()
