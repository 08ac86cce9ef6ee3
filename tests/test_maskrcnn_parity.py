"""A torchvision Mask R-CNN exported by ``edgeseg export`` gives torchvision's own eval outputs.

``tests/fixtures/maskrcnn/`` holds the small reference model's weights and
``predictions.json``: what torchvision's ``model([image])`` returned for them on
images of several sizes and aspects (made by ``scripts/maskrcnn_fixtures.py``).
The weights go through the real ``edgeseg export`` command (``module:function``
+ ``--weights``); the bundle then runs through ``edgeseg.load`` and must match:
same count, labels and scores (1e-4), boxes within 0.01 px at the original
resolution, mask IoU >= 0.99 per instance against torchvision's pasted masks
thresholded at 0.5, on the C and the numpy paste. The same bundle then goes
through ``edgeseg run`` (JSON, RLE, overlays, grasps), ``bench``, ``package``
and ``install``.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import edgeseg

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
FIXTURES = Path(__file__).parent / "fixtures" / "maskrcnn"
PREDICTIONS = json.loads((FIXTURES / "predictions.json").read_text())
SCORE_TOL, BOX_TOL, MASK_IOU = 1e-4, 0.01, 0.99

pytest.importorskip("torchvision", reason="torchvision comes with the export extra (make test installs it)")


def edgeseg_cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeseg", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO)


def readme_commands(tmp: Path) -> list[list[str]]:
    """The README's Mask R-CNN commands, ``bundles/`` and ``out/`` moved under ``tmp``."""
    text = README.read_text()
    start = text.index("## Mask R-CNN (torchvision)")
    (block,) = re.findall(r"```bash\n(.*?)```", text[start:text.index("\n## ", start + 1)], flags=re.S)
    lines = block.replace("\\\n", " ").replace("bundles/", f"{tmp}/bundles/").replace("out/", f"{tmp}/out/")
    return [shlex.split(line)[1:] for line in lines.splitlines() if line.startswith("edgeseg ")]


@pytest.fixture(scope="module")
def roi_bundle(tmp_path_factory) -> Path:
    """The README's export command, run as written (bundles/ in a temporary directory)."""
    tmp = tmp_path_factory.mktemp("maskrcnn")
    export = readme_commands(tmp)[0]
    assert export[:2] == ["export", PREDICTIONS["model"]]
    proc = edgeseg_cli(*export)
    assert proc.returncode == 0, proc.stderr
    return tmp / "bundles" / "maskrcnn-tiny-onnx"


def _decode_rle(rle: dict) -> np.ndarray:
    from pycocotools import mask as mask_utils

    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def test_fixture_has_distinct_scores_and_nonempty_masks():
    """Parity on tied scores or empty masks would prove nothing (a trained model, not a random one)."""
    for name, ref in PREDICTIONS["images"].items():
        scores = np.asarray(ref["scores"])
        assert len(scores) >= 3, name
        # strictly decreasing and spread (an untrained model's scores are all ~1/C)
        assert np.diff(scores).max() < 0 and np.ptp(scores) > 0.01, f"{name}: tied scores"
        assert sum(_decode_rle(m).any() for m in ref["masks"]) >= len(scores) // 2, name
    assert len({tuple(r["shape"]) for r in PREDICTIONS["images"].values()}) >= 4


def test_manifest_carries_torchvisions_transform(roi_bundle):
    m = edgeseg.load(roi_bundle).manifest
    assert m.family == "roi" and m.input.shortest_edge is not None
    assert (m.input.shortest_edge.min_size, m.input.shortest_edge.max_size, m.input.shortest_edge.size_divisible) == (
        320, 320, 32)
    assert m.input.mean == pytest.approx((0.485, 0.456, 0.406)) and m.input.std == pytest.approx((0.229, 0.224, 0.225))
    assert m.output("masks").sampling == "torchvision" and not m.thresholds.nms


@pytest.mark.parametrize("path", ["c", "numpy"])
@pytest.mark.parametrize("image", sorted(PREDICTIONS["images"]))
def test_runtime_equals_torchvision(roi_bundle, image, path, monkeypatch):
    monkeypatch.setenv("EDGESEG_DECODER", path)
    ref = PREDICTIONS["images"][image]
    bgr = cv2.imread(str(REPO / image))
    with edgeseg.load(roi_bundle) as seg:
        assert seg.decoder.path == path
        got = seg(bgr)
        rles = seg(bgr, masks="rle").mask_rles
        out = np.zeros((seg.manifest.thresholds.max_detections, *bgr.shape[:2]), bool)
        frames = seg(bgr, masks="full", out=out).mask_frames
    n = len(ref["scores"])
    assert len(got) == n, f"{image}: {len(got)} detections, torchvision {n}"
    assert got.class_ids.tolist() == ref["labels"]
    np.testing.assert_allclose(got.scores, ref["scores"], atol=SCORE_TOL, rtol=0)
    np.testing.assert_allclose(got.boxes, np.asarray(ref["boxes"], np.float32), atol=BOX_TOL, rtol=0)
    ious = [_iou(got.masks[i].full(), _decode_rle(ref["masks"][i])) for i in range(n)]
    assert min(ious) >= MASK_IOU, f"{image}: worst mask IoU {min(ious):.4f} (instance {int(np.argmin(ious))})"
    for i in range(n):  # the other mask forms hold the same pixels
        assert np.array_equal(_decode_rle(rles[i]), got.masks[i].full()) and np.array_equal(frames[i], got.masks[i].full())


def test_fixture_is_torchvisions_output_today():
    """The committed predictions are what this torchvision gives for the committed weights."""
    import torch
    from safetensors.torch import load_file

    from export.models.maskrcnn_tiny import build

    model = build()
    model.load_state_dict(load_file(str(FIXTURES / PREDICTIONS["weights"])))
    model.eval()
    image = sorted(PREDICTIONS["images"])[0]
    bgr = cv2.imread(str(REPO / image))
    x = torch.from_numpy(np.ascontiguousarray(bgr[..., ::-1])).permute(2, 0, 1).float() / 255.0
    with torch.no_grad():
        out = model([x])[0]
    ref = PREDICTIONS["images"][image]
    np.testing.assert_allclose(out["scores"].numpy(), ref["scores"], atol=1e-5)
    np.testing.assert_allclose(out["boxes"].numpy(), ref["boxes"], atol=1e-3)


def test_readme_run_bench_package_install(roi_bundle, tmp_path):
    """The README's run, bench and package lines on the exported bundle; then the package installs."""
    tmp = roi_bundle.parent.parent
    run, bench, package = readme_commands(tmp)[1:]
    proc = edgeseg_cli(*run)
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp / "out" / "maskrcnn" / "scene_00.json").read_text())
    ref = PREDICTIONS["images"]["edgeseg/assets/samples/scene_00.jpg"]
    assert [i["class_id"] for i in data["instances"]] == ref["labels"]
    assert cv2.imread(str(tmp / "out" / "maskrcnn" / "scene_00.png")).shape == (480, 640, 3)
    proc = edgeseg_cli(*bench, "--out", str(tmp_path / "bench"), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    results = list((tmp_path / "bench").rglob("*.json"))
    assert results and "maskrcnn-tiny" in results[0].read_text()
    proc = edgeseg_cli(*package)
    assert proc.returncode == 0, proc.stderr
    from edgeseg.deploy.install import read_state

    root = tmp_path / "root"
    proc = edgeseg_cli("install", str(tmp / "out" / "maskrcnn.tar"), "--root", str(root), "--deps", "none")
    assert proc.returncode == 0, proc.stderr
    assert read_state(root).active.startswith("maskrcnn-tiny-")


@pytest.mark.parametrize("size", [(480, 640), (360, 640), (500, 300), (250, 333), (100, 90)])
def test_preprocessor_gives_torchvisions_resized_tensor(size):
    """``input.shortest_edge``: the runtime's tensor is torchvision's transform output before padding."""
    import torch
    from torchvision.models.detection.transform import GeneralizedRCNNTransform

    from edgeseg.manifest import InputSpec, ShortestEdge
    from edgeseg.preprocess import Preprocessor

    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    transform = GeneralizedRCNNTransform(320, 320, list(mean), list(std)).eval()
    spec = InputSpec(name="images", shape=(1, 3, 320, 320), mean=mean, std=std,
                     shortest_edge=ShortestEdge(min_size=320, max_size=320))
    bgr = np.random.default_rng(sum(size)).integers(0, 256, (*size, 3), dtype=np.uint8)
    x, info = Preprocessor(spec)(bgr)
    image = torch.from_numpy(np.ascontiguousarray(bgr[..., ::-1])).permute(2, 0, 1).float() / 255.0
    with torch.no_grad():
        images, _ = transform([image])
    h, w = images.image_sizes[0]
    assert x.shape == (1, 3, h, w) and info.input_size == (h, w)
    np.testing.assert_allclose(x[0], images.tensors[0, :, :h, :w].numpy(), atol=5e-5, rtol=0)  # float rounding of a few taps
    assert not images.tensors[0, :, h:, :].any() and not images.tensors[0, :, :, w:].any()  # the pad the graph adds


@pytest.mark.parametrize("fmt,reason", [("tflite-int8", "torch.export"), ("onnx-int8", "symbolic shape inference")])
def test_unconvertible_formats_are_refused_with_the_reason(tmp_path, fmt, reason):
    proc = edgeseg_cli("export", PREDICTIONS["model"], "--weights", str(FIXTURES / PREDICTIONS["weights"]),
                       "--formats", f"onnx,{fmt}", "--calib", "edgeseg/assets/samples", "--out", str(tmp_path))
    assert proc.returncode != 0
    assert f"format '{fmt}' is not available for this model" in proc.stderr and reason in proc.stderr
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]  # refused before any bundle (only export.log)


def test_bad_weights_and_class_names_are_clear_errors(tmp_path):
    bad = tmp_path / "bad.safetensors"
    from safetensors.numpy import save_file

    save_file({"nonsense": np.zeros(3, np.float32)}, str(bad))
    proc = edgeseg_cli("export", PREDICTIONS["model"], "--weights", str(bad), "--out", str(tmp_path / "o"))
    assert proc.returncode != 0 and "do not fit the model" in proc.stderr
    proc = edgeseg_cli("export", PREDICTIONS["model"], "--weights", str(FIXTURES / PREDICTIONS["weights"]),
                       "--classes", "a,b", "--out", str(tmp_path / "o"))
    assert proc.returncode != 0 and "so 6 names are needed, got 2" in proc.stderr
