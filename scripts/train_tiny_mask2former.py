"""Train the tiny Mask2Former of ``scripts/mask2former_fixtures.py`` briefly on the synthetic scenes (CPU).

Random weights give ragged, speckled masks whose boundary is a large share of
their area; a few minutes of training on the synthetic tabletop scenes give
object-shaped masks, on which the ``exact`` mask mode's agreement with
transformers' own masks is measured (README, "Mask2Former from transformers").
Same architecture as the random fixture (``build`` there: Swin embed dim 16,
hidden dim 32, 20 queries, 256 x 256 input), with the six classes of the
scenes; transformers' own loss (Hungarian matching, class + mask + dice) and
AdamW. The state dict goes to ``--out``; ``mask2former_fixtures.py
--weights`` turns it into a fixture.

Data: a COCO folder of the synthetic scenes, e.g. ``python -m
export.data.synthetic --out /tmp/synth_train --num 400 --seed 7`` (its own
seed: not the val split's 1000). Venv: the one of
``scripts/mask2former_fixtures.py`` (torch, transformers, pycocotools, OpenCV).
Run (about 10 min on the project's 2-core VM)::

    /work/venvs/ultra/bin/python scripts/train_tiny_mask2former.py --data /tmp/synth_train \\
        --minutes 10 --out /tmp/m2f_tiny.pt

(``--resume`` trains on from such a file; the optimizer state starts afresh.)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from pycocotools import mask as mask_utils

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from mask2former_fixtures import build  # noqa: E402

CLASSES = ("box", "can", "bottle", "bolt", "ring", "blob")
MEAN, STD = np.float32([0.485, 0.456, 0.406]), np.float32([0.229, 0.224, 0.225])


def load(data: Path, size: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``(pixel_values (3, S, S), masks (n, S, S) float, labels (n,) long)`` per scene, stretched to ``S x S``."""
    coco = json.loads((data / "annotations.json").read_text())
    anns: dict[int, list[dict]] = {}
    for a in coco["annotations"]:
        anns.setdefault(a["image_id"], []).append(a)
    items = []
    for img in coco["images"]:
        rgb = cv2.imread(str(data / img["file_name"]))[..., ::-1]
        x = (cv2.resize(rgb, (size, size), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255 - MEAN) / STD
        masks, labels = [], []
        for a in anns.get(img["id"], []):
            seg = a["segmentation"]
            m = mask_utils.decode(seg if isinstance(seg["counts"], bytes) else {**seg, "counts": seg["counts"].encode()})
            masks.append(cv2.resize(m, (size, size), interpolation=cv2.INTER_NEAREST))
            labels.append(a["category_id"] - 1)
        if masks:
            items.append((torch.from_numpy(x.transpose(2, 0, 1).copy()), torch.from_numpy(np.stack(masks)).float(),
                          torch.tensor(labels)))
    return items


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resume", type=Path, help="a state dict this script wrote: train on from it")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    items = load(args.data, args.size)
    model = build(args.seed, args.size, 1.0, 1.0, classes=CLASSES).train()
    model.config.train_num_points = 2048  # points sampled per mask for the loss (12544 by default; CPU budget)
    done = {"steps": 0, "seconds": 0}
    if args.resume:
        done = torch.load(args.resume, weights_only=False)
        model.load_state_dict(done["state_dict"])
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    rng = np.random.default_rng(args.seed)
    t0, step, losses = time.time(), 0, []
    while time.time() - t0 < args.minutes * 60:
        batch = [items[i] for i in rng.choice(len(items), args.batch, replace=False)]
        out = model(pixel_values=torch.stack([b[0] for b in batch]), mask_labels=[b[1] for b in batch],
                    class_labels=[b[2] for b in batch])
        opt.zero_grad()
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1 * 100)
        opt.step()
        losses.append(out.loss.item())
        step += 1
        if step % 20 == 0:
            print(f"step {step} ({time.time() - t0:.0f} s): loss {np.mean(losses[-20:]):.3f}", flush=True)
    torch.save({"state_dict": model.state_dict(), "classes": CLASSES, "size": args.size,
                "steps": done["steps"] + step, "seconds": done["seconds"] + round(time.time() - t0),
                "final_loss": float(np.mean(losses[-20:]))}, args.out)
    print(f"wrote {args.out}: {done['steps'] + step} steps in all, loss {losses[0]:.3f} -> {np.mean(losses[-20:]):.3f}")


if __name__ == "__main__":
    main()
