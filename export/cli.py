"""``edgeseg export`` / ``python -m export``: build bundles and a parity report from a PyTorch model.

Example::

    edgeseg export export/weights/edgeseg-nano.safetensors \\
        --formats onnx,onnx-int8,tflite,tflite-fp16,tflite-int8 \\
        --calib data/calib --val data/val --imgsz 320 --out bundles/ --gate 1.0
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
import warnings
from pathlib import Path

from edgeseg.cli import plain_text
from export.formats import CALIBRATION_METHODS, FORMATS, ExportOptions, parse_formats
from export.parity import GateError

log = logging.getLogger("export")

_DEFAULTS = ExportOptions()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgeseg export", description=plain_text(__doc__),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "model",
        help="edgeseg-nano .safetensors weights, or 'module:function' returning (torch model, export.spec.ModelSpec)",
    )
    p.add_argument("--weights", type=Path,
                   help="state dict (.safetensors / .pt / .pth) for a 'module:function' returning a torchvision MaskRCNN")
    p.add_argument("--classes", help="comma-separated class names of a torchvision MaskRCNN (background excluded)")
    p.add_argument("--name", default="maskrcnn", help="model name of a torchvision MaskRCNN bundle (default: maskrcnn)")
    p.add_argument("--formats", default="onnx", help=f"comma-separated, from {', '.join(FORMATS)} (default: onnx)")
    p.add_argument("--out", type=Path, required=True, help="output directory (one bundle per format + parity report)")
    p.add_argument("--calib", type=Path, help="folder of calibration images (required for int8; a few hundred)")
    p.add_argument("--val", type=Path, help="COCO validation set (annotations.json + images) for mAP and the gate")
    p.add_argument("--imgsz", type=int, help="square input size (default: the model's own)")
    p.add_argument("--gate", type=float, default=_DEFAULTS.gate, help="largest allowed mask mAP50-95 drop vs PyTorch, points")
    p.add_argument("--calib-method", choices=CALIBRATION_METHODS, default=_DEFAULTS.calibration_method,
                   help="ONNX int8 activation range method")
    p.add_argument("--calib-limit", type=int, default=_DEFAULTS.calibration_limit, help="use at most this many calibration images")
    p.add_argument("--float-layers", default="", help="comma-separated module names always kept in float in int8")
    p.add_argument("--max-float-layers", type=int, default=_DEFAULTS.max_float_layers,
                   help="most layers the automatic mixed-precision search may keep in float")
    p.add_argument("--latency-runs", type=int, default=_DEFAULTS.latency_runs, help="timed runs per bundle in the report")
    p.add_argument("--threads", type=int, default=_DEFAULTS.threads,
                   help="threads for PyTorch and the runtimes while exporting and timing (0: library default)")
    p.add_argument("--force", action="store_true", help="overwrite existing bundles")
    p.add_argument("--verbose", action="store_true",
                   help="show the converters' own logs (default: captured in OUT/export.log)")
    return p


def _quiet_converters() -> None:
    """Keeps converter chatter (C++ info logs, deprecation notices) out of the user's terminal."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    warnings.filterwarnings("ignore", category=FutureWarning)
    for name in ("torch.onnx", "torch._export", "torchao", "onnxscript", "onnx_ir"):
        logging.getLogger(name).setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    _quiet_converters()
    args = build_parser().parse_args(argv)
    formats = parse_formats(args.formats)  # unknown names fail before the model is even loaded
    options = ExportOptions(
        calibration_method=args.calib_method,
        calibration_limit=args.calib_limit,
        gate=args.gate,
        float_layers=tuple(n.strip() for n in args.float_layers.split(",") if n.strip()),
        max_float_layers=args.max_float_layers,
        latency_runs=args.latency_runs,
        threads=args.threads,
    )
    from export.chatter import captured
    from export.models.loading import load_model
    from export.pipeline import export_bundles

    classes = tuple(c.strip() for c in args.classes.split(",")) if args.classes else None
    model, spec = load_model(args.model, weights=args.weights, class_names=classes, name=args.name)
    try:
        with captured(args.out, verbose=args.verbose) as log_path:
            report = export_bundles(
                model, spec, formats, args.out, calib=args.calib, val=args.val, imgsz=args.imgsz,
                options=options, force=args.force, command="edgeseg export " + shlex.join(argv),
            )
    except GateError as exc:
        print(f"edgeseg export: FAILED: {exc} (see {args.out / 'parity.md'})", file=sys.stderr)
        return 3
    for f in report.formats:
        acc = "" if f.accuracy is None else f", mask mAP {f.accuracy.mask_map:.1f} (drop {f.mask_drop:+.2f})"
        print(f"wrote {f.name} bundle {f.bundle} ({f.size_bytes / 1e6:.2f} MB{acc})")
    print(f"parity report: {args.out / 'parity.md'}")
    if log_path is not None:
        print(f"converter logs: {log_path} (--verbose shows them here)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
