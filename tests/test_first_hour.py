"""Issue 19: what a new user trips over in the first hour, each checked as the user meets it (real subprocesses)."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "edgeseg" / "assets" / "samples"


def edgeseg(*args: str, timeout: int = 180, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeseg", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd)


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_export_help_prints_the_export_options(flag):
    proc = edgeseg("export", flag)
    assert proc.returncode == 0, proc.stderr
    assert "usage: edgeseg export" in proc.stdout and "--formats" in proc.stdout and "--calib" in proc.stdout


def test_export_takes_options_before_the_model(tmp_path):
    missing = tmp_path / "nope.safetensors"
    proc = edgeseg("export", "--formats", "onnx", "--out", str(tmp_path / "b"), str(missing))
    assert "unrecognized arguments" not in proc.stderr
    assert proc.returncode == 2 and "nope.safetensors" in proc.stderr, proc.stderr


def test_bench_report_is_a_subcommand_with_its_own_help(tmp_path):
    proc = edgeseg("bench", "report", "--help")
    assert proc.returncode == 0 and "usage: edgeseg bench report" in proc.stdout and "--frames" not in proc.stdout
    assert "bench report" in edgeseg("--help").stdout
    proc = edgeseg("bench", "report", "--out", str(tmp_path / "r"), str(tmp_path / "none"))
    assert "unrecognized arguments" not in proc.stderr and proc.returncode == 2


@pytest.mark.parametrize(("flag", "value", "says"), [("--score", "5", "--score must be in [0, 1]"),
                                                     ("--iou", "2", "--iou must be in (0, 1]"),
                                                     ("--max-det", "0", "--max-det must be >= 1")])
def test_bad_thresholds_fail_once_before_the_model_loads(flag, value, says, tmp_path):
    proc = edgeseg("run", str(SAMPLES), flag, value, "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and says in proc.stderr, proc.stderr
    assert proc.stderr.count("error") == 1 and "onnxruntime" not in proc.stderr  # no model, no per-frame errors
    assert not (tmp_path / "o").exists()


def test_run_json_has_grasps_and_matches_the_published_schema(tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((ROOT / "docs" / "frame.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    out = tmp_path / "out"
    proc = edgeseg("run", str(SAMPLES), "--device-config", str(ROOT / "device_configs" / "x86-cpu.yaml"),
                   "--grasps", "--track", "--count-line", "320,0,320,480", "--out", str(out),
                   "--jsonl", str(tmp_path / "r.jsonl"))
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    records += [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert len(records) == 12
    for rec in records:
        validator.validate(rec)
        assert [g["rank"] for g in rec["grasps"]] == list(range(len(rec["grasps"])))
        assert all(0 <= g["instance"] < len(rec["instances"]) for g in rec["grasps"])
    assert any(g.get("robot_pose") for rec in records for g in rec["grasps"])  # calibrated config: robot frame
    # Without planning there is no "grasps" key (and the record still validates).
    plain = edgeseg("run", str(SAMPLES / "scene_00.jpg"), "--out", str(tmp_path / "plain"))
    rec = json.loads((tmp_path / "plain" / "scene_00.json").read_text())
    assert plain.returncode == 0 and "grasps" not in rec
    validator.validate(rec)
    bad = dict(rec, instances=[dict(rec["instances"][0], score="high")])
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(bad)


def test_run_uses_the_detected_board_config_and_says_so(tmp_path):
    proc = edgeseg("run", str(SAMPLES / "scene_00.jpg"), "--hook", "jsonl:-", cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    info = edgeseg("info", cwd=ROOT).stdout
    config = next(line.split()[-1] for line in info.splitlines() if line.startswith("board config"))
    assert f"device config {config} (detected board" in proc.stderr
    assert "no scale" not in proc.stderr  # the board's calibration gives the metric gripper its scale
    line = json.loads(proc.stdout.splitlines()[0])
    assert line["type"] == "grasps" and any("robot" in g for g in line["grasps"])
    none = edgeseg("run", str(SAMPLES / "scene_00.jpg"), "--device-config", "none", cwd=ROOT)
    assert none.returncode == 0 and "detected board" not in none.stderr


def test_pack_makes_a_loadable_edgeseg_file_and_a_plain_tar_is_refused_with_the_way(tmp_path):
    import edgeseg as es

    out = tmp_path / "nano.edgeseg"
    proc = edgeseg("pack", str(es.DEFAULT_BUNDLE), str(out))
    assert proc.returncode == 0, proc.stderr
    assert es.load_bundle(out).manifest == es.load_bundle(es.DEFAULT_BUNDLE).manifest
    run = edgeseg("run", str(SAMPLES / "scene_00.jpg"), "--bundle", str(out))
    assert run.returncode == 0 and "scene_00: " in run.stdout
    hand = tmp_path / "hand.edgeseg"
    subprocess.run(["tar", "-cf", str(hand), "-C", str(es.DEFAULT_BUNDLE), "."], check=True)
    refused = edgeseg("run", str(SAMPLES / "scene_00.jpg"), "--bundle", str(hand))
    assert refused.returncode == 2 and "edgeseg pack BUNDLE_DIR OUT.edgeseg" in refused.stderr
    with tarfile.open(out) as tar:
        assert sorted(tar.getnames()) == sorted(["manifest.json", *es.load_bundle(out).manifest.files])


def test_bench_checks_every_bundle_before_benchmarking_any(tmp_path):
    import edgeseg as es

    res = tmp_path / "results"
    proc = edgeseg("bench", str(es.DEFAULT_BUNDLE), str(tmp_path / "typo-bundle"), "--frames", "2", "--warmup", "0",
                   "--out", str(res), "--no-progress")
    assert proc.returncode == 2 and "typo-bundle" in proc.stderr
    assert not res.exists() and "| board |" not in proc.stdout  # nothing was benchmarked


def test_repo_hygiene_licence_and_bundles_folder():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"]  # SPDX: no setuptools deprecation notice
    ignored = subprocess.run(["git", "check-ignore", "-q", "bundles/x/manifest.json"], cwd=ROOT)
    assert ignored.returncode == 0, "bundles/ must be ignored by git"
    readme = (ROOT / "README.md").read_text()
    assert "out/bundles" not in readme and "out/export/" not in readme  # one place for bundles: bundles/
    assert ".venv/bin/edgeseg" in readme.split("## Using the runtime")[0]


def test_help_texts_have_no_rst_markup():
    for cmd in (["--help"], ["export", "--help"], ["run", "--help"], ["bench", "--help"], ["pack", "--help"], ["bench", "report", "--help"]):
        proc = edgeseg(*cmd)
        assert proc.returncode == 0 and "``" not in proc.stdout, (cmd, proc.stdout)


def test_one_image_listing_for_run_bench_and_export(tmp_path):
    import cv2
    import numpy as np

    from edgeseg.sources import list_images

    (tmp_path / "sub").mkdir()
    (tmp_path / "empty").mkdir()
    for name in ("b.JPG", "a.png", "sub/c.webp"):
        cv2.imwrite(str(tmp_path / name), np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in list_images([tmp_path])] == ["a.png", "b.JPG"]
    assert [p.name for p in list_images([tmp_path], recursive=True)] == ["a.png", "b.JPG", "c.webp"]
    assert [p.name for p in list_images([tmp_path / "sub", tmp_path / "a.png"], limit=1)] == ["c.webp"]
    with pytest.raises(ValueError, match=r"no images \(\.jpg"):
        list_images([tmp_path / "empty"])
    with pytest.raises(ValueError, match="does not exist"):
        list_images([tmp_path / "missing"])


def test_hashing_and_tar_rules_live_in_one_module():
    """sha256 and tar-member checks are edgeseg.filecheck's; nobody else hashes files or vets members."""
    offenders = []
    for path in [*(ROOT / "edgeseg").rglob("*.py"), *(ROOT / "export").rglob("*.py")]:
        text = path.read_text()
        if path.name != "filecheck.py" and ("hashlib.sha256(" in text or ".getmembers()" in text
                                            and "check_members" not in text):
            offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, offenders


def test_overlays_scale_with_the_image_keep_tags_apart_and_inside_and_carry_a_legend():
    import numpy as np
    from synthetic_masks import rectangle_mask, result_from_masks

    from edgeseg.grasp import GripperSpec, draw_grasps, plan_grasps
    from edgeseg.grasp.draw import BAD, GOOD
    from edgeseg.overlay import Labels, MaskAnnotator, Style

    assert Style.for_shape((480, 640)).line == 2 and Style.for_shape((3000, 4000)).line == 12
    size = (3000, 4000)
    # Crowded objects side by side (tags would collide), one at the right edge (tags would be clipped).
    centers = [(600 + 260 * k, 1500) for k in range(5)] + [(3960, 800)]
    masks = [rectangle_mask(size, c, 700, 200, 1.5) for c in centers]
    result = result_from_masks(masks, class_names=("bolt",))
    image = np.full((*size, 3), 90, np.uint8)
    labels = Labels(image.shape)
    out = MaskAnnotator().annotate(image, result, labels)
    gripper = GripperSpec(max_opening=250, finger_width=40, finger_thickness=20, finger_depth=40, margin=10, unit="px")
    grasps = plan_grasps(result, gripper)
    out = draw_grasps(out, grasps, labels=labels, copy=False)
    tags = labels.placed
    assert len(tags) == 2 * len(masks) + 1  # class tags, grasp tags, the legend
    for x1, y1, x2, y2 in tags:
        assert 0 <= x1 < x2 <= size[1] and 0 <= y1 < y2 <= size[0]  # nothing clipped at an edge
    for i, a in enumerate(tags):
        for b in tags[i + 1:]:
            assert min(a[2], b[2]) <= max(a[0], b[0]) or min(a[3], b[3]) <= max(a[1], b[1]), (a, b)
    tag_h = tags[0][3] - tags[0][1]
    assert tag_h >= 12 * 5  # text grows with the image (about 6x the 640 px tag height)
    # The legend (top right) shows a swatch for each grasp colour used.
    x1, y1, x2, y2 = tags[-1]
    panel = out[y1:y2, x1:x2].reshape(-1, 3)
    used = {GOOD if g.clear and g.fits else BAD for g in grasps}
    for color in used:
        assert (panel == color).all(axis=1).any(), color


def test_export_keeps_converter_chatter_in_a_log_file(tmp_path):
    import torch

    from export.models import NanoConfig, build_nano, save_nano

    torch.manual_seed(1)
    weights = tmp_path / "w.safetensors"
    save_nano(build_nano(NanoConfig(width=8, imgsz=128)), weights)
    out = tmp_path / "bundles"
    proc = edgeseg("export", str(weights), "--formats", "onnx,tflite", "--out", str(out), timeout=600)
    assert proc.returncode == 0, proc.stderr
    stdout = proc.stdout.splitlines()  # only edgeseg's own summary: converter printouts went to the log
    assert [ln.split(" bundle ")[0] for ln in stdout[:2]] == ["wrote onnx", "wrote tflite"] and len(stdout) == 4
    assert stdout[2:] == [f"parity report: {out / 'parity.md'}",
                          f"converter logs: {out / 'export.log'} (--verbose shows them here)"]
    lines = [ln for ln in proc.stderr.replace("\r", "\n").splitlines() if ln.strip()]
    noise = ("JAX", "I0000", "FutureWarning", "INFO root", "LiteRT-Torch Convert", "absl", "Warning:")
    assert not [ln for ln in lines if any(n in ln for n in noise)], lines
    assert not [ln for ln in lines if ln.startswith("export formats")]  # no bar around the per-format bars
    log = (out / "export.log").read_text()
    assert "LiteRT-Torch Convert" in log and "format 2/2: tflite" in log


def test_small_things_a_user_meets(tmp_path):
    info = subprocess.run(f"{sys.executable} -m edgeseg info | head -1", shell=True, capture_output=True, text=True)
    assert info.stdout.startswith("edgeseg ") and "Broken pipe" not in info.stderr and "Traceback" not in info.stderr
    version = edgeseg("--version")
    assert version.returncode == 0 and version.stdout.startswith("edgeseg 0.")
    udp = edgeseg("run", str(SAMPLES / "scene_00.jpg"), "--hook", "udp://no.such.host.invalid:9000")
    assert udp.returncode == 2 and "cannot resolve host 'no.such.host.invalid'" in udp.stderr
    camera = edgeseg("run", "camera:abc")
    assert camera.returncode == 2 and "camera:N with N a V4L2 index, got 'camera:abc'" in camera.stderr
    assert "onnxruntime" not in camera.stderr  # refused before the model loads
    readme = (ROOT / "README.md").read_text()
    assert "`provenance.quantization.float_ops`" in readme
