"""Trains the small reference Mask R-CNN (:mod:`export.models.maskrcnn_tiny`) on synthetic scenes.

Scenes are rendered on the fly (:func:`export.data.synthetic.render_scene`,
seed 1, the training seed; the val split is seed 1000), so nothing is stored.
Training is torchvision's own loss (``model(images, targets)``), SGD with
momentum and a cosine learning rate over a wall-clock budget: the run stops
after ``--minutes`` and writes the weights (safetensors) every few minutes.

CLI (the committed fixture: stage 1 below with ``--warmup 200``, stopped after
16 minutes, about 84 steps, copied to ``runs/stage1.safetensors``; then the two
continuations; about 2270 steps in all)::

    nice -n 10 python -m export.train_maskrcnn --minutes 45 --out runs/maskrcnn_tiny.safetensors
    nice -n 10 python -m export.train_maskrcnn --init runs/stage1.safetensors --first-scene 400 \
        --warmup 20 --minutes 32 --out runs/maskrcnn_tiny.safetensors
    nice -n 10 python -m export.train_maskrcnn --init runs/maskrcnn_tiny.safetensors --first-scene 1300 \
        --warmup 20 --minutes 20 --out runs/maskrcnn_tiny_stage3.safetensors
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from export.data.synthetic import render_scene
from export.models.maskrcnn_tiny import build

TRAIN_SEED = 1


def scene_target(index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Image ``(3, H, W)`` float in [0, 1] (RGB) and torchvision's target dict for one scene."""
    scene = render_scene(TRAIN_SEED, index)
    image = torch.from_numpy(np.ascontiguousarray(scene.image[..., ::-1])).permute(2, 0, 1).float() / 255.0
    masks = np.stack(scene.masks) if scene.masks else np.zeros((0, *scene.image.shape[:2]), bool)
    boxes = []
    for m in masks:
        ys, xs = np.nonzero(m)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return image, {
        "boxes": torch.tensor(np.asarray(boxes, np.float32).reshape(-1, 4)),
        "labels": torch.tensor(np.asarray(scene.class_ids, np.int64) + 1),
        "masks": torch.from_numpy(masks.astype(np.uint8)),
    }


def train(out: Path, minutes: float, batch: int = 4, lr: float = 0.02, threads: int = 2, seed: int = 0,
          warmup: int = 50, init: Path | None = None, first_scene: int = 0) -> None:
    """Trains until ``minutes`` of wall time are spent; writes ``out`` every 5 minutes and at the end.

    ``init`` continues from earlier weights (a run stopped early); ``first_scene`` skips the scenes it saw.
    """
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    model = build().train()
    if init is not None:
        model.load_state_dict(load_file(str(init)))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=1e-4)
    start = last_save = time.monotonic()
    budget = minutes * 60.0
    step = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    while (elapsed := time.monotonic() - start) < budget:
        frac = elapsed / budget
        warm = min(1.0, (step + 1) / warmup)
        for g in opt.param_groups:
            g["lr"] = lr * warm * 0.5 * (1 + math.cos(math.pi * frac))
        images, targets = zip(*(scene_target(first_scene + step * batch + k) for k in range(batch)), strict=True)
        losses = model(list(images), list(targets))
        loss = sum(losses.values())
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        opt.step()
        step += 1
        if step % 20 == 0:
            parts = " ".join(f"{k[5:]}={v.item():.3f}" for k, v in losses.items())
            print(f"step {step} {elapsed / 60:.1f} min lr {opt.param_groups[0]['lr']:.4f} loss {loss.item():.3f} {parts}",
                  flush=True)
        if time.monotonic() - last_save > 300:
            save_file(model.state_dict(), str(out))
            last_save = time.monotonic()
    save_file(model.state_dict(), str(out))
    print(f"done: {step} steps, {(time.monotonic() - start) / 60:.1f} min, weights in {out}", flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/maskrcnn_tiny.safetensors"))
    ap.add_argument("--minutes", type=float, default=45.0)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=0.02)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=50, help="steps of linear learning-rate warm-up")
    ap.add_argument("--init", type=Path, help="continue from these weights")
    ap.add_argument("--first-scene", type=int, default=0, help="index of the first training scene (after --init)")
    args = ap.parse_args(argv)
    train(args.out, args.minutes, args.batch, args.lr, args.threads, warmup=args.warmup, init=args.init,
          first_scene=args.first_scene)


if __name__ == "__main__":
    main()
