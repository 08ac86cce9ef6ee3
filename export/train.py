"""Trains edgeseg-nano on a synthetic COCO split (CPU friendly, seeded, resumable).

Example (the command that produced ``export/weights/edgeseg-nano.safetensors``
is recorded in that file's metadata and in README)::

    python -m export.train --data data/synth/train --out runs/nano --epochs 12

Each epoch writes ``OUT/last.pt`` (model, EMA, optimizer, epoch; tensors and
plain values only, loaded with ``weights_only=True``) and
``OUT/edgeseg-nano.safetensors`` (EMA weights + config), and appends one JSON
line to ``OUT/log.jsonl``. ``--resume`` continues from ``OUT/last.pt``; the
shuffling and augmentation of epoch ``e`` depend only on ``(seed, e)``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from export.data.batches import TrainSet, load_trainset, make_batch
from export.losses import LossConfig, NanoLoss
from export.models.nano import NanoConfig, build_nano, save_nano


@dataclass(frozen=True)
class TrainConfig:
    """Training options (each default declared here only).

    Attributes:
        data: Training split directory.
        out: Run directory (checkpoints, log, weights).
        epochs: Number of epochs.
        batch: Images per step.
        lr: Peak AdamW learning rate.
        weight_decay: AdamW weight decay (conv/linear weights only).
        warmup_steps: Linear learning-rate warm-up steps.
        ema_decay: Decay of the weight moving average that gets saved.
        width: Model base width.
        num_protos: Number of mask prototypes (nano) or mask-feature channels ``E`` (solo-nano).
        imgsz: Input size (the split's images must have this size).
        seed: Seed of initialization, shuffling and augmentation.
        limit: Use only the first ``limit`` images (``None``: all).
        threads: Torch intra-op threads.
        max_steps: Stop after this many steps in total (``None``: run all epochs).
        minutes: Wall-time budget (``None``: none). The learning-rate schedule
            follows whichever is further along, steps or time, so a slow or
            busy machine still finishes the cosine decay in time.
    """

    data: str
    out: str
    epochs: int = 12
    batch: int = 16
    lr: float = 3e-3
    weight_decay: float = 5e-4
    warmup_steps: int = 200
    ema_decay: float = 0.998
    width: int = 32
    num_protos: int = 32
    imgsz: int = 320
    seed: int = 0
    limit: int | None = None
    threads: int = 2
    max_steps: int | None = None
    minutes: float | None = None


class ModelEMA:
    """Exponential moving average of a model's parameters and buffers.

    The decay ramps up from 0 (``decay * (1 - exp(-updates / 100))``) so the
    average is useful early in short runs.
    """

    def __init__(self, model: torch.nn.Module, decay: float, updates: int = 0):
        self.module = copy.deepcopy(model).eval()
        self.decay, self.updates = decay, updates
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        d = self.decay * (1.0 - math.exp(-self.updates / 100.0))
        src = model.state_dict()
        for k, v in self.module.state_dict().items():
            if v.dtype.is_floating_point:
                v.mul_(d).add_(src[k].detach(), alpha=1.0 - d)
            else:
                v.copy_(src[k])


@dataclass(frozen=True)
class Recipe:
    """What the training loop needs to know about one model (registry :data:`RECIPES`).

    Attributes:
        name: Model name (``OUT/<name>.safetensors``, the CLI's ``prog``).
        module: The ``python -m`` module recorded in the training command.
        build: ``TrainConfig -> model`` (untrained; ``model.cfg`` is its config).
        loss: ``model config -> loss``; the loss is called as ``loss(model(x), targets, (H, W))``.
        save: ``(model, path, metadata)`` writes the weights.
        mask_stride: ``model config -> `` stride of the training masks.
    """

    name: str
    module: str
    build: Callable[[TrainConfig], torch.nn.Module]
    loss: Callable[[object], Callable]
    save: Callable[[torch.nn.Module, Path, dict[str, str]], None]
    mask_stride: Callable[[object], int]


NANO = Recipe(
    name="edgeseg-nano",
    module="export.train",
    build=lambda cfg: build_nano(NanoConfig(width=cfg.width, num_protos=cfg.num_protos, imgsz=cfg.imgsz)),
    loss=lambda mcfg: NanoLoss(mcfg, LossConfig()),
    save=save_nano,
    mask_stride=lambda mcfg: mcfg.proto_stride,
)


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for p in model.parameters():
        (decay if p.ndim > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _progress(step: int, total: int, seconds: float, cfg: TrainConfig) -> float:
    """Fraction of training done: steps, or wall time when a budget is set."""
    p = step / max(1, total)
    if cfg.minutes is not None:
        p = max(p, seconds / (60.0 * cfg.minutes))
    return p


def _lr_at(step: int, progress: float, cfg: TrainConfig) -> float:
    """Linear warm-up over ``warmup_steps``, then cosine decay to 2% over ``progress``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    return cfg.lr * (0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))


def train(cfg: TrainConfig, resume: bool = False, trainset: TrainSet | None = None,
          command: str = "", recipe: Recipe = NANO) -> tuple[torch.nn.Module, list[dict]]:
    """Runs training.

    Args:
        cfg: Options.
        resume: Continue from ``cfg.out/last.pt``.
        trainset: Pre-loaded data (tests); loaded from ``cfg.data`` when None.
        command: Command line recorded in the saved weights' metadata.
        recipe: The model to train (edgeseg-nano by default).

    Returns:
        ``(EMA model, per-epoch log records)``.
    """
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    model = recipe.build(cfg)
    mcfg = model.cfg
    ts = trainset or load_trainset(cfg.data, cfg.imgsz, recipe.mask_stride(mcfg), cfg.limit)
    steps_per_epoch = max(1, len(ts) // cfg.batch)
    total = cfg.epochs * steps_per_epoch if cfg.max_steps is None else min(cfg.max_steps, cfg.epochs * steps_per_epoch)
    opt = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.99))
    ema = ModelEMA(model, cfg.ema_decay)
    loss_fn = recipe.loss(mcfg)
    start_epoch, step, history, seconds_before = 0, 0, [], 0.0
    ckpt = out / "last.pt"
    if resume and ckpt.is_file():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        ema.module.load_state_dict(state["ema"])
        ema.updates = int(state["ema_updates"])
        opt.load_state_dict(state["optimizer"])
        start_epoch, step = int(state["epoch"]) + 1, int(state["step"])
        history = json.loads(state["history"])
        seconds_before = float(history[-1]["seconds"]) if history else 0.0
        print(f"resumed from {ckpt} at epoch {start_epoch}, step {step}")
    t_start = time.time()
    def elapsed() -> float:
        return seconds_before + time.time() - t_start

    for epoch in range(start_epoch, cfg.epochs):
        if _progress(step, total, elapsed(), cfg) >= 1.0:
            break
        model.train()
        rng = np.random.default_rng([cfg.seed, epoch])
        order = rng.permutation(len(ts))
        sums: dict[str, float] = {}
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}", mininterval=5.0)
        done = 0
        for i in bar:
            progress = _progress(step, total, elapsed(), cfg)
            if progress >= 1.0:
                break
            for g in opt.param_groups:
                g["lr"] = _lr_at(step, progress, cfg)
            x, targets = make_batch(ts, order[i * cfg.batch:(i + 1) * cfg.batch], rng)
            loss, parts = loss_fn(model(x), targets, x.shape[-2:])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            opt.step()
            ema.update(model)
            step += 1
            done += 1
            parts["loss"] = loss.item()
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
            bar.set_postfix({k: f"{v / done:.3f}" for k, v in sums.items()}, refresh=False)
        record = {"epoch": epoch + 1, "step": step, "seconds": round(elapsed(), 1),
                  **{k: round(v / max(1, done), 4) for k, v in sums.items()}}
        history.append(record)
        with open(out / "log.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        torch.save({"model": model.state_dict(), "ema": ema.module.state_dict(), "ema_updates": ema.updates,
                    "optimizer": opt.state_dict(), "epoch": epoch, "step": step,
                    "history": json.dumps(history), "config": json.dumps(dataclasses.asdict(cfg))}, ckpt)
        recipe.save(ema.module, out / f"{recipe.name}.safetensors",
                    {"train_command": command, "train_history": json.dumps(history)})
    return ema.module, history


def main(argv: list[str] | None = None, recipe: Recipe = NANO) -> None:
    p = argparse.ArgumentParser(prog=f"python -m {recipe.module}",
                                description=f"Train {recipe.name} on a synthetic COCO split.")
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    defaults = TrainConfig(data="", out="")
    for name in fields:
        if name in ("data", "out"):
            continue
        default = getattr(defaults, name)
        kind = {int: int, float: float}.get(type(default), {"limit": int, "max_steps": int, "minutes": float}.get(name, str))
        p.add_argument(f"--{name.replace('_', '-')}", type=kind, default=default)
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    args = vars(p.parse_args(argv))
    resume = args.pop("resume")
    cfg = TrainConfig(**args)
    command = f"python -m {recipe.module} " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    t0 = time.time()
    _, history = train(cfg, resume=resume, command=command, recipe=recipe)
    print(json.dumps(history[-1]) if history else "nothing to do")
    print(f"wall time {time.time() - t0:.0f} s; weights: {Path(cfg.out) / f'{recipe.name}.safetensors'}")


if __name__ == "__main__":
    main()
