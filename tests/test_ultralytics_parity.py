"""Imported Ultralytics models give Ultralytics' own ``predict`` results (committed fixtures).

``tests/fixtures/ultralytics/<model>/`` holds the files Ultralytics exported
and ``predictions*.json``: what Ultralytics' ``predict`` returned for those
very files on a few images (made by ``scripts/ultralytics_fixtures.py`` in a
throwaway venv; neither Ultralytics nor its torch enters this suite). Each
model file goes through ``edgeseg import`` and ``edgeseg run`` from the
command line, and the runtime's detections must match: same count and
classes, scores within 1e-4, boxes within 0.01 px, mask IoU >= 0.99 per
instance against the retina masks.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "ultralytics"
CASES = sorted((p.parent, p) for p in FIXTURES.glob("*/predictions*.json"))
SCORE_TOL, BOX_TOL, MASK_IOU = 1e-4, 0.01, 0.99


def _decode_rle(rle: dict) -> np.ndarray:
    from pycocotools import mask as mask_utils

    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def _match(expected: dict, got: list[dict]) -> list[tuple[int, int]]:
    """Pairs (expected index, got index): same class, nearest box, greedy in expected score order."""
    free = set(range(len(got)))
    pairs = []
    for i in np.argsort(-np.asarray(expected["scores"]), kind="stable"):
        cands = [j for j in free if got[j]["class_id"] == expected["classes"][i]]
        if not cands:
            break
        box = np.asarray(expected["boxes"][i])
        j = min(cands, key=lambda j: np.abs(np.asarray(got[j]["box_xyxy"]) - box).max())
        free.discard(j)
        pairs.append((int(i), j))
    return pairs


@pytest.fixture(scope="module", params=CASES, ids=[f"{d.name}/{p.stem}" for d, p in CASES])
def case(request, tmp_path_factory):
    """One fixture model imported and run on its images through the command line."""
    folder, pred_file = request.param
    pred = json.loads(pred_file.read_text())
    tmp = tmp_path_factory.mktemp(folder.name)
    exe = [sys.executable, "-m", "edgeseg"]
    bundle = tmp / "bundle"
    out = subprocess.run([*exe, "import", str(folder / pred["model"]), "--out", str(bundle)], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    images = tmp / "images"
    images.mkdir()
    for name, item in pred["images"].items():
        (images / name).symlink_to(REPO / item["path"])
    args = pred["predict_args"]
    cmd = [*exe, "run", str(images), "--bundle", str(bundle), "--out", str(tmp / "out"),
           "--score", str(args.get("conf", 0.25)), "--iou", str(args.get("iou", 0.7)),
           "--max-det", str(args.get("max_det", 300))]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    results = {name: json.loads((tmp / "out" / f"{Path(name).stem}.json").read_text()) for name in pred["images"]}
    return pred, bundle, results


def test_fixtures_are_committed():
    assert len(CASES) >= 3, f"expected Ultralytics fixtures under {FIXTURES}, found {CASES}"


def test_same_detections_as_ultralytics_predict(case):
    pred, _, results = case
    total = 0
    for name, expected in pred["images"].items():
        got = results[name]["instances"]
        assert len(got) == len(expected["scores"]), f"{name}: {len(got)} instances, Ultralytics {len(expected['scores'])}"
        pairs = _match(expected, got)
        assert len(pairs) == len(got), f"{name}: classes differ"
        for i, j in pairs:
            assert abs(got[j]["score"] - expected["scores"][i]) <= SCORE_TOL, (name, i, got[j]["score"])
            # run's JSON rounds boxes to 0.01 px: allow that rounding on top of the tolerance
            diff = np.abs(np.asarray(got[j]["box_xyxy"]) - np.asarray(expected["boxes"][i])).max()
            assert diff <= BOX_TOL + 0.005, (name, i, diff)
            iou = _iou(_decode_rle(got[j]["mask_rle"]), _decode_rle(expected["masks"][i]))
            assert iou >= MASK_IOU, (name, i, iou)
        total += len(got)
    assert total > 0, "the fixture has no detections to compare"


def test_scores_and_boxes_match_at_full_precision(case):
    """The Python API on the same bundle (no JSON rounding)."""
    import edgeseg

    pred, bundle, _ = case
    args = pred["predict_args"]
    seg = edgeseg.load(bundle)
    for expected in pred["images"].values():
        r = seg(cv2.imread(str(REPO / expected["path"])), score_threshold=args.get("conf", 0.25),
                iou_threshold=args.get("iou", 0.7), max_detections=args.get("max_det", 300))
        got = [{"class_id": int(c), "box_xyxy": b.tolist()} for c, b in zip(r.class_ids, r.boxes, strict=True)]
        for i, j in _match(expected, got):
            assert abs(float(r.scores[j]) - expected["scores"][i]) <= SCORE_TOL
            assert np.abs(r.boxes[j] - np.asarray(expected["boxes"][i])).max() <= BOX_TOL


def test_an_imported_bundle_verifies_benches_packages_and_installs_like_an_exported_one(tmp_path):
    """``edgeseg verify``, ``bench``, ``package`` and ``install`` on an imported YOLOv8n-seg bundle."""
    from deploy_support import write_config

    import edgeseg
    from edgeseg.bench import BenchOptions, bench_bundle
    from edgeseg.deploy.install import install_package
    from edgeseg.deploy.package import build_package, build_wheel, source_tree
    from edgeseg.imports import import_model

    bundle = import_model(FIXTURES / "yolov8n-seg" / "model.onnx", tmp_path / "yolov8n-seg")
    out = subprocess.run([sys.executable, "-m", "edgeseg", "verify", str(bundle.root)], capture_output=True, text=True)
    assert out.returncode == 0 and "proto/onnx/fp32" in out.stdout
    images = sorted((REPO / "edgeseg/assets/samples").glob("*.jpg"))[:2]
    run = bench_bundle(bundle.root, images, options=BenchOptions(frames=4, warmup=1, progress=False))
    assert run.stages["infer"].n == 4 and run.bundle.name == "model" and run.fps > 0
    wheel = build_wheel(source_tree(), tmp_path / "wheel")
    pkg = build_package(bundle.root, write_config(tmp_path / "board.yaml", source="camera:0"), tmp_path / "pkg.tar",
                        wheel=wheel)
    state = install_package(pkg.path, tmp_path / "root", deps="none")
    installed = tmp_path / "root/opt/edgeseg/active/bundle"
    assert state.active == pkg.id and edgeseg.load(installed).manifest.provenance["license"].startswith("AGPL-3.0")
    r = edgeseg.load(installed)(cv2.imread(str(images[0])))
    assert r.class_names == bundle.manifest.classes


def test_yolov5_layout_decodes_like_the_model_it_reexpresses(tmp_path):
    """YOLOv5-seg's documented layout (objectness column, 3 rows per anchor), made from the YOLOv8 fixture.

    The Ultralytics package cannot build YOLOv5-seg; ``tests/yolov5_layout.py``
    re-expresses the YOLOv8 model in that layout without changing what it
    detects, so Ultralytics' ``predict`` of the YOLOv8 file is the truth.
    """
    from yolov5_layout import make_yolov5_layout

    import edgeseg
    from edgeseg.imports import import_model

    folder = FIXTURES / "yolov8n-seg"
    pred = next(p for p in (json.loads(f.read_text()) for f in sorted(folder.glob("predictions*.json")))
                if p["model"].endswith(".onnx"))
    model = make_yolov5_layout(folder / pred["model"], tmp_path / "yolov5-layout.onnx", nc=len(pred["names"]))
    bundle = import_model(model, tmp_path / "bundle")
    m = bundle.manifest
    assert m.provenance["layout"] == "yolov5" and m.output("objectness").channels == (4, 5)
    assert (m.thresholds.iou, m.thresholds.max_detections) == (0.45, 1000)  # YOLOv5's predict defaults
    args, seg = pred["predict_args"], edgeseg.load(bundle)
    compared = 0
    for expected in pred["images"].values():
        r = seg(cv2.imread(str(REPO / expected["path"])), score_threshold=args.get("conf", 0.25),
                iou_threshold=args.get("iou", 0.7), max_detections=args.get("max_det", 300))
        assert len(r) == len(expected["scores"])
        got = [{"class_id": int(c), "box_xyxy": b.tolist()} for c, b in zip(r.class_ids, r.boxes, strict=True)]
        pairs = _match(expected, got)
        assert len(pairs) == len(r)
        for i, j in pairs:
            assert abs(float(r.scores[j]) - expected["scores"][i]) <= SCORE_TOL
            assert np.abs(r.boxes[j] - np.asarray(expected["boxes"][i])).max() <= BOX_TOL
            full = np.zeros(r.image_size, bool)
            assert _iou(r.masks[j].full(full), _decode_rle(expected["masks"][i])) >= MASK_IOU
        compared += len(r)
    assert compared > 0
