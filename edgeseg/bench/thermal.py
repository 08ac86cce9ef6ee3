"""Temperatures and throttling from sysfs (Linux thermal zones, cpufreq, Raspberry Pi firmware).

Boards expose what they have: Jetsons list ``cpu-thermal`` / ``gpu-thermal``
(``CPU-therm`` / ``GPU-therm`` on JetPack 4/5) zones, a Raspberry Pi has
``cpu-thermal`` plus the firmware's ``get_throttled`` flags, most x86 laptops
``x86_pkg_temp``; containers and VMs often have nothing, and then the bench
reports no temperatures rather than guessing. Every function takes ``root``
(default ``/``) so tests read fixture trees.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Raspberry Pi firmware ``get_throttled`` bits that mean "slowed down now".
RPI_THROTTLE_BITS = {0: "under-voltage", 1: "arm frequency capped", 2: "throttled", 3: "soft temperature limit"}
RPI_THROTTLED = "sys/devices/platform/soc/soc:firmware/get_throttled"
#: Cooling-device types whose non-zero state means a CPU/GPU is slowed down.
THROTTLING_COOLERS = ("cpufreq", "processor", "cpu", "gpu", "devfreq")
#: Readings outside this range (degrees Celsius) come from disabled sensors.
VALID_C = (-40.0, 200.0)


def _text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def read_temperatures(root: str | os.PathLike = "/") -> dict[str, float]:
    """Current temperature of every thermal zone, degrees Celsius, keyed by zone type.

    Zones with the same type get ``_1``, ``_2`` ... suffixes; unreadable or
    powered-down zones (EINVAL, or -256 C on a Jetson) are skipped.
    """
    temps: dict[str, float] = {}
    zones = Path(root, "sys/class/thermal")
    for zone in sorted(zones.glob("thermal_zone*"), key=lambda p: int(p.name[12:] or 0)):
        kind, raw = _text(zone / "type"), _text(zone / "temp")
        if not kind or raw is None or not raw.lstrip("-").isdigit():
            continue
        if not VALID_C[0] < int(raw) / 1000.0 < VALID_C[1]:
            continue  # a powered-down sensor (Jetson reports -256 C)
        name, k = kind, 1
        while name in temps:
            name, k = f"{kind}_{k}", k + 1
        temps[name] = int(raw) / 1000.0  # sysfs reports millidegrees
    return temps


def read_throttling(root: str | os.PathLike = "/") -> list[str]:
    """Reasons the board is slowed down right now; empty when it is not (or cannot tell).

    Sources: the Raspberry Pi firmware flags, active CPU/GPU cooling devices
    (thermal framework), CPUs whose frequency policy is capped below their
    maximum, and devfreq devices (a Jetson's GPU) capped below their top
    frequency. On a Jetson a cap may also come from the nvpmodel power mode.
    """
    root = Path(root)
    reasons: list[str] = []
    flags = _text(root / RPI_THROTTLED)
    if flags:
        try:
            value = int(flags, 16)
        except ValueError:
            value = 0
        reasons += [f"rpi: {name}" for bit, name in RPI_THROTTLE_BITS.items() if value >> bit & 1]
    for dev in sorted(Path(root, "sys/class/thermal").glob("cooling_device*")):
        kind, state = _text(dev / "type") or "", _text(dev / "cur_state")
        if state and state.isdigit() and int(state) > 0 and any(t in kind.lower() for t in THROTTLING_COOLERS):
            reasons.append(f"cooling: {kind} state {state}")
    for policy in sorted(Path(root, "sys/devices/system/cpu/cpufreq").glob("policy*")):
        cap, top = _text(policy / "scaling_max_freq"), _text(policy / "cpuinfo_max_freq")
        if cap and top and cap.isdigit() and top.isdigit() and int(cap) < int(top):
            reasons.append(f"cpufreq: {policy.name} capped at {int(cap) // 1000} of {int(top) // 1000} MHz")
    for dev in sorted(Path(root, "sys/class/devfreq").glob("*")):  # Jetson GPU (gpu.0 / 17000000.gpu)
        cap, steps = _text(dev / "max_freq"), (_text(dev / "available_frequencies") or "").split()
        top = max((int(f) for f in steps if f.isdigit()), default=0)
        if cap and cap.isdigit() and 0 < int(cap) < top:
            reasons.append(f"devfreq: {dev.name} capped at {int(cap) // 1_000_000} of {top // 1_000_000} MHz")
    return reasons
