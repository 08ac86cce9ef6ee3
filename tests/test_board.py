"""Board detection from fixture trees (never the live machine), config lookup, sysfs thermals."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeseg.bench.thermal import read_temperatures, read_throttling
from edgeseg.board import BoardInfo, config_for_board, detect_board
from edgeseg.device_config import load_device_config

FIXTURES = Path(__file__).parent / "fixtures" / "boards"
CONFIG_DIR = Path(__file__).resolve().parents[1] / "device_configs"


@pytest.mark.parametrize(
    "fixture, board, family, arch, cores, l4t",
    [
        ("jetson-orin-nano", "jetson-orin-nano", "jetson", "aarch64", 6, "R36.3.0"),
        ("jetson-orin-nano-no-model", "jetson-orin-nano", "jetson", "aarch64", 6, "R36.3.0"),
        ("jetson-orin-nx", "jetson-orin-nx", "jetson", "aarch64", 8, "R35.4.1"),
        ("jetson-agx-orin", "jetson-agx-orin", "jetson", "aarch64", 12, "R36.4.0"),
        ("jetson-xavier-nx", "jetson-xavier-nx", "jetson", "aarch64", 6, "R35.5.0"),
        ("rpi4", "rpi4", "raspberry-pi", "aarch64", 4, ""),
        ("rpi5", "rpi5", "raspberry-pi", "aarch64", 4, ""),
        ("rk3588", "rk3588", "rockchip", "aarch64", 8, ""),
        ("x86", "x86-cpu", "cpu", "x86_64", 8, ""),
        ("arm64-generic", "arm64-cpu", "cpu", "aarch64", 6, ""),
    ],
)
def test_detects_each_board_from_its_files(fixture, board, family, arch, cores, l4t):
    info = detect_board(FIXTURES / fixture)
    assert (info.id, info.family, info.arch, info.cores, info.l4t) == (board, family, arch, cores, l4t)
    path = config_for_board(info, CONFIG_DIR)  # --device auto
    assert path.stem == board and load_device_config(path).name == board


def test_models_and_cpu_names_come_from_the_files():
    assert detect_board(FIXTURES / "rpi5").model == "Raspberry Pi 5 Model B Rev 1.0"
    assert detect_board(FIXTURES / "rk3588").model == "Radxa ROCK 5B"
    x86 = detect_board(FIXTURES / "x86")
    assert x86.cpu_model == "12th Gen Intel(R) Core(TM) i7-1260P" and "x86-cpu" in str(x86)
    assert "L4T R36.3.0" in str(detect_board(FIXTURES / "jetson-orin-nano"))


def test_unknown_board_falls_back_to_its_architecture_and_missing_configs_say_what_was_tried(tmp_path):
    jetson_nano = BoardInfo("jetson-nano", "jetson", "NVIDIA Jetson Nano", "aarch64")
    assert config_for_board(jetson_nano, CONFIG_DIR).name == "arm64-cpu.yaml"
    with pytest.raises(FileNotFoundError, match="jetson-nano.yaml.*arm64-cpu.yaml"):
        config_for_board(jetson_nano, tmp_path)


def test_an_empty_root_is_a_generic_cpu(tmp_path):
    info = detect_board(tmp_path)
    assert info.family == "cpu" and info.id.endswith("-cpu") and info.cores == 0


def test_the_live_machine_is_detected_without_error():
    info = detect_board()
    assert info.id and info.arch


@pytest.mark.parametrize(
    "fixture, temps, throttling",
    [
        ("rpi5", {"cpu-thermal": 61.85}, ["rpi: under-voltage", "rpi: throttled"]),
        ("rpi4", {"cpu-thermal": 52.1}, []),
        ("jetson-orin-nano", {"cpu-thermal": 48.5, "gpu-thermal": 47.031, "tj-thermal": 49.0},
         ["cpufreq: policy0 capped at 1113 of 1510 MHz", "devfreq: 17000000.gpu capped at 306 of 624 MHz"]),
        ("rk3588", {"soc-thermal": 40.0, "bigcore0-thermal": 41.538}, ["cooling: thermal-cpufreq-0 state 1"]),
        ("x86", {}, []),
    ],
)
def test_temperatures_and_throttling_from_sysfs(fixture, temps, throttling):
    assert read_temperatures(FIXTURES / fixture) == pytest.approx(temps)
    assert read_throttling(FIXTURES / fixture) == throttling
