"""Prompt bundles from the command line and detector -> SAM refinement (real subprocesses, the SAM fixture)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import edgeseg
from edgeseg.grasp import GripperSpec, plan_grasps
from edgeseg.imports import ImportOptions, import_model
from edgeseg.prompt import load_prompt

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "tests" / "fixtures" / "sam"
SCENE = ROOT / "edgeseg" / "assets" / "samples" / "scene_00.jpg"


def edgeseg_cli(*args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeseg", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)


@pytest.fixture(scope="module")
def sam_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sam") / "sam-tiny"
    proc = edgeseg_cli("import", str(FIX / "encoder.onnx"), "--decoder", str(FIX / "decoder_batched.onnx"),
                       "--name", "sam-tiny", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "sam-tiny prompt/onnx/fp32" in proc.stdout
    return out


def _schema_validator():
    jsonschema = pytest.importorskip("jsonschema")
    return jsonschema.Draft202012Validator(json.loads((ROOT / "docs" / "frame.schema.json").read_text()))


def test_prompt_command_writes_one_instance_per_prompt(sam_dir, tmp_path):
    out = tmp_path / "o"
    proc = edgeseg_cli("prompt", str(SCENE), "--bundle", str(sam_dir), "--box", "100,80,300,260",
                       "--box", "350,200,600,460", "--point", "420,240", "--point", "10,10,0", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    record = json.loads((out / "scene_00.json").read_text())
    _schema_validator().validate(record)
    assert len(record["instances"]) == 3 and cv2.imread(str(out / "scene_00.png")).shape == (480, 640, 3)
    assert "scene_00: 3 instances (3 object)" in proc.stdout


def test_prompt_command_refuses_bad_prompts_before_loading(sam_dir, tmp_path):
    proc = edgeseg_cli("prompt", str(SCENE), "--bundle", str(sam_dir), "--box", "1,2,3", "--out", str(tmp_path))
    assert proc.returncode == 2 and "--box must be 4 comma-separated numbers" in proc.stderr
    proc = edgeseg_cli("prompt", str(SCENE), "--bundle", str(sam_dir), "--out", str(tmp_path))
    assert proc.returncode != 0 and "give at least one --box" in proc.stderr


def test_run_refine_replaces_the_detector_masks(sam_dir, tmp_path):
    plain, refined = tmp_path / "plain", tmp_path / "refined"
    assert edgeseg_cli("run", str(SCENE), "--device-config", "none", "--out", str(plain)).returncode == 0
    proc = edgeseg_cli("run", str(SCENE), "--device-config", "none", "--refine", str(sam_dir), "--grasps",
                       "--out", str(refined))
    assert proc.returncode == 0, proc.stderr
    assert "refining masks with sam-tiny" in proc.stderr
    a = json.loads((plain / "scene_00.json").read_text())["instances"]
    b = json.loads((refined / "scene_00.json").read_text())
    _schema_validator().validate(b)
    assert [(i["class_name"], i["box_xyxy"]) for i in a] == [(i["class_name"], i["box_xyxy"]) for i in b["instances"]]
    assert [i["mask_rle"] for i in a] != [i["mask_rle"] for i in b["instances"]]
    assert len(b["grasps"]) > 0


def test_device_config_names_the_refiner(sam_dir, tmp_path):
    config = tmp_path / "board.yaml"
    config.write_text(f"name: test\nrefine: {{bundle: {sam_dir}}}\n")
    proc = edgeseg_cli("run", str(SCENE), "--device-config", str(config), "--out", str(tmp_path / "o"))
    assert proc.returncode == 0 and "refining masks with sam-tiny" in proc.stderr
    proc = edgeseg_cli("run", str(SCENE), "--device-config", str(config), "--refine", "none", "--out", str(tmp_path / "p"))
    assert proc.returncode == 0 and "refining" not in proc.stderr


def test_run_on_a_prompt_bundle_says_how_to_use_it(sam_dir, tmp_path):
    proc = edgeseg_cli("run", str(SCENE), "--bundle", str(sam_dir), "--device-config", "none", "--out", str(tmp_path))
    assert proc.returncode != 0 and "edgeseg prompt IMAGE --box" in proc.stderr


def test_refine_api_keeps_detections_and_feeds_grasps(tmp_path):
    bundle = import_model(FIX / "encoder.onnx", tmp_path / "b", options=ImportOptions(decoder=str(FIX / "decoder.onnx")))
    image = cv2.imread(str(SCENE))
    det = edgeseg.load()(image)
    with load_prompt(bundle) as sam:
        refined = sam.refine(image, det)
    assert len(det) > 0 and np.array_equal(refined.boxes, det.boxes) and np.array_equal(refined.class_ids, det.class_ids)
    assert any(not np.array_equal(a.full(), b.full()) for a, b in zip(refined.masks, det.masks, strict=True))
    grasps = plan_grasps(refined, GripperSpec(max_opening=200, finger_width=8, finger_thickness=4, finger_depth=10,
                                              margin=2, unit="px"))
    assert len(grasps) > 0


def test_readme_promptable_section_runs(tmp_path, monkeypatch):
    """README "Promptable models": the bash lines as written (bundles/, out/ under a temp dir), then the Python block."""
    import re
    import shlex

    text = (ROOT / "README.md").read_text()
    start = text.index("## Promptable models")
    section = text[start : text.index("\n## ", start + 1)]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S).group(1)
    lines = [ln for ln in block.splitlines() if ln.startswith("edgeseg ")]
    assert [ln.split()[1] for ln in lines] == ["import", "prompt", "run"]
    for ln in lines:
        args = [a.replace("bundles/", f"{tmp_path}/bundles/").replace("out/", f"{tmp_path}/out/") for a in shlex.split(ln)[1:]]
        proc = edgeseg_cli(*args)
        assert proc.returncode == 0, (ln, proc.stderr[-2000:])
    assert len(list((tmp_path / "out" / "refined").glob("scene_0*.json"))) == 6
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    monkeypatch.chdir(ROOT)
    namespace: dict = {}
    exec(compile(code.replace('"bundles/', f'"{tmp_path}/bundles/'), "README:Promptable models", "exec"), namespace)
    assert (len(namespace["boxed"]), len(namespace["clicked"])) == (2, 1)
    assert namespace["clicked"].timings.preprocess_ms == 0  # the frame's embeddings came from the cache


def test_lowres_only_import_cuts_the_full_size_output_and_keeps_the_answers(tmp_path):
    out = tmp_path / "low"
    proc = edgeseg_cli("import", str(FIX / "encoder.onnx"), "--decoder", str(FIX / "decoder_batched.onnx"),
                       "--lowres-only", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    predictions = np.load(FIX / "predictions.npz")
    record = json.loads((FIX / "prompts.json").read_text())[0]
    with load_prompt(out) as low, load_prompt(import_model(
            FIX / "encoder.onnx", tmp_path / "full", options=ImportOptions(decoder=str(FIX / "decoder_batched.onnx")))) as full:
        assert "masks" not in low.outputs and low.spec.inputs.orig_im_size is None and "masks" in full.outputs
        image = cv2.imread(str(FIX / "images" / record["image"]))
        a, _, _ = low.prompt_logits(image, boxes=[record["box"]])
        np.testing.assert_allclose(a[0, :1], predictions[record["key"] + "_low"], atol=1e-4, rtol=0)
    proc = edgeseg_cli("import", str(FIX / "encoder.onnx"), "--lowres-only", "--out", str(tmp_path / "x"))
    assert proc.returncode != 0 and "pass --decoder" in proc.stderr
