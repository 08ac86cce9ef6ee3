"""Device configs: every shipped file validates; broken ones name the key and the file; extends; ORT fallback."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from edgeseg.device_config import (
    BackendOptions,
    ConfigError,
    DeviceConfig,
    ProviderSpec,
    apply_cpu_affinity,
    load_device_config,
)
from edgeseg.grasp import GripperSpec

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "device_configs").glob("*.yaml"))
REQUIRED = {"jetson-orin-nano", "jetson-orin-nx", "jetson-agx-orin", "jetson-xavier-nx", "rpi4", "rpi5", "rk3588", "x86-cpu"}


def test_the_required_boards_have_configs():
    assert REQUIRED <= {p.stem for p in CONFIGS}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_shipped_config_loads_and_validates(path):
    cfg = load_device_config(path)
    assert cfg.name == path.stem  # results are filed under the name: keep it equal to the file
    assert cfg.description
    assert isinstance(cfg.gripper, GripperSpec) and cfg.gripper.unit == "m"
    assert cfg.backend.providers[-1].name == "CPUExecutionProvider"
    assert cfg.robot.url and cfg.robot.hook_url.startswith(cfg.robot.url)


def test_extends_merges_mappings_and_replaces_lists():
    nano = load_device_config(CONFIGS[0].parent / "jetson-orin-nano.yaml")
    nx = load_device_config(CONFIGS[0].parent / "jetson-orin-nx.yaml")
    xavier = load_device_config(CONFIGS[0].parent / "jetson-xavier-nx.yaml")
    assert nx.camera == nano.camera  # inherited whole
    assert nx.bundle.precision == "int8" and nano.bundle.precision == "fp32"  # overridden
    assert nx.backend.providers[0].options["trt_int8_enable"] is True  # list replaced by the child's
    assert "trt_int8_enable" not in nano.backend.providers[0].options
    assert xavier.backend.providers == nano.backend.providers and xavier.robot.url == "serial:///dev/ttyTHS0"
    assert nano.gripper == load_device_config(CONFIGS[0].parent / "x86-cpu.yaml").gripper  # two levels up
    rk = load_device_config(CONFIGS[0].parent / "rk3588.yaml")
    assert rk.backend.cpu_affinity == (4, 5, 6, 7)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    "text, key, message",
    [
        ("name: x\nbackend: {treads: 4}\n", "config.backend", "unknown key(s) ['treads']"),
        ("backend: {threads: four}\n", "config.backend.threads", "must be int, got str"),
        ("backend: {threads: -1}\n", "config.backend.threads", "must be a number in [0, 1024], got int -1"),
        ("backend: {cpu_affinity: [1, 1]}\n", "config.backend", "distinct core ids"),
        ("backend: {providers: []}\n", "config.backend", "at least one execution provider"),
        ("backend: {providers: [{name: Cuda}]}\n", "config.backend.providers[0]", "ExecutionProvider"),
        ("bundle: {format: onnx, precision: int4}\n", "config.bundle", "precision must be one of"),
        ("bundle: {format: engine}\n", "config.bundle", "format must be one of"),
        ("camera: {source: 'v4l2src ! videoconvert'}\n", "config.camera", "must end in appsink"),
        ("camera: {source: /dev/video0}\n", "config.camera", "'camera:N'"),
        ("camera: {fps: 0}\n", "config.camera", "fps must be in (0, 1000]"),
        ("gripper: {max_opening: 0}\n", "config.gripper", "max_opening must be > 0"),
        ("gripper: {unit: cm}\n", "config.gripper.unit", "must be one of ['m', 'px']"),
        ("robot: {url: 'serial:///dev/ttyUSB0', baud: 0}\n", "config.robot", "baud must be in"),
        ("robot: {url: 'ftp://x'}\n", "config.robot", "unknown hook URL"),
        ("robot: {url: 'serial:///dev/ttyS0?baud=9600'}\n", "config.robot", "set robot.baud"),
        ("cell: {serve: 'udp://0.0.0.0:7000'}\n", "config.cell", "cell.serve must start with tcp://"),
        ("cell: {modbus: 'tcp://0.0.0.0:502'}\n", "config.cell", "cell.modbus must start with modbus://"),
        ("cell: {reply_timeout_s: 0}\n", "config.cell", "reply_timeout_s must be > 0"),
        ("cell: {trigger: 'yes'}\n", "config.cell.trigger", "must be bool"),
        ("- just\n- a list\n", "config", "must be a mapping"),
    ],
)
def test_broken_configs_name_the_file_and_the_key(tmp_path, text, key, message):
    path = _write(tmp_path, "broken.yaml", text)
    with pytest.raises(ConfigError) as err:
        load_device_config(path)
    msg = str(err.value)
    assert str(path) in msg and key in msg and message in msg, msg


def test_broken_yaml_and_missing_file_name_the_file(tmp_path):
    bad = _write(tmp_path, "bad.yaml", "backend: {threads: [\n")
    with pytest.raises(ConfigError, match="bad.yaml is not valid YAML"):
        load_device_config(bad)
    with pytest.raises(ConfigError, match="nope.yaml does not exist"):
        load_device_config(tmp_path / "nope.yaml")


def test_extends_is_relative_to_the_file_and_errors_name_the_parent(tmp_path):
    (tmp_path / "base").mkdir()
    _write(tmp_path / "base", "parent.yaml", "backend: {threads: 2, xnnpack: false}\ncamera: {width: 320, height: 240}\n")
    child = _write(tmp_path, "child.yaml", "name: c\nextends: base/parent.yaml\nbackend: {threads: 3}\n")
    cfg = load_device_config(child)
    assert (cfg.backend.threads, cfg.backend.xnnpack, cfg.camera.width, cfg.camera.height) == (3, False, 320, 240)

    orphan = _write(tmp_path, "orphan.yaml", "extends: missing.yaml\n")
    with pytest.raises(ConfigError, match=r"missing.yaml does not exist \(extended by .*orphan.yaml\)"):
        load_device_config(orphan)
    _write(tmp_path, "a.yaml", "extends: b.yaml\n")
    _write(tmp_path, "b.yaml", "extends: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_device_config(tmp_path / "a.yaml")
    with pytest.raises(ConfigError, match="extends must be a file path"):
        load_device_config(_write(tmp_path, "e.yaml", "extends: 3\n"))


def test_defaults_are_declared_once_and_valid():
    cfg = DeviceConfig()
    assert cfg.backend.providers == (ProviderSpec("CPUExecutionProvider"),)
    assert cfg.camera.source == "camera:0" and cfg.robot.url == ""
    assert load_device_config(Path(os.devnull)) == cfg  # an empty file is all defaults


def test_cpu_affinity_pins_and_rejects_missing_cores():
    before = os.sched_getaffinity(0)
    try:
        core = min(before)
        assert apply_cpu_affinity(BackendOptions(cpu_affinity=(core,))) == (core,)
        with pytest.raises(ValueError, match="this machine has cores"):
            apply_cpu_affinity(BackendOptions(cpu_affinity=(4096,)))
    finally:
        os.sched_setaffinity(0, before)


def test_missing_ort_providers_fall_back_to_cpu_with_one_line_each(caplog):
    """Real onnxruntime: TensorRT and CUDA are not in this CPU build; the session runs on CPU."""
    import numpy as np
    import onnxruntime

    import edgeseg

    wanted = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
    if any(p in onnxruntime.get_available_providers() for p in wanted):
        pytest.skip("this onnxruntime build has a GPU provider; nothing to fall back from")
    cfg = load_device_config(CONFIGS[0].parent / "jetson-orin-nano.yaml")
    with caplog.at_level(logging.WARNING, logger="edgeseg.backends.onnxruntime"):
        seg = edgeseg.load(None, cfg)
    lines = [r.getMessage() for r in caplog.records if r.name == "edgeseg.backends.onnxruntime"]
    assert len(lines) == 2, lines
    for provider, line in zip(wanted, lines, strict=True):
        assert provider in line and "not available" in line and "falling back to CPUExecutionProvider" in line
    assert seg.backend.session.get_providers() == ["CPUExecutionProvider"]
    assert seg(np.zeros((240, 320, 3), np.uint8)).image_size == (240, 320)  # and it runs


def test_calibration_section_builds_a_3d_grasp_planner(tmp_path):
    cfg = load_device_config(Path(__file__).resolve().parents[1] / "device_configs" / "x86-cpu.yaml")
    from edgeseg.grasp import GraspPlanner

    planner = GraspPlanner.from_device_config(cfg)
    assert planner.camera.fx == 600.0 and planner.table.offset == 0.35
    assert planner.hand_eye.shape == (4, 4)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ncalibration:\n  table: {normal: [0.0, 0.0, -1.0], offset: 0.6}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*calibration.*need calibration.intrinsics"):
        load_device_config(bad)
    bad.write_text("name: bad\ncalibration:\n  intrinsics: {fx: -1.0, fy: 600.0, cx: 1.0, cy: 1.0}\n")
    with pytest.raises(ConfigError, match=r"calibration\.intrinsics.*focal lengths must be > 0"):
        load_device_config(bad)
    bad.write_text("name: bad\ncalibration:\n  intrinsics: {fx: 1.0, fy: 1.0, cx: 1.0, cy: 1.0}\n  hand_eye: [[1, 0, 0, 0]]\n")
    with pytest.raises(ConfigError, match="4 rows"):
        load_device_config(bad)
