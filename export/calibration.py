"""Calibration images: a folder of real pictures -> model input tensors.

Quantizers need activations from representative inputs. The tensors come
from the runtime's own :class:`~edgeseg.preprocess.Preprocessor` (letterbox,
colour order, normalization) fed the model's :class:`~edgeseg.manifest.InputSpec`,
so what int8 ranges are fitted on is exactly what the board will feed.

Everything is read and checked when a :class:`CalibrationSet` is built, before
any long work: an empty folder, or one where no image decodes, is a
``ValueError`` naming the folder; single unreadable files are logged and
skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from edgeseg import sources
from edgeseg.manifest import InputSpec
from edgeseg.preprocess import Preprocessor

log = logging.getLogger(__name__)

#: Below this many images int8 ranges are fitted on too little data (a warning, not an error).
RECOMMENDED_INT8_IMAGES = 300


def list_images(folder: str | Path) -> list[Path]:
    """Image files under ``folder`` (recursively), sorted by path.

    Raises:
        ValueError: ``folder`` is not a directory or holds no image files.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"calibration/validation folder {root} does not exist or is not a directory")
    return sources.list_images([root], recursive=True)


class CalibrationSet:
    """Preprocessed calibration tensors, read once and kept in memory.

    Args:
        folder: Directory searched recursively for images.
        input_spec: The float32 model input the tensors are made for.
        limit: Use at most this many images (evenly spaced over the sorted
            list, so a folder of consecutive frames is still covered).

    Raises:
        ValueError: Empty folder, or no image in it could be decoded.
    """

    def __init__(self, folder: str | Path, input_spec: InputSpec, *, limit: int | None = None) -> None:
        from tqdm import tqdm

        if input_spec.dtype != "float32":
            raise ValueError(f"calibration tensors are made for a float32 input, got {input_spec.dtype}")
        self.folder = Path(folder)
        files = list_images(self.folder)
        if limit is not None and len(files) > limit:
            picks = np.linspace(0, len(files) - 1, limit).round().astype(int)
            files = [files[i] for i in sorted(set(picks.tolist()))]
        preprocess = Preprocessor(input_spec)
        self.input_spec = input_spec
        self.files: list[Path] = []
        self._tensors: list[np.ndarray] = []
        unreadable: list[str] = []
        for path in tqdm(files, desc="calibration images", unit="img", leave=False):
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                unreadable.append(path.name)
                continue
            tensor, _ = preprocess(image)
            self.files.append(path)
            self._tensors.append(tensor)
        if unreadable:
            log.warning("skipped %d unreadable calibration image(s): %s", len(unreadable), ", ".join(unreadable[:5]))
        if not self._tensors:
            raise ValueError(f"none of the {len(files)} image files under {self.folder} could be decoded")

    def __len__(self) -> int:
        return len(self._tensors)

    def __iter__(self) -> Iterator[np.ndarray]:
        """Yields ``(1, 3, H, W)`` float32 tensors (or ``(1, H, W, 3)`` for an NHWC spec)."""
        return iter(self._tensors)

    def head(self, n: int) -> list[np.ndarray]:
        """The first ``n`` tensors (for quick checks such as per-layer sensitivity)."""
        return self._tensors[:n]

    def warn_if_small(self, purpose: str) -> None:
        """Logs a warning when fewer than :data:`RECOMMENDED_INT8_IMAGES` images are used."""
        if len(self) < RECOMMENDED_INT8_IMAGES:
            log.warning(
                "only %d calibration images for %s; int8 ranges fitted on fewer than %d images "
                "may not cover what the board sees",
                len(self),
                purpose,
                RECOMMENDED_INT8_IMAGES,
            )
