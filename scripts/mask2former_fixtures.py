"""Make the committed Mask2Former test fixtures (tests/fixtures/mask2former/).

Builds a small ``Mask2FormerForUniversalSegmentation`` from a config with
random weights (Swin backbone, 3 classes, 20 queries; nothing is downloaded),
exports it with edgeseg's own exporter (:mod:`export.transformers_onnx`) and
records what transformers itself makes of that very ONNX file on a few
images: ``Mask2FormerImageProcessor`` (``size={"height": H, "width": W}``)
prepares ``pixel_values``, onnxruntime runs the file, and
``post_process_instance_segmentation`` (``target_sizes`` = the image's size,
binary maps) gives the instances, written as labels, scores and COCO RLE
masks to ``predictions.json``. Tests never run this script: they read the
committed files, so neither transformers nor torch enters ``make test``.

Random weights give flat class probabilities (about 1/(C+1) each) and mask
logits near 0 (mean sigmoid about 0.5), below any useful threshold: the class
head's weights are scaled by ``--class-gain`` and the pixel decoder's mask
projection by ``--mask-gain``, so that queries disagree and masks are
confident, as a trained model's are.

Venv (outside the repo; a light venv on top of the shared one, which has
torch 2.14.1 (CUDA build, runs on the CPU), torchvision 0.29.1,
transformers 5.x, onnx, onnxruntime, pycocotools and opencv; from scratch,
pin torch first so nothing pulls other CUDA wheels)::

    python3 -m venv /work/venvs/ultra
    /work/venvs/ultra/bin/pip install torch==2.14.1 torchvision==0.29.1
    /work/venvs/ultra/bin/pip install "transformers>=5,<6" onnx onnxruntime pycocotools opencv-python-headless pillow

Run (from the repository root; about 40 s on the project's 2-core VM)::

    /work/venvs/ultra/bin/python scripts/mask2former_fixtures.py

With ``--weights`` (a state dict from ``scripts/train_tiny_mask2former.py``:
the same architecture trained briefly on the synthetic scenes, no gains)
and ``--out DIR``, the same records for the trained model (README, the
``exact`` masks on realistic masks)::

    /work/venvs/ultra/bin/python scripts/mask2former_fixtures.py --weights /tmp/m2f_tiny.pt \
        --out tests/fixtures/mask2former-trained

Versions used: transformers 5.24, torch 2.14.1+cu130 (on CPU), torchvision
0.29.1, onnx 1.23.2, onnxruntime 1.32.0, Python 3.11.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import torch
from pycocotools import mask as mask_utils
from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, Mask2FormerImageProcessor, SwinConfig

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from export.transformers_onnx import export_mask2former  # noqa: E402

OUT = REPO / "tests" / "fixtures" / "mask2former"
IMAGES = ["edgeseg/assets/samples/scene_00.jpg", "edgeseg/assets/samples/scene_03.jpg",
          "tests/fixtures/ultralytics/images/synth_640x360.jpg", "tests/fixtures/ultralytics/images/synth_300x500.jpg",
          "tests/fixtures/ultralytics/images/synth_333x250.jpg"]
CLASSES = ("box", "can", "bottle")


class _Outputs:
    """What ``post_process_instance_segmentation`` reads of a model output."""

    def __init__(self, class_logits: np.ndarray, mask_logits: np.ndarray) -> None:
        self.class_queries_logits = torch.from_numpy(class_logits)
        self.masks_queries_logits = torch.from_numpy(mask_logits)


def build(seed: int, size: int, class_gain: float, mask_gain: float,
          classes: tuple[str, ...] = CLASSES) -> Mask2FormerForUniversalSegmentation:
    torch.manual_seed(seed)
    backbone = SwinConfig(image_size=size, embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=4,
                          out_features=["stage1", "stage2", "stage3", "stage4"])
    config = Mask2FormerConfig(
        backbone_config=backbone, num_labels=len(classes), num_queries=20, hidden_dim=32, feature_size=32,
        mask_feature_size=32, dim_feedforward=64, encoder_layers=1, decoder_layers=2, num_attention_heads=4,
        encoder_feedforward_dim=64, use_pretrained_backbone=False,
        id2label=dict(enumerate(classes)), label2id={n: i for i, n in enumerate(classes)},
    )
    model = Mask2FormerForUniversalSegmentation(config).eval()
    with torch.no_grad():
        model.class_predictor.weight.mul_(class_gain)
        proj = model.model.pixel_level_module.decoder.mask_projection
        proj.weight.mul_(mask_gain)
        proj.bias.mul_(mask_gain)
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=256, help="processor and model input size (square, multiple of 32)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--class-gain", type=float, default=12.0)
    ap.add_argument("--mask-gain", type=float, default=40.0)
    ap.add_argument("--threshold", type=float, default=0.5, help="post_process_instance_segmentation threshold")
    ap.add_argument("--weights", type=Path, help="a state dict from scripts/train_tiny_mask2former.py (no gains)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    out_dir = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    trained = torch.load(args.weights, weights_only=False) if args.weights else None
    if trained is None:
        model = build(args.seed, args.size, args.class_gain, args.mask_gain)
    else:
        model = build(args.seed, trained["size"], 1.0, 1.0, classes=tuple(trained["classes"]))
        model.load_state_dict(trained["state_dict"])
        model.eval()
        args.size, args.class_gain, args.mask_gain = trained["size"], 1.0, 1.0
    onnx_path = export_mask2former(model, out_dir / "model.onnx", (args.size, args.size))
    processor = Mask2FormerImageProcessor(size={"height": args.size, "width": args.size})
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    images = {}
    for rel in IMAGES:
        rgb = cv2.imread(str(REPO / rel))[..., ::-1].copy()
        pixels = processor(images=rgb, return_tensors="pt")["pixel_values"].numpy()
        class_logits, mask_logits = session.run(None, {"pixel_values": pixels})
        with torch.no_grad():
            ref = model(pixel_values=torch.from_numpy(pixels))
        gap = float(np.abs(ref.masks_queries_logits.numpy() - mask_logits).max())
        (res,) = processor.post_process_instance_segmentation(
            _Outputs(class_logits, mask_logits), threshold=args.threshold, target_sizes=[rgb.shape[:2]],
            return_binary_maps=True)
        maps = res["segmentation"]
        instances = []
        for k, info in enumerate(res["segments_info"]):
            rle = mask_utils.encode(np.asfortranarray(maps[k].numpy().astype(np.uint8)))
            instances.append({"label_id": int(info["label_id"]), "score": float(info["score"]),
                              "mask": {"size": list(rle["size"]), "counts": rle["counts"].decode()}})
        images[Path(rel).name] = {"path": rel, "size": list(rgb.shape[:2]), "instances": instances,
                                  "torch_vs_onnx_max_abs": gap}
        print(f"{rel}: {len(instances)} instances, torch vs ONNX mask logits max |diff| {gap:.2e}")
    import transformers

    record = {
        "model": onnx_path.name, "classes": list(model.config.id2label.values()), "threshold": args.threshold,
        "size": args.size,
        "seed": args.seed, "class_gain": args.class_gain, "mask_gain": args.mask_gain, "queries": model.config.num_queries,
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__, "onnxruntime": ort.__version__},
        "images": images,
    }
    if trained is not None:
        record["trained"] = {k: trained[k] for k in ("steps", "seconds", "final_loss")}
    (out_dir / "predictions.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out_dir} ({onnx_path.stat().st_size} bytes model) in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
