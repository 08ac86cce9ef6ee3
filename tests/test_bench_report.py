"""Bench reports (Markdown + PNG), the `edgeseg bench` command line, and mask mAP on a COCO set."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import edgeseg
from edgeseg.bench import BenchOptions, bench_bundles, load_results
from edgeseg.bench.report import _ms, markdown_table, write_report

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report_images")
    rng = np.random.default_rng(1)
    for k in range(2):
        img = rng.normal(110, 15, (300, 400, 3)).clip(0, 255).astype(np.uint8)
        cv2.ellipse(img, (200, 150), (80, 30), 20 * k, 0, 360, (20, 200, 60), -1)
        cv2.imwrite(str(out / f"img_{k}.png"), img)
    return out


@pytest.fixture(scope="module")
def two_runs(image_dir, tiny_bundle):
    """The shipped bundle and the tiny test bundle, side by side in one call."""
    options = BenchOptions(frames=8, warmup=1, progress=False)
    return bench_bundles([edgeseg.DEFAULT_BUNDLE, tiny_bundle], sorted(image_dir.iterdir()), options=options)


def test_side_by_side_runs_share_board_and_config(two_runs):
    a, b = two_runs
    assert a.board == b.board and a.config == b.config
    assert a.bundle.input_shape != b.bundle.input_shape  # 320 px vs the 160 px test model


def test_markdown_table_has_a_row_per_run_and_a_column_per_stage(two_runs):
    text = markdown_table(two_runs)
    header = next(line for line in text.splitlines() if line.startswith("| board"))
    for col in ("config", "read", "preprocess", "infer", "decode", "grasp", "serialize", "hooks", "end-to-end",
                "post / infer %", "FPS", "peak RSS MiB"):
        assert f" {col} " in header
    rows = [line for line in text.splitlines() if line.startswith("| ") and "edgeseg-nano" in line]
    assert len(rows) == 2
    for row, run in zip(rows, two_runs, strict=True):  # numbers come from the runs, in order
        for stage in ("infer", "end_to_end"):
            s = run.stages[stage]
            assert f" {_ms(s.p50_ms)} / {_ms(s.p99_ms)} " in row
    assert "2 images" in text and "onnxruntime" in text
    with pytest.raises(ValueError, match="no benchmark runs"):
        markdown_table([])


def test_report_writes_markdown_and_readable_plots(two_runs, tmp_path):
    written = write_report(two_runs, tmp_path)
    assert set(written) == {"report", "stages", "distribution"}
    text = written["report"].read_text()
    assert "![per-stage latency](stages.png)" in text
    for name in ("stages", "distribution"):
        img = cv2.imread(str(written[name]))
        assert img is not None and img.shape[0] >= 400 and img.shape[1] >= 800
        assert img.std() > 10  # something was drawn


def _run_cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeseg", *args], capture_output=True, text=True, timeout=180, cwd=cwd)


def test_cli_bench_then_report(image_dir, tmp_path):
    res = tmp_path / "results"
    proc = _run_cli("bench", "--device", "auto", "--images", str(image_dir), "--frames", "5", "--warmup", "1",
                    "--out", str(res), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "board: " in proc.stdout and "| board |" in proc.stdout
    (path,) = res.rglob("*.json")
    data = json.loads(path.read_text())
    assert path.parent.name == data["board"]["id"] and data["frames"] == 5
    assert data["config_path"].endswith(f"{data['board']['id']}.yaml")

    proc = _run_cli("bench", "report", str(res), "--out", str(tmp_path / "report"))
    assert proc.returncode == 0, proc.stderr
    assert {p.name for p in (tmp_path / "report").iterdir()} == {"report.md", "stages.png", "distribution.png"}
    assert load_results([res])[0].frames == 5


def test_cli_errors_are_one_line(tmp_path):
    proc = _run_cli("bench", "report")
    assert proc.returncode == 2 and "RESULTS" in proc.stderr and "Traceback" not in proc.stderr
    proc = _run_cli("bench", "--device", "no-such-board", "--images", str(tmp_path))
    assert proc.returncode == 2 and "no device config" in proc.stderr and "Traceback" not in proc.stderr


def test_mask_map_is_one_against_its_own_predictions_and_drops_when_boxes_move(image_dir, tmp_path):
    pytest.importorskip("pycocotools")
    from edgeseg.metrics import evaluate, predict_dataset

    seg = edgeseg.load()
    _, dets, _ = predict_dataset(seg, _coco_set(image_dir, tmp_path / "empty", []), progress=False)
    if not dets:
        pytest.skip("the bundled model detects nothing on these images")
    # Ground truth = the model's own boxes: box AP must be 1; moved boxes: AP collapses.
    same = _coco_set(image_dir, tmp_path / "same", dets)
    moved = _coco_set(image_dir, tmp_path / "moved", [{**d, "bbox": [d["bbox"][0] + 2 * d["bbox"][2] + 20,
                                                                      *d["bbox"][1:]]} for d in dets])
    good = evaluate(seg, same)
    bad = evaluate(seg, moved)
    assert good.images == 2 and good.box_map == pytest.approx(1.0) and good.box_map50 == pytest.approx(1.0)
    assert bad.box_map50 < 0.2
    assert 0.0 <= good.mask_map <= 1.0


def _coco_set(image_dir: Path, out: Path, dets: list[dict]) -> Path:
    """A COCO set over ``image_dir``'s images whose annotations are ``dets`` (boxes and RLE masks)."""
    out.mkdir()
    files = sorted(image_dir.iterdir())
    images = []
    for i, f in enumerate(files, start=1):
        h, w = cv2.imread(str(f)).shape[:2]
        images.append({"id": i, "file_name": str(f), "height": h, "width": w})
    anns = [{"id": k + 1, "image_id": d["image_id"], "category_id": d["category_id"], "bbox": d["bbox"],
             "area": d["bbox"][2] * d["bbox"][3], "segmentation": d["segmentation"], "iscrowd": 0}
            for k, d in enumerate(dets)]
    cats = [{"id": i + 1, "name": n} for i, n in enumerate(edgeseg.load_bundle(edgeseg.DEFAULT_BUNDLE).manifest.classes)]
    (out / "annotations.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return out


def test_rows_that_differ_by_config_tell_apart_and_map_is_in_points(two_runs):
    import dataclasses

    a = dataclasses.replace(two_runs[0], accuracy={"mask_map": 0.678})
    b = dataclasses.replace(a, config_name="rpi5", config_path="device_configs/rpi5.yaml")
    rows = [line for line in markdown_table([a, b]).splitlines() if line.startswith("| ") and "nano" in line]
    assert rows[0] != rows[1] and "| rpi5 (`device_configs/rpi5.yaml`) |" in rows[1]
    assert all(row.endswith("| 67.8 |") for row in rows)  # points, like the parity report's 67.8
