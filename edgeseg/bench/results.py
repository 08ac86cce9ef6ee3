"""Benchmark results: the typed record of one run, its JSON file, and a loader for many.

One run = one bundle on one board with one device config. It is written as
``benchmarks/results/<board>/<timestamp>_<bundle>-<format>-<precision>.json``
(schema :data:`SCHEMA_VERSION`) and read back into the same dataclasses by
:func:`load_results`, which takes files and folders.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.bench.monitor import ResourceUsage
from edgeseg.board import BoardInfo
from edgeseg.device_config import ConfigError, from_dict
from edgeseg.manifest import PRECISIONS

log = logging.getLogger("edgeseg.bench")

SCHEMA_VERSION = 1
#: Pipeline stages in frame order; they add up to ``end_to_end``.
STAGES = ("read", "preprocess", "infer", "decode", "grasp", "serialize", "hooks")
END_TO_END = "end_to_end"
#: Stages after inference that turn model outputs into what a robot or a file gets.
POSTPROCESS = ("decode", "grasp", "serialize")


@dataclass(frozen=True)
class LatencyStats:
    """Distribution of one stage's per-frame wall time, milliseconds.

    Percentiles use numpy's default (linear interpolation); ``std`` is the
    population standard deviation.
    """

    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    max_ms: float
    n: int

    @classmethod
    def of(cls, samples_ms: np.ndarray) -> LatencyStats:
        """Summarises ``(N,)`` per-frame times in milliseconds (N >= 1)."""
        x = np.asarray(samples_ms, np.float64)
        if x.ndim != 1 or x.size == 0:
            raise ValueError(f"expected a non-empty 1-D array of latencies, got shape {x.shape}")
        p50, p90, p99 = np.percentile(x, [50, 90, 99])
        return cls(float(p50), float(p90), float(p99), float(x.mean()), float(x.std()),
                   float(x.min()), float(x.max()), int(x.size))


@dataclass(frozen=True)
class BundleInfo:
    """Which model ran.

    Attributes:
        name: Manifest name (``edgeseg-nano``).
        format: ``onnx`` / ``tflite``.
        precision: ``fp32`` / ``fp16`` / ``int8`` / ``mixed``.
        path: Bundle path as given.
        model_sha256: sha256 of the model file (verified on load).
        manifest_sha256: sha256 of ``manifest.json``.
        input_shape: Model input shape, manifest layout.
        size_mb: Model file size, MB (10^6 bytes).
    """

    name: str
    format: str
    precision: str
    path: str
    model_sha256: str
    manifest_sha256: str
    input_shape: tuple[int, ...]
    size_mb: float

    @property
    def label(self) -> str:
        """``onnx-fp32``: how plots and tables name the bundle."""
        return f"{self.format}-{self.precision}"


@dataclass(frozen=True)
class BenchRun:
    """One benchmark run.

    Attributes:
        timestamp: Start time, ISO 8601 UTC.
        board: The detected (or named) board.
        config_name: ``DeviceConfig.name``.
        config_path: The config file ("" for defaults).
        config: The full device config as a mapping.
        bundle: The bundle.
        software: Package -> version (edgeseg, python, numpy, opencv, backend library, decoder path).
        backend_device: What actually ran the model (e.g. the ORT provider).
        images: Image folder or file list the frames came from.
        image_count: Distinct images cycled through.
        frames: Timed frames.
        warmup: Untimed warm-up frames before them.
        model_load_ms: Bundle verification + session creation, ms.
        first_frame_ms: End-to-end time of the very first frame (cold), ms.
        stages: Stage name (:data:`STAGES` and ``end_to_end``) -> stats.
        unaccounted_pct: ``100 * (sum end_to_end - sum of all stages) / sum end_to_end``.
        fps: ``1000 / mean end_to_end``: frames per second of this sequential loop.
        resources: Peak RSS, CPU utilisation, temperatures, throttling.
        accuracy: Mask/box mAP on a validation set, when asked for.
        hook_delivery: The hook's counters after the run (submitted, delivered,
            dropped, failed); a hook drops frames its sink cannot keep up with.
        samples_ms: Stage -> per-frame times in frame order, ms (for plots).
        schema_version: Results file schema.
        postprocess_pct: Median over frames of ``100 * (decode + grasp +
            serialize) / infer``: post-processing as a share of inference
            (``None`` in results written before it was measured).
    """

    timestamp: str
    board: BoardInfo
    config_name: str
    config_path: str
    config: dict[str, Any]
    bundle: BundleInfo
    software: dict[str, str]
    backend_device: str
    images: str
    image_count: int
    frames: int
    warmup: int
    model_load_ms: float
    first_frame_ms: float
    stages: dict[str, LatencyStats]
    unaccounted_pct: float
    fps: float
    resources: ResourceUsage
    accuracy: dict[str, float] | None = None
    hook_delivery: dict[str, int] = field(default_factory=dict)
    samples_ms: dict[str, tuple[float, ...]] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    postprocess_pct: float | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def stage(self, name: str) -> LatencyStats | None:
        """Stats of stage ``name``; ``None`` for a stage results of an older version did not time."""
        return self.stages.get(name)

    @classmethod
    def from_dict(cls, data: dict, where: str = "results") -> BenchRun:
        version = data.get("schema_version") if isinstance(data, dict) else None
        if version != SCHEMA_VERSION:
            raise ValueError(f"{where}: expected results schema_version {SCHEMA_VERSION}, got {version!r}")
        try:
            return from_dict(cls, data, where)
        except ConfigError as exc:
            raise ValueError(f"malformed benchmark results: {exc}") from None

    def file_name(self) -> str:
        stamp = self.timestamp.replace(":", "").replace("-", "")
        return f"{stamp}_{self.bundle.name}-{self.bundle.label}.json"


def save_run(run: BenchRun, results_dir: str | os.PathLike) -> Path:
    """Writes ``run`` to ``results_dir/<board>/<file_name>``; returns the path."""
    path = Path(results_dir) / run.board.id / run.file_name()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = run.to_dict()
    # Indented for people, except the per-frame samples (one line each stage keeps files small).
    text = json.dumps({**data, "samples_ms": "\0"}, indent=1).replace('"\\u0000"', json.dumps(data["samples_ms"]))
    path.write_text(text + "\n")
    return path


def load_results(paths: list[str | os.PathLike]) -> list[BenchRun]:
    """Reads results files; folders are searched recursively for ``*.json``.

    Files found in folders that are not bench runs (other tools' JSON) are
    skipped with a log line; a file named explicitly must be a run.

    Returns:
        Runs sorted by board, format, precision (fp32, fp16, int8, mixed) and timestamp.

    Raises:
        FileNotFoundError: A path does not exist or a folder holds no results.
        ValueError: A file is not a results file of this schema (names the file).
    """
    files: list[Path] = []
    explicit: set[Path] = set()  # named files must be runs; folders may hold other JSON
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.rglob("*.json"))
            if not found:
                raise FileNotFoundError(f"no benchmark results (*.json) under {p}")
            files += found
        elif p.is_file():
            files.append(p)
            explicit.add(p)
        else:
            raise FileNotFoundError(f"benchmark results {p} do not exist")
    runs = []
    for f in files:
        try:
            data = json.loads(f.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{f} is not JSON: {exc}") from None
        if f not in explicit and not (isinstance(data, dict) and {"schema_version", "stages", "bundle"} <= data.keys()):
            log.info("skipping %s: not an edgeseg bench run", f)  # other tools' JSON in the same folder
            continue
        runs.append(BenchRun.from_dict(data, str(f)))
    if not runs:
        raise FileNotFoundError(f"no edgeseg bench runs in {[str(p) for p in paths]}")
    order = {p: i for i, p in enumerate(PRECISIONS)}
    return sorted(runs, key=lambda r: (r.board.id, r.bundle.format, order.get(r.bundle.precision, 99), r.timestamp))
