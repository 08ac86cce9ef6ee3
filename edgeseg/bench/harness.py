"""The benchmark loop: one bundle, one board config, N frames, every stage timed.

Per frame, one clock (``time.perf_counter``) is read back to back::

    t0 read t1 [preprocess | infer | decode] t2 grasp t3 serialize t4 hooks t5

``read`` is ``cv2.imread`` of a real image file (page-cached after the
first pass, as a camera frame already sits in memory), the three model
stages come from the Segmenter's own timings inside ``t1..t2``, ``grasp`` is
:class:`~edgeseg.grasp.GraspPlanner`, ``serialize`` is the frame's JSON
record (``Result.to_json()``: instances with COCO RLE masks, what
``edgeseg run`` writes), ``hooks`` is handing the frame to a
hook (its delivery runs on the hook's worker thread, as in deployment). What
the Segmenter spends between its timed stages (option handling, building the
Result) is the only time no stage owns; it is reported as
``unaccounted_pct`` instead of being hidden. Post-processing (decode, grasp,
serialize) is also reported as a share of inference, per frame
(``postprocess_pct``, median).
"""

from __future__ import annotations

import datetime
import itertools
import logging
import platform
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgeseg.bench.monitor import ResourceMonitor
from edgeseg.bench.results import END_TO_END, POSTPROCESS, STAGES, BenchRun, BundleInfo, LatencyStats
from edgeseg.board import BoardInfo, detect_board
from edgeseg.bundle import Bundle, load_bundle
from edgeseg.device_config import DeviceConfig, apply_cpu_affinity
from edgeseg.filecheck import sha256_file

log = logging.getLogger("edgeseg.bench")


@dataclass(frozen=True, kw_only=True)
class BenchOptions:
    """How to run a benchmark.

    Attributes:
        frames: Timed frames per bundle.
        warmup: Untimed frames first (session warm-up, caches, allocator).
        grasp: Plan grasps for every frame (the ``grasp`` stage).
        pixels_per_metre: Image scale the grasp planner uses to turn the
            metric gripper into pixels (1000: 1 px = 1 mm, an overhead camera
            about half a metre above the table), so fit and clearance are
            computed as on a calibrated cell.
        hook_url: Hook the frames go to (the ``hooks`` stage); ``""`` for none.
        val_dir: COCO validation set (``annotations.json`` + images) for mask
            mAP, or ``None`` to skip accuracy.
        val_limit: Most validation images to evaluate (0 = all).
        progress: Show a progress bar on stderr.
    """

    frames: int = 200
    warmup: int = 10
    grasp: bool = True
    pixels_per_metre: float = 1000.0
    hook_url: str = "mem://"
    val_dir: str | None = None
    val_limit: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.frames < 1:
            raise ValueError(f"frames must be >= 1, got {self.frames}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup}")
        if not self.pixels_per_metre > 0:
            raise ValueError(f"pixels_per_metre must be > 0, got {self.pixels_per_metre}")


def _progress(total: int, desc: str, *, enabled: bool) -> Iterator[int]:
    """``range(total)`` with a tqdm bar when tqdm is installed, else a plain one on stderr."""
    if not enabled:
        yield from range(total)
        return
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    if tqdm is not None:
        yield from tqdm(range(total), desc=desc, unit="frame", file=sys.stderr, leave=False)
        return
    step = max(1, total // 20)
    for i in range(total):
        if i % step == 0 or i == total - 1:
            done = (i + 1) * 20 // total
            print(f"\r{desc} [{'#' * done}{'.' * (20 - done)}] {i + 1}/{total}", end="", file=sys.stderr, flush=True)
        yield i
    print(file=sys.stderr)


def software_versions(bundle: Bundle) -> dict[str, str]:
    """Versions that can change a latency: runtime, interpreter, numpy, OpenCV, backend, decoder path."""
    import cv2

    import edgeseg
    from edgeseg.backends import BACKENDS
    from edgeseg.decode import active_path

    return {
        "edgeseg": edgeseg.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "backend": BACKENDS.get(bundle.manifest.format).library_version(),
        "decoder": active_path(),
        "os": f"{platform.system()} {platform.release()}",
    }


def bundle_info(bundle: Bundle, path: str | Path) -> BundleInfo:
    m = bundle.manifest
    model_file = m.files.get(m.model)
    return BundleInfo(
        name=m.name,
        format=m.format,
        precision=m.precision,
        path=str(path),
        model_sha256=model_file.sha256 if model_file else "",
        manifest_sha256=sha256_file(bundle.root / "manifest.json"),
        input_shape=tuple(m.input.shape),
        size_mb=bundle.model_path.stat().st_size / 1e6,
    )


def _read_all(paths: list[Path]) -> None:
    """Reads every image once: fails early on a bad file and fills the page cache."""
    import cv2

    for p in paths:
        if cv2.imread(str(p), cv2.IMREAD_COLOR) is None:
            raise ValueError(f"benchmark image {p} cannot be read (missing, corrupt or unsupported)")


def bench_bundle(
    bundle_path: str | Path,
    paths: list[Path],
    config: DeviceConfig | None = None,
    options: BenchOptions | None = None,
    *,
    config_path: str = "",
    board: BoardInfo | None = None,
) -> BenchRun:
    """Benchmarks one bundle on this machine.

    Args:
        bundle_path: Bundle directory or ``.edgeseg`` file (any format in the backend registry).
        paths: Image files cycled through, in order.
        config: The board's device config (defaults when ``None``).
        options: Frame counts, grasp/hook stages, accuracy.
        config_path: The config's file, recorded in the results.
        board: The board (detected when ``None``).

    Returns:
        The run, with per-stage statistics and the raw per-frame samples.
    """
    import cv2

    from edgeseg.grasp import GraspPlanner
    from edgeseg.hooks import open_hook
    from edgeseg.segmenter import Segmenter

    config = config or DeviceConfig()
    options = options or BenchOptions()
    board = board or detect_board()
    paths = paths[: options.warmup + options.frames]  # frames cycle through these; the rest are never read
    _read_all(paths)
    timestamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    t_load = time.perf_counter()
    bundle = load_bundle(bundle_path)
    seg = Segmenter.from_bundle(bundle, config)
    model_load_ms = (time.perf_counter() - t_load) * 1e3
    info = bundle_info(bundle, bundle_path)
    planner = GraspPlanner.from_device_config(config, pixels_per_metre=options.pixels_per_metre) if options.grasp else None
    hook = open_hook(options.hook_url) if options.hook_url else None

    total = options.warmup + options.frames
    rows = np.zeros((total, len(STAGES) + 1), np.float64)  # ms; last column end to end
    clock = time.perf_counter

    def frame(i: int) -> None:
        t0 = clock()
        image = cv2.imread(str(paths[i % len(paths)]), cv2.IMREAD_COLOR)
        t1 = clock()
        result = seg(image, frame_id=i)
        t2 = clock()
        grasps = planner.plan(result) if planner is not None else []
        t3 = clock()
        result.to_json()
        t4 = clock()
        if hook is not None:
            hook(result, grasps)
        t5 = clock()
        tm = result.timings
        rows[i] = ((t1 - t0) * 1e3, tm.preprocess_ms, tm.infer_ms, tm.decode_ms,
                   (t3 - t2) * 1e3, (t4 - t3) * 1e3, (t5 - t4) * 1e3, (t5 - t0) * 1e3)

    frames = _progress(total, f"{info.name} {info.label}", enabled=options.progress)
    try:
        for i in itertools.islice(frames, options.warmup):
            frame(i)
        with ResourceMonitor() as monitor:
            for i in frames:
                frame(i)
        accuracy = None
        if options.val_dir:
            from edgeseg.metrics import evaluate

            accuracy = asdict(evaluate(seg, options.val_dir, limit=options.val_limit))
    finally:
        if hook is not None:
            hook.close()
        seg.close()
    stats = hook.stats if hook is not None else None
    hook_delivery = {k: getattr(stats, k) for k in ("submitted", "delivered", "dropped", "failed")} if stats else {}

    timed = rows[options.warmup :]
    e2e = timed[:, -1]
    stage_sum = timed[:, :-1].sum()
    names = (*STAGES, END_TO_END)
    post = timed[:, [STAGES.index(s) for s in POSTPROCESS]].sum(axis=1)
    infer = timed[:, STAGES.index("infer")]
    return BenchRun(
        timestamp=timestamp,
        board=board,
        config_name=config.name,
        config_path=config_path,
        config=asdict(config),
        bundle=info,
        software=software_versions(bundle),
        backend_device=str(getattr(seg.backend, "device", "?")),
        images=str(paths[0].parent) if len({p.parent for p in paths}) == 1 else f"{len(paths)} files",
        image_count=len(paths),
        frames=options.frames,
        warmup=options.warmup,
        model_load_ms=model_load_ms,
        first_frame_ms=float(rows[0, -1]),
        stages={name: LatencyStats.of(timed[:, k]) for k, name in enumerate(names)},
        unaccounted_pct=float(100.0 * (e2e.sum() - stage_sum) / e2e.sum()),
        fps=float(1000.0 / e2e.mean()),
        resources=monitor.usage,
        accuracy=accuracy,
        hook_delivery=hook_delivery,
        samples_ms={name: tuple(round(float(v), 4) for v in timed[:, k]) for k, name in enumerate(names)},
        postprocess_pct=float(np.median(100.0 * post / np.maximum(infer, 1e-9))),
    )


def bench_bundles(
    bundles: list[str | Path],
    paths: list[Path],
    config: DeviceConfig | None = None,
    options: BenchOptions | None = None,
    *,
    config_path: str = "",
    board: BoardInfo | None = None,
) -> list[BenchRun]:
    """Benchmarks several bundles one after the other under the same config (side by side).

    The process is pinned to the config's ``cpu_affinity`` first, so every
    bundle runs on the same cores.
    """
    config = config or DeviceConfig()
    cores = apply_cpu_affinity(config.backend)
    log.info("benchmarking %d bundle(s) on %s, cores %s", len(bundles), config.name, list(cores))
    board = board or detect_board()
    return [bench_bundle(b, paths, config, options, config_path=config_path, board=board) for b in bundles]
