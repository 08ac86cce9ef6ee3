"""``edgeseg convert``: a float ONNX bundle -> board-native bundles (OpenVINO, ncnn, RKNN) + parity report.

Works on any float ONNX bundle, exported (``edgeseg export --formats onnx``)
or imported (``edgeseg import``). Each format module's ``convert`` writes
``OUT/<name>-<format>``; then every bundle is measured through the runtime
against the float ONNX bundle: size, mask and box mAP50-95 on the
validation set and their drop, inference latency, the largest output
deviation; a format whose mask mAP drop exceeds the gate fails it. The
report (``parity.json``, ``parity.md``) is written into ``OUT``.

The format modules are the export pipeline's (:data:`export.formats.FORMATS`);
only formats made from ONNX have ``convert``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from edgeseg.bundle import Bundle, load_bundle
from edgeseg.device_config import BackendOptions, DeviceConfig
from edgeseg.registry import resolve
from edgeseg.segmenter import Segmenter
from export.formats import FORMATS, parse_formats

log = logging.getLogger(__name__)

#: Calibration images on which outputs are compared against the float model.
DEVIATION_IMAGES = 8


def convertible(name: str) -> bool:
    """Whether ``--formats`` name ``name`` is made from a float ONNX bundle (has ``convert``)."""
    return hasattr(resolve(FORMATS[name].module), "convert")


def default_open(bundle: Bundle, threads: int) -> Segmenter:
    """The runtime's segmenter for ``bundle`` with ``threads`` inference threads."""
    return Segmenter.from_bundle(bundle, DeviceConfig(backend=BackendOptions(threads=threads)))


def convert_bundle(
    src: Bundle | str | Path,
    formats: str | Sequence[str],
    out: str | Path,
    *,
    calib: str | None = None,
    val: str | None = None,
    calib_images: int = 300,
    val_limit: int = 0,
    gate: float = 1.0,
    threads: int = 1,
    latency_runs: int = 30,
    force: bool = False,
    command: str = "",
    open_bundle: Callable[[Bundle, int], Segmenter] = default_open,
    format_options: dict[str, dict] | None = None,
):
    """Converts a float ONNX bundle to each format and writes the parity report.

    Args:
        src: The float ONNX bundle (or its path).
        formats: ``--formats`` names (``openvino``, ``openvino-int8``, ``ncnn``, ``rknn``).
        out: Folder of the new bundles and the report.
        calib: Calibration image folder (int8 formats; also the deviation images).
        val: COCO-format validation set for the mAP gate (none: no mAP measured).
        calib_images: Calibration images used, evenly spaced.
        val_limit: First N validation images (0: all).
        gate: Largest allowed mask mAP50-95 drop, points.
        threads: Inference threads for every measurement.
        latency_runs: Timed inferences per bundle.
        force: Overwrite existing bundles.
        command: Command line recorded in the report.
        open_bundle: ``(bundle, threads) -> Segmenter``; the RKNN simulator
            script passes one that runs RKNNLite's code path on the simulator.
        format_options: Format name -> extra keyword arguments of its
            ``convert`` (the simulator script passes the RKNN session store).

    Returns:
        The :class:`~export.parity.ParityReport`; ``passed`` when every format held the gate.
    """
    from export.accuracy import canonical_outputs, evaluate, latency_ms, output_deviation, read_image
    from export.calibration import CalibrationSet
    from export.parity import FormatResult, ParityReport, drop, write_report

    src = src if isinstance(src, Bundle) else load_bundle(src)
    names = parse_formats(formats)
    wrong = [n for n in names if not convertible(n)]
    if wrong:
        raise ValueError(f"formats {wrong} are not made from ONNX; convert makes {[n for n in FORMATS if convertible(n)]}")
    out = Path(out)
    targets = {n: out / f"{src.manifest.name}-{n}" for n in names}
    existing = [str(p) for p in targets.values() if (p / "manifest.json").exists()]
    if existing and not force:
        raise ValueError(f"{existing} already hold bundles; pass --force to overwrite them")
    if any(FORMATS[n].quantized for n in names) and not calib:
        raise ValueError(f"{[n for n in names if FORMATS[n].quantized]} are int8 and need --calib IMAGES")
    calibration = CalibrationSet(calib, src.manifest.input, limit=calib_images) if calib else None
    deviation_images = calibration.files[:DEVIATION_IMAGES] if calibration else []

    reference = open_bundle(src, threads)
    probe = read_image(deviation_images[0]) if deviation_images else None
    ref_outputs = [canonical_outputs(reference, read_image(p)) for p in deviation_images]
    ref_acc = evaluate(reference, val, desc="evaluating float onnx", limit=val_limit) if val else None
    ref_latency = latency_ms(reference, probe, latency_runs) if probe is not None else (0.0, 0.0)
    reference.close()
    src_size = src.model_path.stat().st_size

    rows = []
    for name in names:
        info = FORMATS[name]
        log.info("converting %s -> %s", src.root, targets[name])
        resolve(info.module).convert(src, info.precision, targets[name], calibration=calibration,
                                     **(format_options or {}).get(name, {}))
        bundle = load_bundle(targets[name])
        seg = open_bundle(bundle, threads)
        try:
            acc = evaluate(seg, val, desc=f"evaluating {name}", limit=val_limit) if val else None
            mask_drop, box_drop = drop(ref_acc, acc)
            size = sum(f.size for f in bundle.manifest.files.values())
            rows.append(FormatResult(
                name=name, bundle=str(targets[name]), precision=bundle.manifest.precision, size_bytes=size,
                size_ratio=size / src_size, accuracy=acc, mask_drop=mask_drop, box_drop=box_drop,
                latency_ms=latency_ms(seg, probe, latency_runs) if probe is not None else (0.0, 0.0),
                deviation=output_deviation(seg, deviation_images, ref_outputs, desc=f"deviation {name}"),
                passed=mask_drop is None or mask_drop <= gate,
            ))
        finally:
            seg.close()
    m = src.manifest
    report = ParityReport(
        model=m.name, imgsz=(m.input.height, m.input.width), command=command or "convert_bundle()", gate=gate,
        val=str(val) if val else None, calibration_images=len(calibration) if calibration else 0,
        deviation_images=len(deviation_images), pytorch=ref_acc, pytorch_latency_ms=ref_latency,
        formats=tuple(rows), reference=f"float ONNX ({src.root.name})",
    )
    write_report(report, out)
    for row in rows:
        if not row.passed:
            log.warning("%s misses the gate: mask mAP drop %.2f > %.2f", row.bundle, row.mask_drop, gate)
    return report
