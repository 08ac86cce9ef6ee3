"""The accuracy parity report: how much each exported format still segments.

For each format: file size (and its ratio to the same family's fp32 file),
mask and box mAP50-95 on the validation set through the runtime, the drop
against PyTorch, inference latency median/p90 on this machine, the largest
output deviation against PyTorch on the calibration images, and for int8 the
layers kept in float and the search that chose them. Written as
``parity.json`` and ``parity.md`` next to the bundles. A format whose mask
mAP drop exceeds the gate is marked failed; :func:`check_gate` raises
:class:`GateError` naming every failed format.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

from export.accuracy import Accuracy


class GateError(RuntimeError):
    """One or more formats lost more mask mAP than the gate allows."""


@dataclass(frozen=True)
class FormatResult:
    """Parity figures of one exported format.

    Attributes:
        name: ``--formats`` name (``onnx-int8`` ...).
        bundle: Bundle directory.
        precision: Manifest precision (``fp32``/``fp16``/``int8``/``mixed``).
        size_bytes: Model file size.
        size_ratio: ``size_bytes`` / the same family's fp32 size, if exported.
        accuracy: mAP on the validation set (``None`` without ``--val``).
        mask_drop: PyTorch mask mAP minus this format's, in points.
        box_drop: PyTorch box mAP minus this format's, in points.
        latency_ms: Inference ``(median, p90)`` in ms.
        deviation: Role -> ``{"max_abs", "rel_rms"}`` against PyTorch.
        float_layers: Layers kept in float (int8 formats).
        search: Mixed-precision search steps (int8 formats).
        passed: ``False`` when ``mask_drop`` exceeds the gate.
    """

    name: str
    bundle: str
    precision: str
    size_bytes: int
    size_ratio: float | None
    accuracy: Accuracy | None
    mask_drop: float | None
    box_drop: float | None
    latency_ms: tuple[float, float]
    deviation: dict[str, dict[str, float]]
    float_layers: tuple[str, ...] = ()
    search: tuple[dict, ...] = ()
    passed: bool = True


@dataclass(frozen=True)
class ParityReport:
    """Everything one export run measured.

    Attributes:
        model: Model name.
        imgsz: ``(height, width)``.
        command: The command line that produced the report.
        gate: Allowed mask mAP drop, in points.
        val: Validation folder (``None``: no mAP measured).
        calibration_images: Calibration images used.
        deviation_images: Images on which outputs were compared against PyTorch.
        pytorch: PyTorch accuracy through the runtime's pre/post-processing.
        pytorch_latency_ms: PyTorch ``(median, p90)`` inference time.
        formats: One entry per exported format.
        machine: Where it was measured.
    """

    model: str
    imgsz: tuple[int, int]
    command: str
    gate: float
    val: str | None
    calibration_images: int
    deviation_images: int
    pytorch: Accuracy | None
    pytorch_latency_ms: tuple[float, float]
    formats: tuple[FormatResult, ...]
    machine: dict = field(default_factory=lambda: machine_info())
    #: What ``pytorch`` measured: the PyTorch model (export) or the float model (import).
    reference: str = "PyTorch"

    @property
    def passed(self) -> bool:
        """Whether every format held the gate."""
        return all(f.passed for f in self.formats)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_markdown(self) -> str:
        return render_markdown(self)


def machine_info() -> dict:
    """CPU model, core count, OS and Python of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "os": platform.platform(), "python": platform.python_version()}


def drop(reference: Accuracy | None, got: Accuracy | None) -> tuple[float | None, float | None]:
    """``(mask drop, box drop)`` in points, ``None`` without accuracy."""
    if reference is None or got is None:
        return None, None
    return reference.mask_map - got.mask_map, reference.box_map - got.box_map


def _f(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def render_markdown(r: ParityReport) -> str:
    """The report as a Markdown document (tables a person reads)."""
    h, w = r.imgsz
    lines = [
        f"# Parity report: {r.model} at {w}x{h}",
        "",
        f"Made by: `{r.command}`" if r.command else "Made by: the Python API (`export.export_bundles`).",
        "",
        f"Machine: {r.machine['cpu']}, {r.machine['cores']} cores, {r.machine['os']}, Python {r.machine['python']}.",
        f"Validation set: {r.val or 'none (no mAP measured)'}; calibration images: {r.calibration_images}; "
        f"gate: mask mAP drop <= {r.gate} points.",
        "",
        "| format | precision | size MB | size / fp32 | mask mAP | box mAP | mask drop | box drop | "
        "infer ms (median / p90) | gate |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    pt = r.pytorch
    lines.append(
        f"| {r.reference} | fp32 | | | {_f(pt and pt.mask_map)} | {_f(pt and pt.box_map)} | | | "
        f"{r.pytorch_latency_ms[0]:.1f} / {r.pytorch_latency_ms[1]:.1f} | |"
    )
    for f in r.formats:
        acc = f.accuracy
        ratio = "" if f.size_ratio is None else f"{100 * f.size_ratio:.1f}%"
        lines.append(
            f"| {f.name} | {f.precision} | {f.size_bytes / 1e6:.2f} | {ratio} | {_f(acc and acc.mask_map)} | "
            f"{_f(acc and acc.box_map)} | {_f(f.mask_drop, 2)} | {_f(f.box_drop, 2)} | "
            f"{f.latency_ms[0]:.1f} / {f.latency_ms[1]:.1f} | {'pass' if f.passed else '**FAIL**'} |"
        )
    roles = sorted({role for f in r.formats for role in f.deviation})
    lines += [
        "",
        f"Largest absolute output deviation against {r.reference} on {r.deviation_images} calibration images "
        "(relative RMS in brackets; outputs in the decoder's layout, dequantized):",
        "",
        "| format | " + " | ".join(roles) + " |",
        "|---|" + "---|" * len(roles),
    ]
    for f in r.formats:
        cells = [f"{f.deviation[ro]['max_abs']:.3g} ({f.deviation[ro]['rel_rms']:.2g})" for ro in roles]
        lines.append(f"| {f.name} | " + " | ".join(cells) + " |")
    for f in r.formats:
        if f.search:
            lines += ["", f"Mixed-precision search for {f.name}:", ""]
            for step in f.search:
                layers = ", ".join(step["float_layers"]) or "none"
                lines.append(f"* float layers: {layers} -> {'pass' if step['passed'] else 'fail'} {step['metrics']}")
    return "\n".join(lines) + "\n"


def write_report(report: ParityReport, out_dir: str | Path) -> tuple[Path, Path]:
    """Writes ``parity.json`` and ``parity.md`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    js, md = out / "parity.json", out / "parity.md"
    js.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    md.write_text(report.to_markdown())
    return js, md


def check_gate(report: ParityReport) -> None:
    """Raises :class:`GateError` listing every format whose mask mAP drop exceeds the gate."""
    failed = [f for f in report.formats if not f.passed]
    if failed:
        items = ", ".join(f"{f.name} (drop {f.mask_drop:.2f})" for f in failed)
        raise GateError(f"accuracy gate of {report.gate} mask mAP points failed for {items}")
