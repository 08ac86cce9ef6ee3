"""Which board is this? Detection from the files Linux exposes, and its config file.

Sources, in order of trust:

1. ``/etc/nv_tegra_release`` (present on every JetPack install) marks a
   Jetson; the device-tree model (or, failing that, the module's
   ``compatible`` part number) tells which one.
2. ``/proc/device-tree/model`` names Raspberry Pi and RK3588 boards
   (``compatible`` also lists ``rockchip,rk3588``).
3. Otherwise ``/proc/cpuinfo`` gives the CPU model and architecture, and the
   board is a generic ``x86-cpu`` or ``arm64-cpu``.

Every function takes ``root`` (default ``/``) so tests feed fixture trees
instead of the live machine.
"""

from __future__ import annotations

import os
import platform
import re
from dataclasses import dataclass
from pathlib import Path

#: Substrings of the device-tree model -> board id, most specific first.
JETSON_MODELS: tuple[tuple[str, str], ...] = (
    ("AGX Orin", "jetson-agx-orin"),
    ("Orin NX", "jetson-orin-nx"),
    ("Orin Nano", "jetson-orin-nano"),
    ("Xavier NX", "jetson-xavier-nx"),
    ("AGX Xavier", "jetson-agx-xavier"),
    ("Jetson Nano", "jetson-nano"),
)
#: Jetson module part numbers in ``compatible`` (when the model string is missing).
JETSON_PARTS: tuple[tuple[str, str], ...] = (
    ("p3701", "jetson-agx-orin"),
    ("p3767-0000", "jetson-orin-nx"),
    ("p3767-0001", "jetson-orin-nx"),
    ("p3767-0003", "jetson-orin-nano"),
    ("p3767-0004", "jetson-orin-nano"),
    ("p3767-0005", "jetson-orin-nano"),
    ("p3668", "jetson-xavier-nx"),
    ("p2888", "jetson-agx-xavier"),
    ("p3448", "jetson-nano"),
)
RASPBERRY_PI_MODELS: tuple[tuple[str, str], ...] = (
    ("Raspberry Pi 5", "rpi5"),
    ("Raspberry Pi 4", "rpi4"),
    ("Raspberry Pi Compute Module 4", "rpi4"),
    ("Raspberry Pi 3", "rpi3"),
)


@dataclass(frozen=True)
class BoardInfo:
    """What the machine is.

    Attributes:
        id: Board id, also the stem of its file in ``device_configs/``
            (``jetson-orin-nano``, ``rpi5``, ``rk3588``, ``x86-cpu`` ...).
        family: ``jetson``, ``raspberry-pi``, ``rockchip`` or ``cpu``.
        model: Human-readable model (device-tree model or CPU model name).
        arch: CPU architecture (``x86_64``, ``aarch64`` ...).
        cpu_model: CPU model name from ``/proc/cpuinfo`` (may be empty on ARM).
        cores: Logical CPUs listed in ``/proc/cpuinfo`` (0 if unknown).
        l4t: Jetson Linux release (``R36.3.0``) from ``nv_tegra_release``, else "".
    """

    id: str
    family: str
    model: str
    arch: str
    cpu_model: str = ""
    cores: int = 0
    l4t: str = ""

    def __str__(self) -> str:
        extra = f", L4T {self.l4t}" if self.l4t else ""
        return f"{self.id} ({self.model}; {self.arch}, {self.cores} cores{extra})"


def _read(root: Path, rel: str) -> str:
    """A text file under ``root``, NULs (device-tree strings) turned into newlines; "" if absent."""
    try:
        return (root / rel).read_bytes().decode("utf-8", "replace").replace("\x00", "\n").strip()
    except OSError:
        return ""


def _lookup(text: str, table: tuple[tuple[str, str], ...]) -> str:
    return next((board for key, board in table if key in text), "")


def _cpuinfo(root: Path) -> tuple[str, str, int]:
    """``(cpu_model, arch, cores)`` from ``/proc/cpuinfo``; arch guessed from its fields."""
    text = _read(root, "proc/cpuinfo")
    fields: dict[str, str] = {}
    cores = 0
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip()
        if not sep:
            continue
        if key == "processor":
            cores += 1
        fields.setdefault(key, value.strip())
    model = fields.get("model name") or fields.get("Model") or fields.get("Hardware") or ""
    if "vendor_id" in fields or "flags" in fields:
        arch = "x86_64" if " lm " in f" {fields.get('flags', '')} " else "i686"
    elif fields.get("CPU architecture") == "8":
        arch = "aarch64"
    elif "CPU architecture" in fields:
        arch = "armv7l"
    else:
        arch = platform.machine() or "unknown"
    return model, arch, cores


def _l4t_release(text: str) -> str:
    """``R36 (release), REVISION: 3.0, ...`` -> ``R36.3.0``."""
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    return f"R{m.group(1)}.{m.group(2)}" if m else ""


def detect_board(root: str | os.PathLike = "/") -> BoardInfo:
    """Detects the board from the files under ``root``.

    Args:
        root: Filesystem root to read (``/`` for this machine; a fixture tree in tests).

    Returns:
        The board; a generic ``x86-cpu`` / ``arm64-cpu`` when nothing more specific matches.
    """
    root = Path(root)
    cpu_model, arch, cores = _cpuinfo(root)
    model = _read(root, "proc/device-tree/model").splitlines()
    model = model[0] if model else ""
    compatible = _read(root, "proc/device-tree/compatible")
    tegra = _read(root, "etc/nv_tegra_release")
    if tegra or "nvidia,tegra" in compatible:
        board = _lookup(model, JETSON_MODELS) or _lookup(compatible, JETSON_PARTS) or "jetson"
        return BoardInfo(board, "jetson", model or "NVIDIA Jetson", "aarch64", cpu_model, cores, _l4t_release(tegra))
    if model.startswith("Raspberry Pi"):
        board = _lookup(model, RASPBERRY_PI_MODELS) or "raspberry-pi"
        return BoardInfo(board, "raspberry-pi", model, arch, cpu_model, cores)
    if "rockchip,rk3588" in compatible or "RK3588" in model.upper():
        return BoardInfo("rk3588", "rockchip", model or "Rockchip RK3588", arch, cpu_model, cores)
    generic = "x86-cpu" if arch in ("x86_64", "i686") else "arm64-cpu" if arch == "aarch64" else f"{arch}-cpu"
    return BoardInfo(generic, "cpu", model or cpu_model or arch, arch, cpu_model, cores)


def default_config_dir() -> Path:
    """Where ``--device auto`` looks: ``$EDGESEG_DEVICE_CONFIGS``, ``./device_configs``, or the source tree's."""
    env = os.environ.get("EDGESEG_DEVICE_CONFIGS")
    if env:
        return Path(env)
    here = Path("device_configs")
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[1] / "device_configs"


def config_for_board(board: BoardInfo, config_dir: str | os.PathLike | None = None) -> Path:
    """The config file for ``board``: ``<id>.yaml``, else the generic one for its architecture.

    Raises:
        FileNotFoundError: Neither exists (the message lists what was tried).
    """
    directory = Path(config_dir) if config_dir is not None else default_config_dir()
    generic = "x86-cpu" if board.arch in ("x86_64", "i686") else "arm64-cpu"
    tried = [directory / f"{name}.yaml" for name in dict.fromkeys((board.id, generic))]
    for path in tried:
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"no device config for board {board.id!r}: tried {', '.join(map(str, tried))} "
        "(set EDGESEG_DEVICE_CONFIGS or pass a config file)"
    )
