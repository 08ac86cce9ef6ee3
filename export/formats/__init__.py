"""Export formats: one small module per format family, chosen by name.

:data:`FORMATS` maps a user-facing format name (``--formats``) to the module
that writes it and the precision it asks for. Every module has
``export(job, precision, out_dir) -> Bundle``; int8 modules additionally
honour ``job.float_layers`` (PyTorch module names kept in float), which the
mixed-precision search in :mod:`export.sensitivity` grows until the accuracy
gate passes. Nothing outside this package branches on a format name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from edgeseg.registry import Registry, resolve

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from edgeseg.bundle import Bundle
    from export.calibration import CalibrationSet
    from export.spec import ModelSpec

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")


@dataclass(frozen=True)
class FormatInfo:
    """What one ``--formats`` name means.

    Attributes:
        module: Module with ``export(job, precision, out_dir)``.
        precision: ``fp32``, ``fp16`` or ``int8``.
    """

    module: str
    precision: str

    @property
    def quantized(self) -> bool:
        """Whether the format needs calibration images (int8)."""
        return self.precision == "int8"


#: ``--formats`` name -> how it is made. Bundles are written to ``OUT/<model>-<name>``.
FORMATS: Registry[FormatInfo] = Registry(
    "export format",
    {
        "onnx": FormatInfo("export.formats.onnx", "fp32"),
        "onnx-fp16": FormatInfo("export.formats.onnx", "fp16"),
        "onnx-int8": FormatInfo("export.formats.onnx_int8", "int8"),
        "tflite": FormatInfo("export.formats.tflite", "fp32"),
        "tflite-fp16": FormatInfo("export.formats.tflite", "fp16"),
        "tflite-int8": FormatInfo("export.formats.tflite", "int8"),
        # Board-native formats, converted from the fp32 ONNX model (export.formats.from_onnx).
        "openvino": FormatInfo("export.formats.openvino", "fp32"),
        "openvino-int8": FormatInfo("export.formats.openvino", "int8"),
        "ncnn": FormatInfo("export.formats.ncnn", "fp16"),
        "rknn": FormatInfo("export.formats.rknn", "int8"),
    },
)


@dataclass(frozen=True)
class ExportOptions:
    """Settings of one export run (defaults declared here only).

    Attributes:
        calibration_method: ``minmax``, ``entropy`` or ``percentile`` (ONNX
            int8 activation ranges; TFLite PT2E uses min/max observers).
        percentile: Percentile kept by the ``percentile`` method.
        calibration_limit: Use at most this many calibration images.
        gate: Largest allowed mask mAP50-95 drop against PyTorch, in points.
        float_layers: PyTorch module names always kept in float in int8 exports.
        max_float_layers: Most layers the automatic mixed-precision search
            may keep in float before giving up.
        sensitivity_images: Calibration images used to rank layer sensitivity.
        latency_runs: Timed runs per bundle in the parity report.
        threads: Threads for PyTorch and for each bundle's backend during the
            export and the report (0: each library's default). One thread keeps
            timings stable and comparable on a shared machine; PyTorch's
            default pool can be 100x slower when other processes hold the cores.
    """

    calibration_method: str = "minmax"
    percentile: float = 99.999
    calibration_limit: int = 500
    gate: float = 1.0
    float_layers: tuple[str, ...] = ()
    max_float_layers: int = 16
    sensitivity_images: int = 8
    latency_runs: int = 50
    threads: int = 1

    def __post_init__(self) -> None:
        if self.calibration_method not in CALIBRATION_METHODS:
            raise ValueError(
                f"calibration method must be one of {list(CALIBRATION_METHODS)}, got {self.calibration_method!r}"
            )
        if not 0.0 < self.percentile <= 100.0:
            raise ValueError(f"percentile must lie in (0, 100], got {self.percentile}")
        if self.gate < 0 or self.calibration_limit < 1 or self.latency_runs < 1:
            raise ValueError(
                f"gate >= 0, calibration_limit >= 1 and latency_runs >= 1 expected, got {self.gate}, "
                f"{self.calibration_limit}, {self.latency_runs}"
            )


@dataclass(frozen=True)
class ExportJob:
    """Everything a format module needs to write one bundle.

    Attributes:
        model: The PyTorch module, BN folded, eval mode.
        spec: Its description (input size, outputs, classes).
        options: Run settings.
        calibration: Preprocessed calibration images (int8 formats need them).
        float_layers: Module names (as in ``model.named_modules()``) to keep in
            float in an int8 export.
    """

    model: torch.nn.Module
    spec: ModelSpec
    options: ExportOptions = field(default_factory=ExportOptions)
    calibration: CalibrationSet | None = None
    float_layers: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        check_float_layers(self.model, self.float_layers)


def check_float_layers(model: torch.nn.Module, names) -> None:
    """Raises ValueError for float-layer names that are not modules of ``model``.

    A misspelt name would otherwise quantize the layer the user meant to
    keep in float and say nothing.
    """
    modules = dict(model.named_modules())
    unknown = sorted(n for n in names if n not in modules)
    if unknown:
        raise ValueError(f"float layers {unknown} are not modules of the model; use names from model.named_modules()")


def parse_formats(text: str | list[str] | tuple[str, ...]) -> list[str]:
    """Splits and checks a ``--formats`` value.

    Raises:
        ValueError: An unknown name (naming it and the known ones), or none given.
    """
    names = [f.strip() for f in text.split(",")] if isinstance(text, str) else [str(f).strip() for f in text]
    names = [n for n in names if n]
    unknown = [n for n in names if n not in FORMATS]
    if unknown:
        raise ValueError(f"unknown export format(s) {unknown}; choose from {list(FORMATS)}")
    if not names:
        raise ValueError(f"no export format given; choose from {list(FORMATS)}")
    return list(dict.fromkeys(names))


def export_format(name: str, job: ExportJob, out_dir: Path) -> Bundle:
    """Writes the bundle for format ``name`` into ``out_dir`` and returns it."""
    info = FORMATS[name]
    module = resolve(info.module)
    return module.export(job, info.precision, Path(out_dir))
