"""The edgeseg command line, run as a user runs it (a real subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np


def edgeseg(*args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeseg", *args], capture_output=True, text=True, timeout=timeout)


def test_run_writes_json_and_overlays_and_survives_bad_frames(tiny_bundle, scene, tmp_path):
    src = tmp_path / "imgs"
    src.mkdir()
    cv2.imwrite(str(src / "a.png"), scene)
    cv2.imwrite(str(src / "b.jpg"), cv2.resize(scene, (200, 300)))
    (src / "broken.png").write_bytes(b"\x89PNG not really")
    out = tmp_path / "out"
    proc = edgeseg("run", str(src), "--bundle", str(tiny_bundle), "--out", str(out), "--score", "0.01")
    assert proc.returncode == 1, proc.stderr  # one unreadable frame -> non-zero, but the others ran
    assert "read failed on frame broken" in proc.stderr
    assert "a: " in proc.stdout and "b: " in proc.stdout
    for name, shape in (("a", scene.shape), ("b", (300, 200, 3))):
        data = json.loads((out / f"{name}.json").read_text())
        assert data["image_size"] == list(shape[:2]) and data["instances"]
        overlay = cv2.imread(str(out / f"{name}.png"))
        assert overlay.shape == shape
    assert not np.array_equal(cv2.imread(str(out / "a.png")), scene)  # something was drawn


def test_verify_info_and_errors(tiny_bundle, tmp_path):
    ok = edgeseg("verify", str(tiny_bundle))
    assert ok.returncode == 0 and ok.stdout.startswith("OK")
    info = edgeseg("info", str(tiny_bundle))
    assert info.returncode == 0, info.stderr
    assert "decoder" in info.stdout and '"family": "proto"' in info.stdout and "onnxruntime" in info.stdout
    bad = edgeseg("verify", str(tmp_path / "missing"))
    assert bad.returncode == 2 and "does not exist" in bad.stderr and "Traceback" not in bad.stderr


def test_default_bundle_runs_without_arguments(tmp_path):
    samples = Path(__file__).resolve().parents[1] / "edgeseg" / "assets" / "samples"
    img = tmp_path / "x.png"
    if samples.is_dir() and any(samples.iterdir()):
        img = next(p for p in sorted(samples.iterdir()) if p.suffix in (".jpg", ".png"))
    else:
        cv2.imwrite(str(img), np.full((120, 160, 3), 90, np.uint8))
    proc = edgeseg("run", str(img))
    assert proc.returncode == 0, proc.stderr
    assert "instances" in proc.stdout


def test_export_cli_writes_a_loadable_bundle(tmp_path):
    import torch

    from export.models import NanoConfig, build_nano, save_nano

    torch.manual_seed(1)
    weights = tmp_path / "w.safetensors"
    save_nano(build_nano(NanoConfig(width=8, imgsz=128)), weights)
    proc = edgeseg("export", str(weights), "--formats", "onnx", "--out", str(tmp_path / "bundles"), timeout=300)
    assert proc.returncode == 0, proc.stderr
    ok = edgeseg("verify", str(tmp_path / "bundles" / "edgeseg-nano-onnx"))
    assert ok.returncode == 0, ok.stderr
    again = edgeseg("export", str(weights), "--out", str(tmp_path / "bundles"), timeout=300)
    assert again.returncode == 2 and "--force" in again.stderr
    unknown = edgeseg("export", str(weights), "--formats", "onnx,coreml", "--out", str(tmp_path / "x"))
    assert unknown.returncode == 2 and "coreml" in unknown.stderr


def test_run_sends_grasps_to_hooks(tmp_path):
    """`--hook` from the CLI: JSON lines to a file and binary frames over a real pty."""
    from virtual_port import VirtualSerialPort

    from edgeseg import protocol

    src = Path(__file__).resolve().parents[1] / "edgeseg" / "assets" / "samples" / "scene_00.jpg"
    with VirtualSerialPort(str(tmp_path / "tty")) as port:
        jsonl = tmp_path / "grasps.jsonl"
        proc = edgeseg(
            # queue_size=8: with the default of 1 a busy link may legitimately drop frame 0 (latest wins)
            "run", str(src), str(src), "--hook", f"jsonl:{jsonl}", "--hook", f"serial://{port.path}?baud=115200&queue_size=8",
            "--device-config", str(Path(__file__).resolve().parents[1] / "device_configs" / "x86-cpu.yaml"),
        )
        assert proc.returncode == 0, proc.stderr
        assert "grasps" in proc.stdout
        lines = [json.loads(x) for x in jsonl.read_text().splitlines()]
        assert [x["frame_id"] for x in lines] == [0, 1]
        assert all(len(x["grasps"]) > 0 for x in lines)  # the trained model finds objects to grasp
        model, *messages = port.read_messages(3, timeout=5.0)
        # a new connection first names the bundle whose class ids the frames use (protocol 1.2, MODEL)
        from edgeseg.model_info import ModelInfo

        assert model.type == protocol.MsgType.MODEL
        info = ModelInfo.from_body(model.body)
        assert (info.name, info.classes) == ("edgeseg-nano", 6) and len(info.manifest_sha256) == 16
        assert [m.frame_id for m in messages] == [0, 1]
        assert all(m.type == protocol.MsgType.GRASPS for m in messages)
        assert [len(m.grasps) for m in messages] == [len(x["grasps"]) for x in lines]
        assert [g.class_id for g in messages[0].grasps] == [g["class_id"] for g in lines[0]["grasps"]]
        # The config's calibration (intrinsics, table plane, hand-eye) gives every grasp a robot pose.
        assert all(g.robot is not None for g in messages[0].grasps)
