"""Latency per board: the benchmark harness, its results store and reports.

Usage::

    from edgeseg.bench import BenchOptions, bench_bundles, save_run
    from edgeseg.sources import list_images
    runs = bench_bundles(["bundles/edgeseg-nano-onnx"], list_images(["edgeseg/assets/samples"]),
                         options=BenchOptions(frames=200, warmup=10))
    for run in runs:
        print(run.bundle.label, run.stages["end_to_end"].p50_ms, save_run(run, "benchmarks/results"))

Command line: ``edgeseg bench BUNDLE... --device auto`` and
``edgeseg bench report benchmarks/results --out benchmarks/report``.
"""

from edgeseg.bench.harness import BenchOptions, bench_bundle, bench_bundles
from edgeseg.bench.results import END_TO_END, STAGES, BenchRun, LatencyStats, load_results, save_run

__all__ = [
    "END_TO_END",
    "STAGES",
    "BenchOptions",
    "BenchRun",
    "LatencyStats",
    "bench_bundle",
    "bench_bundles",
    "load_results",
    "save_run",
]
