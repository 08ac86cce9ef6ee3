"""Train a tiny Segment Anything on edgeseg's synthetic scenes with box prompts, and export its ONNX pair.

The model is segment-anything's own ``Sam`` (``ImageEncoderViT``,
``PromptEncoder``, ``MaskDecoder``) in a small config (512 input, ViT width
64, depth 3, prompt width 64), trained from scratch (nothing downloaded) on
box prompts: each step takes a few scenes, prompts every object (up to 8 per
scene) with its ground-truth box jittered like a detector's (each side moved
by up to 10 % of the box size), and fits the single-mask output with BCE +
dice at the scene's resolution plus the IoU head (MSE). Time-boxed
(``--minutes``, cosine learning rate over the box); the last weights are
exported as ``scripts/sam_fixtures.py`` exports (encoder + ``SamOnnxModel``
decoder, all mask tokens, with the dynamic prompt-batch axis) into ``--out``. Import and evaluate with the
runtime (benchmarks/refine_map.py)::

    python -m export.data.synthetic --out data/synth/train --num 1500 --seed 1 --imgsz 320
    nice -n 10 /work/venvs/sam/bin/python scripts/train_tiny_sam.py --minutes 40 --out data/sam_train
    .venv/bin/edgeseg import data/sam_train/encoder.onnx --decoder data/sam_train/decoder.onnx \\
        --name sam-synth --out bundles/sam-synth
    .venv/bin/python benchmarks/refine_map.py --refine bundles/sam-synth

Venv: the one of scripts/sam_fixtures.py (segment-anything 1.0 on torch 2.14.1; pycocotools).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from pycocotools import mask as mask_utils
from segment_anything.modeling import Sam

sys.path.insert(0, str(Path(__file__).parent))
from sam_fixtures import TinySam, build_tiny_sam, export_decoder, export_encoder  # noqa: E402

SIZE, PATCH, EMBED, DEPTH, HEADS, PROMPT_DIM = 512, 16, 64, 3, 2, 64


#: The trained model: larger than the fixtures' (512 px input, wider decoder), rel-pos tables from zero.
CONFIG = TinySam(image_size=SIZE, patch=PATCH, embed=EMBED, depth=DEPTH, heads=HEADS, prompt_dim=PROMPT_DIM,
                 window_size=8, mask_in_chans=8, decoder_mlp=128, decoder_heads=4, iou_hidden=64,
                 random_rel_pos=False)


def load_split(root: Path, limit: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(RGB image (H, W, 3) uint8, boxes (K, 4) XYXY, masks (K, H, W) bool)`` per scene."""
    coco = json.loads((root / "annotations.json").read_text())
    by_image: dict[int, list] = {}
    for a in coco["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    out = []
    for info in coco["images"][:limit]:
        anns = by_image.get(info["id"], [])
        if not anns:
            continue
        img = cv2.cvtColor(cv2.imread(str(root / info["file_name"])), cv2.COLOR_BGR2RGB)
        masks, boxes = [], []
        for a in anns:
            seg = a["segmentation"]
            rle = json.loads(seg.replace("'", '"')) if isinstance(seg, str) else seg
            m = mask_utils.decode(rle).astype(bool)
            if m.sum() < 16:
                continue
            ys, xs = np.nonzero(m)
            masks.append(m)
            boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        if masks:
            out.append((img, np.array(boxes, np.float32), np.stack(masks)))
    return out


def jitter(boxes: np.ndarray, rng: np.random.Generator, frac: float = 0.1) -> np.ndarray:
    wh = np.repeat(boxes[:, 2:] - boxes[:, :2], 2, axis=0).reshape(-1, 4)
    return boxes + rng.uniform(-frac, frac, boxes.shape).astype(np.float32) * wh


def step_loss(sam: Sam, batch, rng: np.random.Generator, per_image: int) -> torch.Tensor:
    images = []
    for img, _, _ in batch:
        x = torch.from_numpy(cv2.resize(img, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)).permute(2, 0, 1).float()
        images.append((x - sam.pixel_mean) / sam.pixel_std)
    emb = sam.image_encoder(torch.stack(images))
    pe = sam.prompt_encoder.get_dense_pe()
    total = emb.new_zeros(())
    for i, (img, boxes, masks) in enumerate(batch):
        pick = rng.permutation(len(boxes))[:per_image]
        h, w = img.shape[:2]
        scale = np.array([SIZE / w, SIZE / h, SIZE / w, SIZE / h], np.float32)
        b = torch.from_numpy(jitter(boxes[pick], rng) * scale)
        sparse, dense = sam.prompt_encoder(points=None, boxes=b, masks=None)
        low, iou = sam.mask_decoder(image_embeddings=emb[i : i + 1], image_pe=pe, sparse_prompt_embeddings=sparse,
                                    dense_prompt_embeddings=dense, multimask_output=False)
        logits = F.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)[:, 0]
        target = torch.from_numpy(masks[pick]).float()
        bce = F.binary_cross_entropy_with_logits(logits, target)
        prob = logits.sigmoid()
        inter = (prob * target).sum((1, 2))
        dice = 1 - (2 * inter + 1) / (prob.sum((1, 2)) + target.sum((1, 2)) + 1)
        with torch.no_grad():
            hard = logits > 0
            true_iou = (hard & (target > 0)).sum((1, 2)) / ((hard | (target > 0)).sum((1, 2)).clamp(min=1))
        total = total + bce + dice.mean() + F.mse_loss(iou[:, 0], true_iou.float())
    return total / len(batch)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--train", type=Path, default=Path("data/synth/train"))
    p.add_argument("--out", type=Path, default=Path("data/sam_train"))
    p.add_argument("--minutes", type=float, default=40.0)
    p.add_argument("--images", type=int, default=1500)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--per-image", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    data = load_split(args.train, args.images)
    print(f"{len(data)} training scenes", flush=True)
    sam = build_tiny_sam(cfg=CONFIG).train()
    opt = torch.optim.AdamW(sam.parameters(), lr=args.lr, weight_decay=0.01)
    rng = np.random.default_rng(0)
    budget = args.minutes * 60
    t0 = time.time()
    step, ema = 0, None
    log = []
    while (elapsed := time.time() - t0) < budget:
        frac = elapsed / budget
        for g in opt.param_groups:  # warm-up 3 %, cosine to 2 % over the time box
            g["lr"] = args.lr * min(1.0, frac / 0.03) * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac)))
        batch = [data[i] for i in rng.integers(0, len(data), args.batch)]
        loss = step_loss(sam, batch, rng, args.per_image)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(sam.parameters(), 1.0)
        opt.step()
        step += 1
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        if step % 25 == 0:
            print(f"step {step} {elapsed / 60:.1f} min loss {ema:.4f} lr {opt.param_groups[0]['lr']:.2e}", flush=True)
            log.append({"step": step, "minutes": round(elapsed / 60, 2), "loss": round(ema, 4)})
        if step % 200 == 0:
            torch.save(sam.state_dict(), args.out / "tiny_sam.pt")
    torch.save(sam.state_dict(), args.out / "tiny_sam.pt")
    sam.eval()
    export_encoder(sam, args.out / "encoder.onnx")
    export_decoder(sam, args.out / "decoder.onnx", batched=True)  # one decoder run for all of a frame's boxes
    (args.out / "train_log.json").write_text(json.dumps({"steps": step, "minutes": args.minutes, "log": log,
                                                          "config": vars(args) | {"train": str(args.train),
                                                                                   "out": str(args.out)}}, indent=1))
    print(f"done: {step} steps; exported {args.out}/encoder.onnx, decoder.onnx", flush=True)


if __name__ == "__main__":
    main()
