"""README "Exporting your own model": the user-model file and the Python example run as written.

Paths and sizes are swapped for small ones (the README's use the 500-image
validation split and 320 px), nothing else.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

REPO = Path(__file__).resolve().parents[1]
SECTION = "## Exporting your own model"


def _blocks() -> list[str]:
    text = (REPO / "README.md").read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start:end], flags=re.S)


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    from export.data.synthetic import SceneConfig, generate

    root = tmp_path_factory.mktemp("readme")
    generate(root / "calib", 4, seed=41, cfg=SceneConfig(height=64, width=96))
    generate(root / "val", 3, seed=42, cfg=SceneConfig(height=64, width=96))
    return root


def test_user_model_file_and_its_command(small_data, tmp_path):
    api, user = _blocks()
    (tmp_path / "my_model.py").write_text(user)
    command = re.search(r"->\s+(edgeseg export .*)\n", user).group(1).split()
    (tmp_path / "my_images").symlink_to(small_data / "calib" / "images")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    script = Path(sys.executable).with_name("edgeseg")
    proc = subprocess.run([str(script), *command[1:], "--imgsz", "64", "--latency-runs", "2"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "bundles" / "my-seg-onnx" / "manifest.json").is_file()
    assert (tmp_path / "bundles" / "my-seg-tflite-int8" / "model.tflite").is_file()
    assert "| tflite-int8 |" in (tmp_path / "bundles" / "parity.md").read_text()


def test_python_example(small_data, tmp_path, monkeypatch):
    api, _ = _blocks()
    code = (api.replace('"bundles/"', repr(str(tmp_path / "bundles")))
               .replace('"data/synth/train/images"', repr(str(small_data / "calib" / "images")))
               .replace('"data/synth/val"', repr(str(small_data / "val")))
               .replace("imgsz=320", "imgsz=64")
               .replace("ExportOptions(gate=1.0)", "ExportOptions(gate=1.0, latency_runs=2)"))
    monkeypatch.chdir(REPO)
    old = torch.get_num_threads()
    namespace: dict = {}
    try:
        exec(compile(code, "README:Exporting your own model", "exec"), namespace)
    finally:
        torch.set_num_threads(old)
    report = namespace["report"]
    assert [f.name for f in report.formats] == ["onnx", "tflite-int8"]
    assert report.pytorch is not None and all(f.passed for f in report.formats)
    assert "Made by: the Python API (`export.export_bundles`)." in report.to_markdown()  # not an empty "Made by:"


def test_committed_parity_report_meets_the_targets_and_readme_quotes_it():
    """The edgeseg-nano parity report in benchmarks/ holds the export targets, and README shows its numbers.

    fp32 formats within 0.3 mask-mAP points of PyTorch, int8 ones within 1.0
    and at most 30% of their family's fp32 file; re-running the export with a
    regression and committing the report fails here.
    """
    import json

    report = json.loads((REPO / "benchmarks/results/parity/parity.json").read_text())
    assert report["imgsz"] == [320, 320] and report["val"] == "data/synth/val"
    formats = {f["name"]: f for f in report["formats"]}
    assert set(formats) == {"onnx", "onnx-fp16", "onnx-int8", "tflite", "tflite-fp16", "tflite-int8"}
    for name in ("onnx", "tflite"):
        assert abs(formats[name]["mask_drop"]) <= 0.3, name
    for name in ("onnx-int8", "tflite-int8"):
        assert formats[name]["mask_drop"] <= 1.0 and formats[name]["size_ratio"] <= 0.30, name

    readme = (REPO / "README.md").read_text()
    section = readme[readme.index(SECTION):]
    for name, f in formats.items():
        share = "100" if f["size_ratio"] == 1 else f"{100 * f['size_ratio']:.1f}"
        row = f"| {name} | {f['precision']} | {f['size_bytes'] / 1e6:.2f} | {share}% | {f['accuracy']['mask_map']:.1f} |"
        assert row in section, row
