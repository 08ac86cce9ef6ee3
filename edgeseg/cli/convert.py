"""``edgeseg convert``: a float ONNX bundle -> OpenVINO / ncnn / RKNN bundles and their parity report.

Works on what ``edgeseg export --formats onnx`` or ``edgeseg import`` wrote.
Needs the export extra and the converter of each format: ``openvino``
(openvino + nncf) and ``ncnn`` (pnnx) from the ``openvino`` / ``ncnn``
extras; ``rknn`` from rknn-toolkit2 in its own venv (scripts/rknn_simulator.py).

Examples::

    edgeseg convert bundles/yolov8n-seg --formats openvino,openvino-int8,ncnn --calib data/synth/calib/images \\
        --val data/synth/val --out bundles/
"""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="float ONNX bundle -> OpenVINO / ncnn / RKNN bundles + parity report",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", help="a float ONNX bundle (exported or imported)")
    p.add_argument("--formats", required=True, help="comma-separated: openvino, openvino-int8, ncnn, rknn")
    p.add_argument("--out", required=True, help="folder for OUT/<name>-<format> and parity.md / parity.json")
    p.add_argument("--calib", help="folder of calibration images (int8 formats; also the deviation images)")
    p.add_argument("--calib-images", type=int, default=300, help="calibration images used, evenly spaced (default 300)")
    p.add_argument("--val", help="COCO-format val set (images/ + annotations.json) for the mAP gate")
    p.add_argument("--val-limit", type=int, default=0, help="use only the first N val images (0: all)")
    p.add_argument("--gate", type=float, default=1.0, help="largest mask mAP50-95 drop allowed, points (default 1.0)")
    p.add_argument("--threads", type=int, default=1, help="inference threads while measuring (default 1)")
    p.add_argument("--force", action="store_true", help="overwrite existing bundles")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    try:
        from export.convert_native import convert_bundle
    except ImportError as exc:
        print(f"edgeseg convert needs the export extra: pip install 'edgeseg[export]'\n({exc})", file=sys.stderr)
        return 2
    report = convert_bundle(args.bundle, args.formats, args.out, calib=args.calib, val=args.val,
                            calib_images=args.calib_images, val_limit=args.val_limit, gate=args.gate,
                            threads=args.threads, force=args.force, command=" ".join(["edgeseg", *sys.argv[1:]]))
    for row in report.formats:
        acc = "" if row.accuracy is None else f", mask mAP {row.accuracy.mask_map:.1f} (drop {row.mask_drop:.2f})"
        print(f"{row.name}: {row.bundle} {row.precision}, {row.size_bytes / 1e6:.2f} MB{acc}, "
              f"{'pass' if row.passed else 'FAIL'}")
    return 0 if report.passed else 1
