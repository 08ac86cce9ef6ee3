"""Seeded synthetic tabletop scenes for robot grasping, with COCO annotations.

A scene is a textured table (wood, concrete or plain, with a lighting
gradient) and 1-15 objects of the classes in :data:`CLASS_NAMES`, painted back
to front with soft shadows, shading and texture. Later objects occlude earlier
ones; the annotations hold only what stays visible. Some objects are placed
touching or overlapping a neighbour of the same class and a similar colour
(the case that separates instance from semantic segmentation); those pairs are
listed per image under ``touching_pairs``. Sensor blur and noise come last.

Image ``i`` of a dataset with seed ``s`` depends only on ``(s, i)``, so the
output is the same for any number of worker processes.

CLI::

    python -m export.data.synthetic --out data/synth/val --num 500 --seed 2 --imgsz 320
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from export.data.coco import write_coco
from export.data.shapes import CLASS_NAMES, SHAPES, smooth_noise


@dataclass(frozen=True)
class SceneConfig:
    """Scene generation options.

    Attributes:
        height: Image height in pixels.
        width: Image width in pixels.
        min_objects: Fewest objects to attempt per scene.
        max_objects: Most objects to attempt per scene.
        min_size: Smallest object length as a fraction of ``min(height, width)``.
        max_size: Largest object length as a fraction of ``min(height, width)``.
        pair_prob: Chance that an object gets a touching same-class neighbour.
        min_visible: Smallest visible fraction of an object allowed after occlusion.
        min_area: Smallest visible area in pixels.
        place_tries: Placement attempts per object before it is dropped.
    """

    height: int = 320
    width: int = 320
    min_objects: int = 1
    max_objects: int = 15
    min_size: float = 0.1
    max_size: float = 0.36
    pair_prob: float = 0.3
    min_visible: float = 0.4
    min_area: int = 40
    place_tries: int = 12


@dataclass
class Scene:
    """One rendered scene.

    Attributes:
        image: ``(H, W, 3)`` uint8 BGR.
        masks: Visible-part masks, each ``(H, W)`` bool, in paint order.
        class_ids: Class id per mask (index into :data:`CLASS_NAMES`).
        touching_pairs: Index pairs into ``masks`` of touching same-class objects.
    """

    image: np.ndarray
    masks: list[np.ndarray] = field(default_factory=list)
    class_ids: list[int] = field(default_factory=list)
    touching_pairs: list[tuple[int, int]] = field(default_factory=list)


def _table(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Table top texture, ``(H, W, 3)`` float32 BGR in [0, 255]."""
    kind = rng.integers(3)
    if kind == 0:  # wood: warped stripes between two browns
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        t = rng.uniform(0, math.pi)
        warp = smooth_noise(rng, h, w, rng.uniform(40, 120)) * rng.uniform(4, 12)
        phase = (xs * math.cos(t) + ys * math.sin(t)) / rng.uniform(6, 18) + warp
        grain = (0.5 + 0.5 * np.sin(phase)) ** 2
        dark = np.array([rng.uniform(20, 60), rng.uniform(50, 90), rng.uniform(90, 140)], np.float32)
        light = dark + np.array([rng.uniform(30, 60), rng.uniform(40, 70), rng.uniform(40, 80)], np.float32)
        img = dark + grain[..., None] * (light - dark)
    else:
        base = rng.uniform(60, 210, 3).astype(np.float32)
        if kind == 1:  # grey-ish concrete / rubber mat
            base = base.mean() + 0.25 * (base - base.mean())
        tex = smooth_noise(rng, h, w, rng.uniform(3, 30)) - 0.5
        img = base + tex[..., None] * rng.uniform(10, 60)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.uniform(0, 2 * math.pi)
    light = 1.0 + rng.uniform(0.05, 0.3) * ((xs / w - 0.5) * math.cos(a) + (ys / h - 0.5) * math.sin(a))
    return img * light[..., None]


def _object_color(rng: np.random.Generator, class_id: int) -> np.ndarray:
    """Random BGR base colour (metallic greys for bolts and rings, sometimes)."""
    if class_id in (3, 4) and rng.random() < 0.6:
        g = rng.uniform(90, 220)
        return np.array([g, g, g * rng.uniform(0.9, 1.05)], np.float32)
    hsv = np.uint8([[[rng.integers(180), rng.integers(60, 256), rng.integers(70, 256)]]])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)


def _jitter_color(rng: np.random.Generator, color: np.ndarray) -> np.ndarray:
    return np.clip(color * rng.uniform(0.9, 1.1) + rng.normal(0, 6, 3), 0, 255).astype(np.float32)


class _Painter:
    """Paints objects onto one scene and keeps the visible-instance label map."""

    def __init__(self, rng: np.random.Generator, cfg: SceneConfig):
        self.rng, self.cfg = rng, cfg
        self.img = _table(rng, cfg.height, cfg.width)
        self.labels = np.full((cfg.height, cfg.width), -1, np.int32)
        self.full_areas: list[int] = []
        self.class_ids: list[int] = []
        self.pairs: list[tuple[int, int]] = []
        a = rng.uniform(0, 2 * math.pi)
        self.shadow_dir = (math.cos(a), math.sin(a))
        self.shadow_strength = rng.uniform(0.2, 0.5)

    def _fits(self, mask: np.ndarray) -> bool:
        """Whether painting ``mask`` keeps every earlier object visible enough."""
        area = int(np.count_nonzero(mask))
        if area < self.cfg.min_area:
            return False
        covered = self.labels[mask]
        covered = covered[covered >= 0]
        if covered.size == 0:
            return True
        lost = np.bincount(covered, minlength=len(self.full_areas))
        visible = np.bincount(self.labels[self.labels >= 0], minlength=len(self.full_areas)) - lost
        for k in np.flatnonzero(lost):
            if visible[k] < max(self.cfg.min_area, self.cfg.min_visible * self.full_areas[k]):
                return False
        return True

    def place(self, class_id: int, color: np.ndarray, size: float, centre: tuple[float, float] | None = None,
              touch: int | None = None) -> int:
        """Tries to paint one object; returns its index or -1 when it did not fit.

        Args:
            class_id: Class of the object.
            color: BGR base colour.
            size: Object length in pixels.
            centre: Fixed centre (one try); random centres when None.
            touch: Index of an earlier object to slide against until they touch
                (then a little further, so they may overlap).
        """
        rng, cfg = self.rng, self.cfg
        for _ in range(1 if centre is not None else cfg.place_tries):
            cx, cy = centre or (rng.uniform(0, cfg.width), rng.uniform(0, cfg.height))
            direction = (0.0, 0.0)
            if touch is not None:
                ys, xs = np.nonzero(self.labels == touch)
                ax, ay = xs.mean(), ys.mean()
                a = rng.uniform(0, 2 * math.pi)
                far = float(np.sqrt((xs - ax) ** 2 + (ys - ay) ** 2).max()) + 0.75 * size + 2.0
                cx, cy, direction = ax + far * math.cos(a), ay + far * math.sin(a), (-math.cos(a), -math.sin(a))
            angle = rng.uniform(0, 2 * math.pi)
            m8 = np.zeros((cfg.height, cfg.width), np.uint8)
            shade = SHAPES[class_id](rng, m8, cx, cy, size, angle)
            if touch is not None:
                m8, shade = self._slide(m8, shade, touch, direction, extra=rng.uniform(0.0, 0.2) * size)
            mask = m8 > 0
            if self._fits(mask):
                self._paint(mask, m8, shade, color, size)
                idx = len(self.full_areas)
                self.labels[mask] = idx
                self.full_areas.append(int(np.count_nonzero(mask)))
                self.class_ids.append(class_id)
                return idx
        return -1

    def _slide(self, m8, shade, target: int, direction: tuple[float, float], extra: float):
        """Moves a drawn object along ``direction`` until it touches object ``target``, then ``extra`` px more."""
        goal = cv2.dilate((self.labels == target).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        h, w = m8.shape
        limit = int(math.hypot(h, w))

        def shifted(t: float):
            mat = np.float32([[1, 0, round(t * direction[0])], [0, 1, round(t * direction[1])]])
            return cv2.warpAffine(m8, mat, (w, h), flags=cv2.INTER_NEAREST), mat

        t = 0.0
        while t < limit and not (shifted(t)[0][goal] > 0).any():
            t += 4.0
        while t > 0 and (shifted(t - 1.0)[0][goal] > 0).any():
            t -= 1.0
        mask, mat = shifted(t + extra)
        return mask, cv2.warpAffine(shade.astype(np.float32), mat, (w, h), flags=cv2.INTER_NEAREST)

    def _paint(self, mask, m8, shade, color, size) -> None:
        rng = self.rng
        off = max(1.5, 0.08 * size)
        dx, dy = self.shadow_dir
        shifted = cv2.warpAffine(m8, np.float32([[1, 0, dx * off], [0, 1, dy * off]]), m8.shape[::-1])
        shadow = cv2.GaussianBlur(shifted.astype(np.float32) / 255.0, (0, 0), max(1.0, 0.06 * size))
        self.img *= (1.0 - self.shadow_strength * shadow)[..., None]
        tex = 1.0 + (smooth_noise(rng, *mask.shape, rng.uniform(2, 12)) - 0.5) * rng.uniform(0.05, 0.35)
        alpha = cv2.GaussianBlur(m8.astype(np.float32) / 255.0, (0, 0), 0.6)
        alpha = np.where(mask, np.maximum(alpha, 0.5), np.minimum(alpha, 0.49))[..., None]
        obj = color * (shade * tex)[..., None]
        self.img = self.img * (1.0 - alpha) + obj * alpha


def render_scene(seed: int, index: int, cfg: SceneConfig = SceneConfig()) -> Scene:
    """Renders scene ``index`` of the dataset with ``seed`` (deterministic).

    Args:
        seed: Dataset seed.
        index: Image index within the dataset.
        cfg: Scene options.

    Returns:
        The rendered :class:`Scene` (BGR image, visible masks, class ids, pairs).
    """
    rng = np.random.default_rng([seed, index])
    painter = _Painter(rng, cfg)
    n = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    short = min(cfg.height, cfg.width)
    attempts = 0
    while attempts < n:
        attempts += 1
        cls = int(rng.integers(len(CLASS_NAMES)))
        size = short * rng.uniform(cfg.min_size, cfg.max_size)
        color = _object_color(rng, cls)
        idx = painter.place(cls, color, size)
        if idx >= 0 and attempts < n and rng.random() < cfg.pair_prob:
            attempts += 1
            idx2 = painter.place(cls, _jitter_color(rng, color), size * rng.uniform(0.8, 1.2), touch=idx)
            if idx2 >= 0:
                painter.pairs.append((idx, idx2))
    img = painter.img
    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.2))
    img = img * rng.uniform(0.8, 1.15) + rng.normal(0, rng.uniform(1, 6), img.shape).astype(np.float32)
    scene = Scene(image=np.clip(img, 0, 255).astype(np.uint8))
    keep = {}
    for k, cls in enumerate(painter.class_ids):
        mask = painter.labels == k
        if np.count_nonzero(mask) >= cfg.min_area:  # paranoia: _fits already guarantees it
            keep[k] = len(scene.masks)
            scene.masks.append(mask)
            scene.class_ids.append(cls)
    scene.touching_pairs = [(keep[a], keep[b]) for a, b in painter.pairs if a in keep and b in keep]
    return scene


def _render_one(args: tuple[int, int, SceneConfig]) -> Scene:
    return render_scene(*args)


def generate(out: str | Path, num: int, seed: int, cfg: SceneConfig = SceneConfig(), workers: int = 1,
             jpeg_quality: int = 92) -> Path:
    """Renders ``num`` scenes into ``out/images`` and writes ``out/annotations.json``.

    Args:
        out: Output directory (created).
        num: Number of images.
        seed: Dataset seed.
        cfg: Scene options.
        workers: Worker processes (1 renders in this process).
        jpeg_quality: JPEG quality of the written images.

    Returns:
        Path of the COCO annotation file.
    """
    from tqdm import tqdm

    jobs = [(seed, i, cfg) for i in range(num)]
    if workers > 1:
        # "spawn": forking a process that has imported JAX/torch threads can deadlock.
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            scenes = pool.imap(_render_one, jobs, chunksize=16)
            return write_coco(tqdm(scenes, total=num, desc="render"), out, CLASS_NAMES, jpeg_quality=jpeg_quality)
    scenes = (_render_one(j) for j in jobs)
    return write_coco(tqdm(scenes, total=num, desc="render"), out, CLASS_NAMES, jpeg_quality=jpeg_quality)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Render synthetic tabletop scenes with COCO annotations.")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--num", type=int, required=True, help="number of images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--imgsz", type=int, nargs="+", default=[320], help="size, or height width")
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args(argv)
    h, w = (args.imgsz * 2)[:2]
    t0 = time.time()
    path = generate(args.out, args.num, args.seed, SceneConfig(height=h, width=w), workers=args.workers)
    print(f"wrote {args.num} images and {path} in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
