"""``export_bundles``: one PyTorch model -> one verified bundle per format + parity report.

The order is chosen so that every mistake a user can make fails in seconds,
before any conversion: wrong forward outputs, unknown format names, missing
or unreadable calibration/validation folders, bundles that would be
overwritten without ``force``. Then each format is written; int8 formats go
through the mixed-precision search (:mod:`export.sensitivity`) when a
validation set gives it an accuracy gate to meet. Finally every bundle is
measured through the runtime (:mod:`export.accuracy`), the report is written
next to the bundles, and formats over the gate raise :class:`GateError`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edgeseg.bundle import MANIFEST_NAME, Bundle, load_bundle
from edgeseg.device_config import BackendOptions, DeviceConfig
from edgeseg.segmenter import load as load_segmenter
from export.accuracy import (
    Accuracy,
    canonical_outputs,
    evaluate,
    latency_ms,
    output_deviation,
    read_image,
    torch_segmenter,
)
from export.bundler import build_manifest, input_spec
from export.calibration import CalibrationSet, list_images
from export.formats import FORMATS, ExportJob, ExportOptions, check_float_layers, export_format, parse_formats
from export.onnx_export import check_outputs
from export.parity import FormatResult, ParityReport, check_gate, drop, write_report
from export.sensitivity import float_layer_schedule, layer_sensitivity, output_layers, search_float_layers
from export.spec import ModelSpec

log = logging.getLogger(__name__)

#: Calibration images on which outputs are compared against PyTorch in the report.
DEVIATION_IMAGES = 64


def bundle_dir(out: Path, spec: ModelSpec, name: str) -> Path:
    """Where format ``name`` of ``spec`` is written: ``OUT/<model>-<format>``."""
    return Path(out) / f"{spec.name}-{name}"


def _preflight(model: torch.nn.Module, spec: ModelSpec, names: list[str], out: Path, *, calib, val, force: bool,
               float_layers=()) -> None:
    """Every check that needs no conversion; raises ValueError naming the problem."""
    refused = getattr(model, "unsupported_converters", {})
    for n in names:
        if FORMATS[n].module in refused:
            raise ValueError(f"format {n!r} is not available for this model: {refused[FORMATS[n].module]}")
    h, w = spec.imgsz
    with torch.no_grad():
        check_outputs(model.eval()(torch.rand(1, 3, h, w)), spec)
    check_float_layers(model, float_layers)
    if any(FORMATS[n].quantized for n in names) and calib is None:
        int8 = [n for n in names if FORMATS[n].quantized]
        raise ValueError(f"formats {int8} need calibration images: pass --calib DIR (a folder of real images)")
    if val is not None:
        if not (Path(val) / "annotations.json").is_file():
            raise ValueError(f"validation set {val} needs annotations.json (COCO) and its images")
        list_images(val)
    existing = [str(bundle_dir(out, spec, n)) for n in names if (bundle_dir(out, spec, n) / MANIFEST_NAME).exists()]
    if existing and not force:
        raise ValueError(f"bundles already exist: {existing}; pass --force (force=True) to overwrite them")


def _install(candidate: Bundle, final: Path) -> Bundle:
    """Moves a candidate bundle directory to its final place, replacing an old bundle."""
    if final.exists():
        shutil.rmtree(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(candidate.root), str(final))
    return load_bundle(final)


@dataclass(frozen=True)
class Reference:
    """PyTorch through the runtime's pre/post-processing: what every format is held to.

    Attributes:
        segmenter: The PyTorch model behind the runtime's preprocessor and decoder.
        accuracy: Its mAP on the validation set (``None`` without one).
        latency_ms: Its inference ``(median, p90)``.
        probe: Image timed for latency.
        images: Images compared output by output (calibration images first).
        outputs: Its canonical outputs on ``images``.
    """

    segmenter: torch_segmenter
    accuracy: Accuracy | None
    latency_ms: tuple[float, float]
    probe: np.ndarray
    images: tuple[Path, ...]
    outputs: tuple[dict, ...]


def _reference(model, spec: ModelSpec, calibration: CalibrationSet | None, val, options: ExportOptions) -> Reference:
    seg = torch_segmenter(model, build_manifest(spec, fmt="onnx", precision="fp32", model_file="model.onnx"))
    images = calibration.files if calibration is not None else list_images(val) if val is not None else []
    images = images[:DEVIATION_IMAGES]
    # Latency needs any image of the right kind; without folders, a letterbox-grey frame.
    probe = read_image(images[0]) if images else np.full((*spec.imgsz, 3), 114, np.uint8)
    # Timed first, before any onnxruntime / LiteRT thread pool exists in this process.
    latency = latency_ms(seg, probe, options.latency_runs)
    accuracy = evaluate(seg, val, desc="evaluating pytorch") if val is not None else None
    outputs = tuple(canonical_outputs(seg, read_image(p)) for p in images)
    return Reference(seg, accuracy, latency, probe, tuple(images), outputs)


def export_bundles(
    model: torch.nn.Module,
    spec: ModelSpec,
    formats: str | Sequence[str],
    out: str | Path,
    *,
    calib: str | Path | None = None,
    val: str | Path | None = None,
    imgsz: int | None = None,
    options: ExportOptions | None = None,
    force: bool = False,
    enforce_gate: bool = True,
    command: str = "",
) -> ParityReport:
    """Exports ``model`` to every format in ``formats`` and writes the parity report.

    Args:
        model: PyTorch module (BN folded); ``forward(x (1, 3, H, W))`` returns
            the outputs ``spec.output_names`` in order (see README
            "Exporting your own model").
        spec: Model description.
        formats: ``"onnx,onnx-int8,tflite,..."`` or a list of names.
        out: Output directory; bundles go to ``OUT/<model>-<format>``,
            the report to ``OUT/parity.{json,md}``.
        calib: Folder of calibration images (required for int8 formats).
        val: COCO validation set (``annotations.json`` + images) for mAP.
        imgsz: Square export size, overriding ``spec.imgsz``.
        options: Quantization and report settings (defaults: :class:`ExportOptions`).
        force: Overwrite existing bundles.
        enforce_gate: Raise :class:`~export.parity.GateError` when a format's
            mask mAP drop exceeds ``options.gate``.
        command: The command line, recorded in the report.

    Returns:
        The parity report (also written to ``out``).
    """
    names = parse_formats(formats)
    options = options or ExportOptions()
    with _torch_threads(options.threads):
        return _export_bundles(model, spec, names, Path(out), calib, val, imgsz, options, force, enforce_gate, command)


@contextlib.contextmanager
def _torch_threads(n: int):
    """Runs the block with ``n`` PyTorch intra-op threads (0: unchanged), restoring the old count."""
    old = torch.get_num_threads()
    if n > 0:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _export_bundles(model, spec, names, out, calib, val, imgsz, options, force, enforce_gate, command) -> ParityReport:
    if imgsz is not None:
        spec = dataclasses.replace(spec, imgsz=(int(imgsz), int(imgsz)))
    model = model.eval()
    _preflight(model, spec, names, out, calib=calib, val=val, force=force, float_layers=options.float_layers)
    out.mkdir(parents=True, exist_ok=True)
    calibration = None
    if calib is not None:
        calibration = CalibrationSet(calib, input_spec(spec), limit=options.calibration_limit)
        if any(FORMATS[n].quantized for n in names):
            calibration.warn_if_small("int8 quantization")
    ref = _reference(model, spec, calibration, val, options)
    job = ExportJob(model, spec, options, calibration, frozenset(options.float_layers))
    search = _MixedPrecisionSearch(job, ref, val) if val is not None else None
    results = []
    for i, name in enumerate(names, 1):  # one progress bar per long step inside, no bar around them
        log.info("format %d/%d: %s", i, len(names), name)
        with tempfile.TemporaryDirectory(dir=out, prefix=".tmp-") as tmp:
            if FORMATS[name].quantized and search is not None:
                candidate, accuracy, steps = search.run(name, Path(tmp))
            else:
                candidate, accuracy, steps = export_format(name, job, Path(tmp) / name), None, ()
            bundle = _install(candidate, bundle_dir(out, spec, name))
        results.append(_measure(name, bundle, ref, accuracy, val, options, steps))
    report = ParityReport(
        model=spec.name,
        imgsz=spec.imgsz,
        command=command,
        gate=options.gate,
        val=None if val is None else str(val),
        calibration_images=0 if calibration is None else len(calibration),
        deviation_images=len(ref.images),
        pytorch=ref.accuracy,
        pytorch_latency_ms=ref.latency_ms,
        formats=tuple(_with_size_ratios(results)),
    )
    js, md = write_report(report, out)
    log.info("parity report: %s, %s", md, js)
    if enforce_gate:
        check_gate(report)
    return report


class _MixedPrecisionSearch:
    """Keeps in float what int8 breaks, until the mask mAP gate passes (see :mod:`export.sensitivity`).

    Full int8 first; if it fails, its per-output error on the calibration
    images orders the outputs, whose head layers go to float one output at a
    time, then the most sensitive layers of the per-layer ranking. The
    ranking and head layers depend on the model only and are computed once.
    """

    #: Calibration images on which a failed candidate's per-output error is measured.
    OUTPUT_ERROR_IMAGES = 16

    def __init__(self, job: ExportJob, ref: Reference, val) -> None:
        self.job, self.ref, self.val = job, ref, val
        self._ranking: list[str] | None = None
        self._heads: dict[str, list[str]] | None = None

    def ranking(self) -> list[str]:
        if self._ranking is None:
            tensors = self.job.calibration.head(self.job.options.sensitivity_images)
            ranked = layer_sensitivity(self.job.model, self.job.spec.output_roles, tensors)
            log.info("most int8-sensitive layers: %s", [(s.name, round(s.score, 3)) for s in ranked[:5]])
            self._ranking = [s.name for s in ranked]
        return self._ranking

    def heads(self) -> dict[str, list[str]]:
        if self._heads is None:
            sample = torch.from_numpy(self.job.calibration.head(1)[0])
            self._heads = output_layers(self.job.model, self.job.spec.output_roles, sample)
        return self._heads

    def run(self, name: str, tmp: Path) -> tuple[Bundle, Accuracy, tuple[dict, ...]]:
        opts = self.job.options
        measured: dict[Path, Accuracy] = {}

        def build(layers: frozenset[str]) -> Bundle:
            job = dataclasses.replace(self.job, float_layers=layers)
            return export_format(name, job, tmp / f"{name}-{len(layers)}")

        def check(bundle: Bundle) -> tuple[bool, dict]:
            with _open(bundle, opts) as seg:
                measured[bundle.root] = acc = evaluate(seg, self.val, desc=f"evaluating {name}")
            mask_drop, box_drop = drop(self.ref.accuracy, acc)
            return mask_drop <= opts.gate, {"mask_drop": round(mask_drop, 2), "box_drop": round(box_drop, 2)}

        forced = tuple(opts.float_layers)
        first, steps = search_float_layers(build, check, [forced])
        if not steps[0].passed:
            n = self.OUTPUT_ERROR_IMAGES
            with _open(first, opts) as seg:
                error = output_deviation(seg, self.ref.images[:n], self.ref.outputs[:n], desc=f"output error {name}")
            worst = sorted(error, key=lambda role: -error[role]["rel_rms"])
            steps[0].metrics["output_rel_rms"] = {r: round(error[r]["rel_rms"], 4) for r in worst}
            groups = [self.heads()[role] for role in worst]
            schedule = float_layer_schedule(forced, groups, self.ranking(), opts.max_float_layers)[1:]
            if schedule:
                first, more = search_float_layers(build, check, schedule)
                steps += more
        return first, measured[first.root], tuple(dataclasses.asdict(s) for s in steps)


def _open(bundle: Bundle, options: ExportOptions):
    """The runtime's segmenter for ``bundle`` with the report's thread count."""
    return load_segmenter(bundle, DeviceConfig(backend=BackendOptions(threads=options.threads)))


def _measure(name: str, bundle: Bundle, ref: Reference, accuracy, val, options: ExportOptions, steps) -> FormatResult:
    """Measures one installed bundle through the runtime."""
    seg = _open(bundle, options)
    try:
        if accuracy is None and val is not None:
            accuracy = evaluate(seg, val, desc=f"evaluating {name}")
        mask_drop, box_drop = drop(ref.accuracy, accuracy)
        return FormatResult(
            name=name,
            bundle=str(bundle.root),
            precision=bundle.manifest.precision,
            size_bytes=bundle.model_path.stat().st_size,
            size_ratio=None,
            accuracy=accuracy,
            mask_drop=mask_drop,
            box_drop=box_drop,
            latency_ms=latency_ms(seg, ref.probe, options.latency_runs),
            deviation=output_deviation(seg, ref.images, ref.outputs, desc=f"deviation {name}"),
            float_layers=tuple(bundle.manifest.provenance.get("quantization", {}).get("float_layers", ())),
            search=steps,
            passed=mask_drop is None or mask_drop <= options.gate,
        )
    finally:
        seg.close()


def _with_size_ratios(results: list[FormatResult]) -> list[FormatResult]:
    """Fills ``size_ratio`` against the fp32 file of the same family (``onnx`` / ``tflite``)."""
    fp32 = {r.name.split("-")[0]: r.size_bytes for r in results if FORMATS[r.name].precision == "fp32"}
    out = []
    for r in results:
        base = fp32.get(r.name.split("-")[0])
        out.append(dataclasses.replace(r, size_ratio=None if base is None else r.size_bytes / base))
    return out
