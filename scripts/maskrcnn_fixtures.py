"""Make the committed Mask R-CNN test fixtures (tests/fixtures/maskrcnn/).

Takes the small reference Mask R-CNN (:mod:`export.models.maskrcnn_tiny`,
trained by ``python -m export.train_maskrcnn``), stores its weights as float16
(half the bytes; the model *is* these rounded weights: every consumer loads them
into float32), and records torchvision's own eval-mode output of that model
(``model([image])``: its transform, RPN, heads, ``paste_masks_in_image``) on a
few images of different sizes and aspects as ``predictions.json``: boxes in
original pixels, scores, zero-based labels (torchvision's label minus one),
and the pasted probability masks thresholded at 0.5 as COCO compressed RLE.

The tests (tests/test_maskrcnn_parity.py) export the weights with
``edgeseg export`` and hold the runtime to these predictions.

Venv: the project's own dev venv (``make install-dev``: torch 2.14.1 and
torchvision 0.29.1 are in the export extra). Run from the repository root::

    nice -n 10 .venv/bin/python -m export.train_maskrcnn --minutes 45 --out runs/maskrcnn_tiny.safetensors
    .venv/bin/python scripts/maskrcnn_fixtures.py --weights runs/maskrcnn_tiny.safetensors
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import torch
import torchvision
from pycocotools import mask as mask_utils
from safetensors.torch import load_file, save_file

from export.data.shapes import CLASS_NAMES
from export.models.maskrcnn_tiny import build

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "fixtures" / "maskrcnn"
IMAGES = (
    "edgeseg/assets/samples/scene_00.jpg",
    "edgeseg/assets/samples/scene_03.jpg",
    "tests/fixtures/ultralytics/images/synth_640x360.jpg",
    "tests/fixtures/ultralytics/images/synth_300x500.jpg",
    "tests/fixtures/ultralytics/images/synth_333x250.jpg",
)


def torchvision_predict(model: torch.nn.Module, image_bgr: np.ndarray) -> dict:
    """torchvision's eval output on one BGR image, as JSON-ready lists (masks: RLE of ``> 0.5``)."""
    image = torch.from_numpy(np.ascontiguousarray(image_bgr[..., ::-1])).permute(2, 0, 1).float() / 255.0
    with torch.no_grad():
        out = model([image])[0]
    masks = []
    for m in (out["masks"][:, 0] > 0.5).numpy():
        rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        masks.append({"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")})
    return {
        "shape": list(image_bgr.shape[:2]),
        "boxes": out["boxes"].tolist(),
        "scores": out["scores"].tolist(),
        "labels": (out["labels"] - 1).tolist(),
        "masks": masks,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, required=True, help="float32 weights from export.train_maskrcnn")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    half = {k: v.half() if v.is_floating_point() else v for k, v in load_file(str(args.weights)).items()}
    save_file(half, str(args.out / "weights.safetensors"))
    model = build()
    model.load_state_dict(load_file(str(args.out / "weights.safetensors")))
    model.eval()
    record = {
        "torch_version": torch.__version__,
        "torchvision_version": torchvision.__version__,
        "model": "export.models.maskrcnn_tiny:build",
        "weights": "weights.safetensors",
        "classes": list(CLASS_NAMES),
        "images": {p: torchvision_predict(model, cv2.imread(str(REPO / p))) for p in IMAGES},
    }
    (args.out / "predictions.json").write_text(json.dumps(record))
    for p, r in record["images"].items():
        print(f"{p}: {len(r['boxes'])} detections, top scores {[round(s, 3) for s in r['scores'][:5]]}")


if __name__ == "__main__":
    main()
