"""Process resources during a run: peak RSS, CPU utilisation, temperatures, throttling.

A :class:`ResourceMonitor` is a context manager around the timed frames: it
resets the kernel's RSS high-water mark on entry (so each bundle of a
multi-bundle run gets its own peak), and a background thread samples the
thermal zones and throttling state every ``interval_s`` seconds.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgeseg.bench.thermal import read_temperatures, read_throttling


@dataclass(frozen=True)
class ResourceUsage:
    """What a run used.

    Attributes:
        peak_rss_mb: Peak resident set size of the process, MiB (during the run
            when the kernel lets the mark be reset, else since process start).
        cpu_percent: Process CPU time / wall time, percent of one core (200 =
            two cores busy).
        cpu_percent_of_machine: ``cpu_percent`` divided by the usable cores, in [0, 100].
        temperatures_c: Zone type -> ``(min, max)`` degrees Celsius seen during the run.
        throttling: Distinct throttling reasons seen during the run (empty = none seen).
        samples: Number of thermal samples taken.
        load_avg: Highest 1-minute system load average seen (runnable tasks;
            above the core count, other processes competed for the CPUs and
            latencies include waiting for one); -1 where unknown.
    """

    peak_rss_mb: float
    cpu_percent: float
    cpu_percent_of_machine: float
    temperatures_c: dict[str, tuple[float, float]] = field(default_factory=dict)
    throttling: tuple[str, ...] = ()
    samples: int = 0
    load_avg: float = -1.0


def _status_kb(key: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return float(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Resets VmHWM to the current RSS (Linux >= 4.0); False where not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class ResourceMonitor:
    """Measures :class:`ResourceUsage` over a ``with`` block.

    Args:
        interval_s: Seconds between thermal/throttling samples.
        root: Filesystem root for sysfs (tests pass a fixture tree).

    After the block, :attr:`usage` holds the result.
    """

    def __init__(self, interval_s: float = 0.5, root: str | os.PathLike = "/") -> None:
        self.interval_s = interval_s
        self.root = root
        self.usage: ResourceUsage | None = None
        self._temps: dict[str, tuple[float, float]] = {}
        self._throttling: dict[str, None] = {}
        self._samples = 0
        self._load = -1.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        for name, t in read_temperatures(self.root).items():
            lo, hi = self._temps.get(name, (t, t))
            self._temps[name] = (min(lo, t), max(hi, t))
        self._throttling.update(dict.fromkeys(read_throttling(self.root)))
        self._samples += 1
        if hasattr(os, "getloadavg"):
            self._load = max(self._load, os.getloadavg()[0])

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def __enter__(self) -> ResourceMonitor:
        self._hwm_reset = _reset_peak_rss()
        self._t0, self._cpu0 = time.perf_counter(), os.times()
        self._sample()
        self._thread = threading.Thread(target=self._loop, name="edgeseg-bench-monitor", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        cpu1, t1 = os.times(), time.perf_counter()
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        wall = max(t1 - self._t0, 1e-9)
        busy = (cpu1.user - self._cpu0.user) + (cpu1.system - self._cpu0.system)
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        hwm = _status_kb("VmHWM") if self._hwm_reset else None
        peak_kb = hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.usage = ResourceUsage(
            peak_rss_mb=peak_kb / 1024.0,
            cpu_percent=100.0 * busy / wall,
            cpu_percent_of_machine=100.0 * busy / wall / cores,
            temperatures_c=dict(self._temps),
            throttling=tuple(self._throttling),
            samples=self._samples,
            load_avg=self._load,
        )
