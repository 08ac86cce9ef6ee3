"""The README's runtime and grasp examples run as written (from the repo root)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks(section: str) -> list[str]:
    text = README.read_text()
    start = text.index(f"## {section}")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start:end], flags=re.S)


def _run_bash_block(heading: str, subs: dict[str, str], skip: str = "") -> tuple[list[str], str]:
    """Runs the ``edgeseg`` lines of the first bash block under ``heading`` (``subs`` replaces whole arguments).

    Returns:
        ``(subcommands run, stdout of the last one)``; each line must exit 0.
    """
    import shlex
    import subprocess
    import sys

    text = README.read_text()
    start = text.index(heading)
    block = re.search(r"```bash\n(.*?)```", text[start:], flags=re.S).group(1)
    lines = [ln.split("  #")[0].strip() for ln in block.splitlines()
             if ln.startswith("edgeseg ") and not (skip and skip in ln)]
    out = ""
    for line in lines:
        args = [subs.get(a, a) for a in shlex.split(line)[1:]]
        proc = subprocess.run([sys.executable, "-m", "edgeseg", *args], capture_output=True, text=True, timeout=300,
                              cwd=README.parent)
        assert proc.returncode == 0, (line, proc.stderr[-2000:])
        out = proc.stdout
    return [ln.split()[1] for ln in lines], out


@pytest.fixture()
def in_repo_root():
    old = os.getcwd()
    os.chdir(README.parent)
    yield
    os.chdir(old)


def test_using_the_runtime_example_runs(in_repo_root, capsys):
    (block,) = _python_blocks("Using the runtime")
    namespace: dict = {}
    exec(compile(block, "README:Using the runtime", "exec"), namespace)
    result = namespace["result"]
    assert len(result) > 0
    assert namespace["full"].shape == (len(result), *result.image_size)
    assert len(namespace["rles"]) == len(result)
    assert capsys.readouterr().out.count("\n") >= len(result)


def test_grasp_and_hook_example_runs(in_repo_root, tmp_path):
    from virtual_port import VirtualSerialPort

    import edgeseg

    image = cv2.imread("edgeseg/assets/samples/scene_00.jpg")
    result = edgeseg.load()(image)
    depth = np.full(image.shape[:2], 800, np.uint16)  # a flat table 0.8 m away, millimetres
    (block,) = _python_blocks("Grasps and robot hooks")
    with VirtualSerialPort(str(tmp_path / "ttyUSB0")) as port:
        code = block.replace("/dev/ttyUSB0", port.path)
        namespace = {"result": result, "image_bgr": image, "depth": depth, "T_base_cam": np.eye(4)}
        exec(compile(code, "README:Grasps and robot hooks", "exec"), namespace)
        grasps = namespace["grasps"]
        assert grasps and grasps[0].robot_pose is not None
        assert namespace["overlay"].shape == image.shape
        (msg,) = port.read_messages(1, timeout=5.0)
        first = msg.grasps[0]
        assert (first.class_id, first.instance) == (grasps[0].class_id, grasps[0].instance)
        assert first.robot is not None  # the hand-eye pose went over the wire


def test_robot_cell_example_runs(in_repo_root, capsys):
    (block,) = _python_blocks("Robot cell interfaces")
    exec(compile(block, "README:Robot cell interfaces", "exec"), {})
    words = capsys.readouterr().out.split()
    assert words[0] == "PICK" and words[1] == "1" and words[5] == "R"  # x86-cpu.yaml is calibrated: robot frame


def test_stream_pipeline_example_runs(in_repo_root, capsys):
    (block,) = _python_blocks("Command line")
    namespace: dict = {}
    exec(compile(block, "README:Command line", "exec"), namespace)
    summary = namespace["summary"]
    assert (summary.frames, summary.errors, summary.exit_code) == (6, {}, 0)
    assert capsys.readouterr().out.strip().endswith("6 {} 0")
    lines = Path("out/stream/results.jsonl").read_text().splitlines()
    assert len(lines) >= 6 and all(Path(f"out/stream/scene_0{i}.json").exists() for i in range(6))


def test_bring_your_own_model_commands_run(tmp_path):
    """README "Bring your own model": the import and run lines, on the committed YOLOv8n-seg export."""
    subs = {"best.onnx": str(README.parent / "tests/fixtures/ultralytics/yolov8n-seg/model.onnx"),
            "bundles/best": str(tmp_path / "best"), "images/": str(README.parent / "edgeseg/assets/samples"),
            "out/best": str(tmp_path / "out")}
    commands, _ = _run_bash_block("## Bring your own model", subs, skip="--int8")
    assert commands == ["import", "run"]
    assert len(list((tmp_path / "out").glob("scene_0*.json"))) == 6


def test_model_families_query_commands_run(tmp_path):
    """README "Model families": the Mask2Former import and run lines, on the committed transformers export."""
    subs = {"bundles/m2f": str(tmp_path / "m2f"), "out/m2f": str(tmp_path / "out")}
    commands, out = _run_bash_block("## Model families", subs)
    assert commands == ["import", "run", "info"]
    assert out.count("query") >= 1
    assert len(list((tmp_path / "out").glob("scene_0*.json"))) == 6


def test_kernel_family_example_and_manifest_block(capsys):
    """README "SOLOv2-style models": the decode example runs (one instance, at its object), the manifest block parses."""
    import json
    import re

    (block,) = _python_blocks("SOLOv2-style models (kernel family)")
    namespace: dict = {}
    exec(compile(block, "README:SOLOv2-style models", "exec"), namespace)
    result = namespace["result"]
    assert len(result) == 1 and result.class_names[result.class_ids[0]] == "part"
    # the object covers feature rows 4-11, columns 2-7: input pixels 16-48 x 8-32, original 80-400 x 80-320
    np.testing.assert_allclose(result.boxes[0], [80, 80, 320, 400], atol=5)
    assert capsys.readouterr().out.startswith("part")
    text = README.read_text()
    start = text.index("### SOLOv2-style models")
    data = json.loads(re.search(r"```json\n(.*?)```", text[start:], flags=re.S).group(1))
    from edgeseg.manifest import parse_manifest

    manifest = parse_manifest({**namespace["manifest"].to_dict(), **data, "classes": [f"c{i}" for i in range(80)]})
    assert manifest.kernel.grids == (40, 36, 24, 16, 12) and manifest.kernel.matrix_nms.kernel == "gaussian"


def test_model_families_rfdetr_commands_run(tmp_path):
    """README "RF-DETR-Seg from rfdetr": the import, run and info lines, on the committed rfdetr export."""
    subs = {"bundles/rfdetr": str(tmp_path / "rfdetr"), "out/rfdetr": str(tmp_path / "out")}
    commands, out = _run_bash_block("### RF-DETR-Seg from rfdetr", subs)
    assert commands == ["import", "run", "info"]
    assert "rfdetr" in out and "sigmoid" in out
    assert len(list((tmp_path / "out").glob("scene_0*.json"))) == 6
