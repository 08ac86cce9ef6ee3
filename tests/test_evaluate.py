"""COCO evaluation: ground truth scores 1.0, degraded predictions less, committed weights separate touching pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pycocotools")

from edgeseg.result import CroppedMask, Result  # noqa: E402
from export.data.coco import annotations_by_image, decode_annotation, load_coco  # noqa: E402
from export.data.shapes import CLASS_NAMES  # noqa: E402
from export.data.synthetic import SceneConfig, generate  # noqa: E402
from export.evaluate import coco_metrics, pair_separation, predict_dataset  # noqa: E402

WEIGHTS = Path(__file__).resolve().parents[1] / "export" / "weights" / "edgeseg-nano.safetensors"


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval_split")
    generate(out, num=6, seed=21, cfg=SceneConfig(height=160, width=192, pair_prob=0.6))
    return out


class GroundTruthPredictor:
    """Answers with the annotations of the image it is shown (matched by pixels)."""

    def __init__(self, data_dir: Path, keep_every: int = 1):
        import cv2

        coco, root = load_coco(data_dir)
        by_image = annotations_by_image(coco)
        self.lookup = []
        for img in coco["images"]:
            self.lookup.append((cv2.imread(str(root / img["file_name"])), by_image[img["id"]][::keep_every]))

    def __call__(self, image, *, score_threshold, max_detections):
        anns = next(a for im, a in self.lookup if np.array_equal(im, image))
        boxes, masks = [], []
        for ann in anns:
            x, y, w, h = ann["bbox"]
            boxes.append([x, y, x + w, y + h])
            full = decode_annotation(ann)
            masks.append(CroppedMask(x, y, np.ascontiguousarray(full[y:y + h, x:x + w]), full.shape))
        n = len(anns)
        return Result(np.asarray(boxes, np.float32).reshape(n, 4), np.linspace(1.0, 0.5, n, dtype=np.float32),
                      np.asarray([a["category_id"] - 1 for a in anns], np.int32), tuple(masks), CLASS_NAMES,
                      image.shape[:2])


def test_ground_truth_scores_perfectly(split):
    coco, dets, results = predict_dataset(GroundTruthPredictor(split), split)
    m = coco_metrics(coco, dets, verbose=False)
    assert (m.mask_map, m.mask_map50, m.box_map, m.box_map50) == pytest.approx((1.0, 1.0, 1.0, 1.0))
    assert m.images == 6
    pairs = pair_separation(coco, results)
    assert pairs.total > 0 and pairs.separated == pairs.total and pairs.merged == 0


def test_missing_instances_lower_the_score(split, capsys):
    coco, dets, results = predict_dataset(GroundTruthPredictor(split, keep_every=2), split)
    m = coco_metrics(coco, dets, verbose=True)
    assert "Average Precision" in capsys.readouterr().out
    assert 0.2 < m.mask_map < 0.8 and 0.2 < m.box_map < 0.8
    pairs = pair_separation(coco, results)
    assert pairs.separated < pairs.total


def test_a_mask_covering_both_objects_counts_as_merged(split):
    gt = GroundTruthPredictor(split)

    def semantic(image, **kwargs):
        """Union of every pair into its first object's instance: what semantic segmentation gives."""
        r = gt(image, **kwargs)
        full = r.full_masks()
        anns = next(a for im, a in gt.lookup if np.array_equal(im, image))
        ids = [a["id"] for a in anns]
        img = next(i for i in coco["images"] if i["id"] == anns[0]["image_id"]) if anns else None
        for a_id, b_id in (img or {}).get("touching_pairs", []):
            full[ids.index(a_id)] |= full[ids.index(b_id)]
        masks = tuple(CroppedMask(0, 0, m, r.image_size) for m in full)
        return Result(r.boxes, r.scores, r.class_ids, masks, r.class_names, r.image_size)

    coco, _ = load_coco(split)
    _, _, results = predict_dataset(semantic, split)
    pairs = pair_separation(coco, results)
    assert pairs.merged == pairs.total > 0


@pytest.mark.skipif(not WEIGHTS.is_file(), reason="trained weights not committed yet")
def test_committed_weights_separate_touching_same_class_objects(tmp_path):
    pytest.importorskip("torch")
    from export.evaluate import torch_predictor

    # Unseen seed, many same-class pairs pressed together (the case semantic segmentation cannot split).
    generate(tmp_path, num=8, seed=4242, cfg=SceneConfig(pair_prob=0.7))
    coco, dets, results = predict_dataset(torch_predictor(WEIGHTS), tmp_path)
    pairs = pair_separation(coco, results)
    assert pairs.total >= 8
    assert pairs.merged <= 0.1 * pairs.total, pairs
    assert pairs.separated >= 0.5 * pairs.total, pairs
    m = coco_metrics(coco, dets, verbose=False)
    assert m.mask_map50 >= 0.7 and m.mask_map >= 0.4, m
