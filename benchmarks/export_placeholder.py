"""Exports the placeholder edgeseg-nano (untrained, width 8, 320 px) in every export format.

Latency does not depend on the weights, so until trained weights ship this
gives every format of the default model's architecture to benchmark. With
trained weights use ``edgeseg export WEIGHTS --formats ... --calib DIR`` instead.

Usage (workstation, needs the export extra)::

    python benchmarks/export_placeholder.py --calib data/synth/train/images --out out/bundles
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import edgeseg
from export.calibration import CalibrationSet
from export.formats import FORMATS, ExportJob, ExportOptions, export_format, parse_formats
from export.models import NanoConfig, build_nano, fuse_bn
from export.spec import spec_for_nano


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calib", type=Path, required=True, help="folder of calibration images (int8 formats)")
    p.add_argument("--calib-limit", type=int, default=32, help="calibration images used (default: 32)")
    p.add_argument("--formats", default=",".join(FORMATS), help=f"comma-separated, from {', '.join(FORMATS)}")
    p.add_argument("--out", type=Path, default=Path("out/bundles"), help="bundles go to OUT/edgeseg-nano-<format>")
    args = p.parse_args()

    torch.manual_seed(0)
    cfg = NanoConfig(width=8, imgsz=320)
    model = fuse_bn(build_nano(cfg)).eval()
    spec = spec_for_nano(cfg, source="placeholder: untrained edgeseg-nano width 8, torch.manual_seed(0)")
    input_spec = edgeseg.load_bundle(edgeseg.DEFAULT_BUNDLE).manifest.input
    calib = CalibrationSet(args.calib, input_spec, limit=args.calib_limit)
    job = ExportJob(model=model, spec=spec, options=ExportOptions(calibration_limit=args.calib_limit), calibration=calib)
    for name in parse_formats(args.formats):
        bundle = export_format(name, job, args.out / f"edgeseg-nano-{name}")
        print(f"{name:12s} {bundle.root} ({bundle.manifest.format} {bundle.manifest.precision})")


if __name__ == "__main__":
    main()
