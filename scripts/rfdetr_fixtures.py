"""Make the committed RF-DETR-Seg test fixtures (tests/fixtures/rfdetr/).

Builds a *tiny* RF-DETR-Seg with rfdetr's own classes (``RFDETRSegNano``
with a smaller ``RFDETRSegNanoConfig``: 30 queries, hidden dim 32, 2 decoder
layers, 3 classes; random weights, seeded, nothing downloaded), exports it with
rfdetr's own ``RFDETR.export(format="onnx")`` and records, for a few images of
different sizes, what rfdetr itself makes of that very ONNX file:
``RFDETR.predict``'s preprocessing (``uint8 / 255``, torchvision's
``F.resize(..., antialias=False)`` to the square input, ``F.normalize`` with
ImageNet's mean/std), onnxruntime on the file, then rfdetr's ``PostProcess``
(the model's ``postprocess``, as ``predict`` calls it) and ``predict``'s
``score > threshold`` filter. Labels, scores, boxes (XYXY original pixels)
and COCO RLE masks go to ``predictions.json``; beside them, how far
``predict`` on the torch model lies from that (``predict_vs_onnx``).
Tests never run this script: they read the committed files.

The DINOv2 backbone: rfdetr reads its DINOv2-with-registers config from a
JSON file per size (``small``: 12 layers, width 384, 21 M parameters) in
``rfdetr.models.backbone.dinov2.get_config`` and takes the projector's input
width from ``size_to_width``; no ``ModelConfig`` field reaches them, so
:func:`tiny_dinov2` patches both for the build only (2 layers, width 48, 2
heads; ``out_feature_indexes=[1, 2]``). Everything else is rfdetr's code:
the config passes through rfdetr's own pydantic validation, the model through
its builder, the export through its exporter.

Random weights score every pair near 1 % (the class head's prior bias) and
give flat masks: the class head is scaled (``--class-gain``, bias
``--class-bias``) and the segmentation head's query projection too
(``--mask-gain``, mask bias ``--mask-bias``), so that some pairs pass 0.5 and
masks have edges, as a trained model's do.

Venv (outside the repo; a light venv whose site-packages has a ``.pth`` file
pointing at the shared one with torch 2.14.1 (CUDA build, runs on the CPU),
torchvision 0.29.1, transformers 5.x, onnx, onnxruntime, pycocotools and
OpenCV; rfdetr installed without its dependencies, plus the few it imports
that the shared venv lacks). From scratch, pin torch first so nothing pulls
other CUDA wheels::

    python3 -m venv /work/venvs/rfdetr
    echo /work/venvs/ultra/lib/python3.11/site-packages > /work/venvs/rfdetr/lib/python3.11/site-packages/ultra.pth
    /work/venvs/rfdetr/bin/pip install torch==2.14.1 torchvision==0.29.1   # already satisfied through ultra.pth
    /work/venvs/rfdetr/bin/pip install --no-deps rfdetr==1.11.2 supervision==0.31.2 pydeprecate==0.9.0 defusedxml av

(the shared venv ``/work/venvs/ultra``: ``pip install torch==2.14.1
torchvision==0.29.1`` then ``pip install "transformers>=5,<6" onnx onnxruntime
pycocotools opencv-python-headless pillow``).

Run (from the repository root; about 30 s on the project's 2-core VM)::

    /work/venvs/rfdetr/bin/python scripts/rfdetr_fixtures.py

Versions used: rfdetr 1.11.2, transformers 5.24, torch 2.14.1+cu130 (on
CPU), torchvision 0.29.1, onnx 1.23.2, onnxruntime 1.32.0, Python 3.11.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import torch
import torchvision.transforms.functional as F  # noqa: N812
from pycocotools import mask as mask_utils
from rfdetr import RFDETRSegNano
from rfdetr.detr import _uint8_chw_to_float, _uint8_image_to_chw_view
from rfdetr.models.backbone import dinov2

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "fixtures" / "rfdetr"
IMAGES = ["edgeseg/assets/samples/scene_00.jpg", "edgeseg/assets/samples/scene_03.jpg",
          "tests/fixtures/ultralytics/images/synth_640x360.jpg", "tests/fixtures/ultralytics/images/synth_300x500.jpg",
          "tests/fixtures/ultralytics/images/synth_333x250.jpg"]
CLASSES = ("box", "can", "bottle")


@contextlib.contextmanager
def tiny_dinov2(layers: int, width: int, heads: int) -> Iterator[None]:
    """rfdetr's ``small`` DINOv2-with-registers config with fewer layers and a smaller width, for one build."""
    get_config, widths = dinov2.get_config, dict(dinov2.size_to_width)

    def smaller(size: str, use_registers: bool) -> dict:
        config = get_config(size, use_registers)
        config.update(num_hidden_layers=layers, hidden_size=width, num_attention_heads=heads)
        return config

    dinov2.get_config = smaller
    dinov2.size_to_width["small"] = width
    try:
        yield
    finally:
        dinov2.get_config = get_config
        dinov2.size_to_width.clear()
        dinov2.size_to_width.update(widths)


def build(args: argparse.Namespace) -> RFDETRSegNano:
    torch.manual_seed(args.seed)
    with tiny_dinov2(layers=2, width=48, heads=2):
        model = RFDETRSegNano(pretrain_weights=None, num_classes=len(CLASSES), out_feature_indexes=[1, 2],
                              hidden_dim=32, sa_nheads=2, ca_nheads=4, dec_layers=2, num_queries=args.queries,
                              num_select=args.queries, device="cpu")
    net = model.model.model
    with torch.no_grad():
        net.class_embed.weight.mul_(args.class_gain)
        net.class_embed.bias.fill_(args.class_bias)
        proj = net.segmentation_head.query_features_proj
        proj.weight.mul_(args.mask_gain)
        proj.bias.mul_(args.mask_gain)
        net.segmentation_head.bias.fill_(args.mask_bias)
    return model


def preprocess(model: RFDETRSegNano, rgb: np.ndarray) -> torch.Tensor:
    """``RFDETR.predict``'s steps for one uint8 RGB image (its own helpers, its resize and normalize calls)."""
    img = _uint8_chw_to_float(_uint8_image_to_chw_view(rgb), torch.tensor(255, dtype=torch.get_default_dtype()))
    size = [model.model.resolution, model.model.resolution]
    return F.normalize(torch.stack([F.resize(img, size, antialias=False)]), model.means, model.stds)


def rle(bitmap: np.ndarray) -> dict:
    code = mask_utils.encode(np.asfortranarray(bitmap.astype(np.uint8)))
    return {"size": list(code["size"]), "counts": code["counts"].decode()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--queries", type=int, default=30)
    ap.add_argument("--class-gain", type=float, default=3.0)
    ap.add_argument("--class-bias", type=float, default=-1.5)
    ap.add_argument("--mask-gain", type=float, default=5.0)
    ap.add_argument("--mask-bias", type=float, default=-3.0)
    ap.add_argument("--threshold", type=float, default=0.5, help="predict's threshold")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    model = build(args)
    with tempfile.TemporaryDirectory() as tmp:
        exported = model.export(output_dir=tmp, format="onnx", verbose=False)
        onnx_path = OUT / "model.onnx"
        shutil.copyfile(exported, onnx_path)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    images = {}
    for rel in IMAGES:
        rgb = np.ascontiguousarray(cv2.imread(str(REPO / rel))[..., ::-1])
        raw = dict(zip(names, session.run(None, {session.get_inputs()[0].name: preprocess(model, rgb).numpy()}), strict=True))
        outputs = {"pred_boxes": torch.from_numpy(raw["dets"]), "pred_logits": torch.from_numpy(raw["labels"]),
                   "pred_masks": torch.from_numpy(raw["masks"])}
        (res,) = model.model.postprocess(outputs, target_sizes=torch.tensor([rgb.shape[:2]]),
                                         score_threshold=args.threshold)
        keep = (res["scores"] > args.threshold).nonzero(as_tuple=True)[0]  # predict's own filter
        scores, labels = res["scores"][keep].numpy(), res["labels"][keep].numpy()
        boxes, masks = res["boxes"][keep].numpy(), res["masks"][keep][:, 0].numpy()
        ref = model.predict(rgb, threshold=args.threshold)  # the torch model through predict, for the record
        same = len(ref) == len(scores) and bool((ref.class_id == labels).all())
        gap = float(np.abs(ref.confidence - scores).max(initial=0.0)) if same else None
        instances = [{"label_id": int(c), "score": float(s), "box": [float(v) for v in b], "mask": rle(m)}
                     for c, s, b, m in zip(labels, scores, boxes, masks, strict=True)]
        images[Path(rel).name] = {"path": rel, "size": list(rgb.shape[:2]), "instances": instances,
                                  "predict_vs_onnx": {"same_labels": same, "max_score_diff": gap}}
        print(f"{rel}: {len(instances)} instances; predict (torch) vs ONNX: same labels {same}, max score diff {gap}")
    import importlib.metadata

    import transformers

    record = {
        "model": onnx_path.name, "classes": list(CLASSES), "threshold": args.threshold,
        "resolution": model.model.resolution, "queries": args.queries, "seed": args.seed,
        "class_gain": args.class_gain, "class_bias": args.class_bias, "mask_gain": args.mask_gain,
        "mask_bias": args.mask_bias, "parameters": sum(p.numel() for p in model.model.model.parameters()),
        "versions": {"rfdetr": importlib.metadata.version("rfdetr"),
                     "transformers": transformers.__version__, "torch": torch.__version__,
                     "onnxruntime": ort.__version__},
        "images": images,
    }
    (OUT / "predictions.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {OUT} ({onnx_path.stat().st_size} bytes model) in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
