"""Reports across runs: a Markdown table (boards x formats x stages) and PNG plots.

matplotlib is imported only when plotting (``pip install 'edgeseg[bench]'``),
with the non-interactive Agg backend so a headless board can draw.

Plots:
    * ``stages.png``: per-stage latency bars (height p50) with whiskers up to
      p99, one bar per board and bundle, log-scaled milliseconds.
    * ``distribution.png``: each run's end-to-end latency distribution
      (violin + median/p99 marks) and its per-frame trace, which shows warm-up
      drift or thermal throttling as a slope.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgeseg.bench.results import END_TO_END, STAGES, BenchRun

COLUMNS = (*STAGES, END_TO_END)


def bundle_labels(runs: list[BenchRun]) -> list[str]:
    """``onnx-fp32`` per run, plus the model name when runs differ in it, plus the
    bundle's folder name where that still leaves two runs of one board alike."""
    with_name = len({r.bundle.name for r in runs}) > 1
    labels = [f"{r.bundle.name + ' ' if with_name else ''}{r.bundle.label}" for r in runs]
    keys = [(r.board.id, lab) for r, lab in zip(runs, labels, strict=True)]
    return [f"{lab} ({Path(r.bundle.path).name})" if keys.count(key) > 1 else lab
            for lab, key, r in zip(labels, keys, runs, strict=True)]


def run_labels(runs: list[BenchRun]) -> list[str]:
    """``x86-cpu · onnx-fp32``: board and bundle, how plots and notes name a run."""
    return [f"{r.board.id} · {lab}" for r, lab in zip(runs, bundle_labels(runs), strict=True)]


def _ms(v: float) -> str:
    return f"{v:.3f}" if v < 0.1 else f"{v:.2f}" if v < 10 else f"{v:.1f}"


def _cell(stats) -> str:
    return "–" if stats is None else f"{_ms(stats.p50_ms)} / {_ms(stats.p99_ms)}"


def markdown_table(runs: list[BenchRun]) -> str:
    """One row per run: each stage as ``p50 / p99`` ms, then throughput and resources.

    The machine each row was measured on is in its board and CPU columns; a
    footnote lists the software of every run.
    """
    if not runs:
        raise ValueError("no benchmark runs to report")
    head = ["board", "config", "bundle", "ran on", *[c.replace("_", "-") for c in COLUMNS], "post / infer %",
            "FPS", "load ms", "1st frame ms", "peak RSS MiB", "CPU %", "unacc. %", "mask mAP"]
    lines = [
        "Stage cells: p50 / p99 latency per frame in ms over the timed frames; "
        "CPU % is of one core; unacc. % is end-to-end time no stage owns; post / infer % is the median "
        "per-frame share (decode + grasp + serialize) / infer ('–': not timed by that version); "
        "mask mAP is mAP50-95 in points (0-100), as in the export's parity report.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] * 4 + ["---:"] * (len(head) - 4)) + "|",
    ]
    for r, bundle in zip(runs, bundle_labels(runs), strict=True):
        mAP = f"{100 * r.accuracy['mask_map']:.1f}" if r.accuracy and "mask_map" in r.accuracy else "–"
        cells = [
            f"{r.board.id} ({r.board.model})",
            f"{r.config_name} (`{r.config_path}`)" if r.config_path else f"{r.config_name} (defaults)",
            bundle if len({x.bundle.name for x in runs}) > 1 else f"{r.bundle.name} {bundle}",
            r.backend_device,
            *[_cell(r.stage(c)) for c in COLUMNS],
            "–" if r.postprocess_pct is None else f"{r.postprocess_pct:.1f}",
            f"{r.fps:.1f}",
            f"{r.model_load_ms:.0f}",
            f"{r.first_frame_ms:.1f}",
            f"{r.resources.peak_rss_mb:.0f}",
            f"{r.resources.cpu_percent:.0f}",
            f"{r.unaccounted_pct:.1f}",
            mAP,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for r, label in zip(runs, run_labels(runs), strict=True):
        temps = ", ".join(f"{k} {lo:.0f}-{hi:.0f} °C" for k, (lo, hi) in r.resources.temperatures_c.items())
        throttle = "; ".join(r.resources.throttling) or "none seen"
        lines.append(
            f"* {label}: {r.frames} frames after {r.warmup} warm-up over {r.image_count} images, "
            f"{r.timestamp}, config `{r.config_name}`, {r.board.cpu_model or r.board.model} "
            f"({r.board.cores} cores); {', '.join(f'{k} {v}' for k, v in r.software.items())}; "
            f"load average up to {r.resources.load_avg:.1f}; "
            f"temperatures: {temps or 'not exposed'}; throttling: {throttle}."
        )
    return "\n".join(lines) + "\n"


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'edgeseg[bench]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_stages(runs: list[BenchRun], path: str | os.PathLike) -> Path:
    """Grouped bars: x = stage, one bar per run at its p50, whisker to its p99 (ms, log scale)."""
    import numpy as np

    plt = _pyplot()
    n = len(runs)
    x = np.arange(len(COLUMNS))
    width = 0.8 / n
    fig, ax = plt.subplots(figsize=(min(16.0, 6.0 + 0.25 * n * len(COLUMNS)), 5.0), dpi=120)
    for k, (r, label) in enumerate(zip(runs, run_labels(runs), strict=True)):
        p50 = np.array([r.stages[c].p50_ms if c in r.stages else np.nan for c in COLUMNS])
        p99 = np.array([r.stages[c].p99_ms if c in r.stages else np.nan for c in COLUMNS])
        xs = x - 0.4 + width * (k + 0.5)
        bars = ax.bar(xs, p50, width, label=label, yerr=[np.zeros_like(p50), p99 - p50],
                      capsize=3, error_kw={"elinewidth": 1, "ecolor": "0.25"})
        if n <= 3:  # more bars than that: the numbers are in the table
            for b, v in zip(bars, p50, strict=True):
                ax.annotate(_ms(v), (b.get_x(), v), xytext=(1, 2), textcoords="offset points",
                            ha="left", va="bottom", fontsize=7)
    ax.set_yscale("log")
    ax.set_xticks(x, [c.replace("_", "-") for c in COLUMNS])
    ax.set_xlabel("pipeline stage")
    ax.set_ylabel("latency per frame (ms, log scale)")
    ax.set_title("Per-stage latency: bar = p50, whisker = p99")
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.set_ylim(bottom=min(r.stages[c].p50_ms for r in runs for c in COLUMNS if c in r.stages) / 3)
    ax.legend(fontsize=8, title="board · bundle", title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out)
    plt.close(fig)
    return out


def plot_distribution(runs: list[BenchRun], path: str | os.PathLike) -> Path:
    """Left: end-to-end latency violins per run (p50 and p99 marked). Right: latency per frame."""
    import numpy as np

    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(15, 5.0), dpi=120, gridspec_kw={"width_ratios": [1, 1.4]})
    data = [np.asarray(r.samples_ms[END_TO_END]) for r in runs]
    labels = run_labels(runs)
    pos = np.arange(1, len(runs) + 1)
    colors = [f"C{k % 10}" for k in range(len(runs))]  # the same colour per run in both panels
    parts = left.violinplot(data, positions=pos, showextrema=False)
    for body, color in zip(parts["bodies"], colors, strict=True):
        body.set_facecolor(color)
        body.set_alpha(0.5)
    for p, d in zip(pos, data, strict=True):
        p50, p99 = np.percentile(d, [50, 99])
        left.hlines(p50, p - 0.25, p + 0.25, color="k", lw=2, label="p50" if p == 1 else None)
        left.hlines(p99, p - 0.25, p + 0.25, color="tab:red", lw=1.5, ls="--", label="p99" if p == 1 else None)
    left.set_xticks(pos, labels, rotation=30, ha="right", fontsize=8)
    left.set_ylabel("end-to-end latency per frame (ms)")
    left.set_title("Latency distribution per run")
    left.grid(axis="y", alpha=0.3)
    left.legend(fontsize=8)
    for d, label, color in zip(data, labels, colors, strict=True):
        right.plot(np.arange(len(d)), d, lw=0.8, label=label, color=color)
    right.set_xlabel("timed frame (after warm-up)")
    right.set_ylabel("end-to-end latency (ms)")
    right.set_title("Latency per frame (drift = warm-up or throttling)")
    right.grid(alpha=0.3)
    right.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out)
    plt.close(fig)
    return out


def write_report(runs: list[BenchRun], out_dir: str | os.PathLike, *, plots: bool = True) -> dict[str, Path]:
    """Writes ``report.md`` (table + plot links) and, with ``plots``, ``stages.png`` and ``distribution.png``.

    Returns:
        Name -> written path.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    text = "# Benchmark report\n\n" + markdown_table(runs)
    if plots:
        written["stages"] = plot_stages(runs, out / "stages.png")
        written["distribution"] = plot_distribution(runs, out / "distribution.png")
        text += "\n![per-stage latency](stages.png)\n\n![latency distribution](distribution.png)\n"
    written["report"] = out / "report.md"
    written["report"].write_text(text)
    return written
