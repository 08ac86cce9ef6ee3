"""Synthetic scene generator: determinism, annotation consistency, occlusion, same-class pairs."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

pytest.importorskip("pycocotools")

from export.data.coco import annotations_by_image, decode_annotation, load_coco  # noqa: E402
from export.data.shapes import CLASS_NAMES  # noqa: E402
from export.data.synthetic import SceneConfig, _Painter, generate, render_scene  # noqa: E402


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    generate(out, num=8, seed=3, cfg=SceneConfig(height=192, width=256))
    return out


def test_render_is_deterministic_per_seed_and_index():
    a, b = render_scene(7, 2), render_scene(7, 2)
    assert np.array_equal(a.image, b.image)
    assert a.class_ids == b.class_ids and a.touching_pairs == b.touching_pairs
    assert all(np.array_equal(x, y) for x, y in zip(a.masks, b.masks, strict=True))
    c = render_scene(7, 3)
    assert not np.array_equal(a.image, c.image)


def test_dataset_files_identical_for_any_worker_count(tmp_path):
    cfg = SceneConfig(height=96, width=96)
    generate(tmp_path / "one", num=3, seed=5, cfg=cfg, workers=1)
    generate(tmp_path / "two", num=3, seed=5, cfg=cfg, workers=2)
    assert (tmp_path / "one/annotations.json").read_text() == (tmp_path / "two/annotations.json").read_text()


def test_coco_readable_and_masks_boxes_areas_agree(dataset):
    from pycocotools.coco import COCO

    coco = COCO(str(dataset / "annotations.json"))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(CLASS_NAMES)
    data, _ = load_coco(dataset)
    by_image = annotations_by_image(data)
    n_total = 0
    for img in data["images"]:
        anns = by_image[img["id"]]
        image = cv2.imread(str(dataset / img["file_name"]))
        assert image.shape == (img["height"], img["width"], 3) == (192, 256, 3)
        union = np.zeros((img["height"], img["width"]), np.int32)
        for ann in anns:
            mask = decode_annotation(ann)
            assert np.array_equal(mask, coco.annToMask(coco.loadAnns(ann["id"])[0]).astype(bool))
            ys, xs = np.nonzero(mask)
            assert ann["area"] == mask.sum() >= SceneConfig().min_area
            assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
            assert ann["iscrowd"] == 0 and 1 <= ann["category_id"] <= len(CLASS_NAMES)
            union += mask
        # Visible parts only: instances never share a pixel.
        assert union.max() <= 1
        n_total += len(anns)
    assert n_total >= 8


def test_touching_pairs_are_same_class_and_adjacent(dataset):
    data, _ = load_coco(dataset)
    anns = {a["id"]: a for a in data["annotations"]}
    pairs = [p for img in data["images"] for p in img["touching_pairs"]]
    assert pairs, "8 scenes with pair_prob 0.3 should contain at least one touching pair"
    kernel = np.ones((5, 5), np.uint8)
    for a_id, b_id in pairs:
        a, b = anns[a_id], anns[b_id]
        assert a["image_id"] == b["image_id"] and a["category_id"] == b["category_id"]
        grown = cv2.dilate(decode_annotation(a).astype(np.uint8), kernel).astype(bool)
        assert (grown & decode_annotation(b)).any(), f"pair {a_id},{b_id} does not touch"


def test_occlusion_removes_covered_pixels_and_ring_holes_show_through():
    cfg = SceneConfig(height=128, width=128, min_visible=0.2)
    painter = _Painter(np.random.default_rng(0), cfg)
    color = np.array([200, 50, 50], np.float32)
    first = painter.place(1, color, 60.0, (50.0, 64.0))  # a can
    second = painter.place(4, color, 60.0, (80.0, 64.0))  # a ring on top, overlapping
    assert (first, second) == (0, 1)
    can = painter.labels == 0
    ring = painter.labels == 1
    assert can.sum() < painter.full_areas[0]  # partly covered
    assert not (can & ring).any()
    # The ring's hole at its centre shows the table (or the can), not the ring.
    assert not ring[64, 80]
    # An object that would hide most of an earlier one is refused.
    assert painter.place(1, color, 70.0, (50.0, 64.0)) == -1


def test_cli_writes_dataset(tmp_path):
    from export.data.synthetic import main

    main(["--out", str(tmp_path), "--num", "2", "--seed", "1", "--imgsz", "64", "96"])
    data = json.loads((tmp_path / "annotations.json").read_text())
    assert [(i["height"], i["width"]) for i in data["images"]] == [(64, 96)] * 2
    assert math.isclose(len(data["categories"]), len(CLASS_NAMES))
