"""Trains solo-nano (:mod:`export.models.solo_nano`) with edgeseg-nano's training loop.

Same options, data, schedule, EMA, checkpoints and metadata as
:mod:`export.train` (``--num-protos`` sets the mask-feature channels ``E``);
only the model, the loss (:mod:`export.solo_loss`) and the weights file
(``OUT/solo-nano.safetensors``) differ. Example (the command of the committed
weights is in their metadata and in README)::

    python -m export.train_solo --data data/synth/train --out runs/solo --minutes 70 --threads 1
"""

from __future__ import annotations

from export.models.solo_nano import SoloConfig, build_solo, save_solo
from export.solo_loss import SoloLoss
from export.train import Recipe
from export.train import main as train_main

SOLO = Recipe(
    name="solo-nano",
    module="export.train_solo",
    build=lambda cfg: build_solo(SoloConfig(width=cfg.width, mask_channels=cfg.num_protos, imgsz=cfg.imgsz)),
    loss=SoloLoss,
    save=save_solo,
    mask_stride=lambda mcfg: mcfg.mask_stride,
)


def main(argv: list[str] | None = None) -> None:
    """CLI: ``python -m export.train_solo --help``."""
    train_main(argv, SOLO)


if __name__ == "__main__":
    main()
