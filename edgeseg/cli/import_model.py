"""``edgeseg import``: a model exported by its own library (Ultralytics ...) -> a verified bundle.

A float import needs only the runtime (no torch, no Ultralytics): it runs on
a board as well as on a workstation. ``--int8`` also writes an int8 bundle
(outputs split, static QDQ, mixed precision until the mask-mAP gate passes)
and its parity report; that part needs the ``export`` extra (the ``onnx``
package).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path


def _names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(","))
    if not all(names):
        raise argparse.ArgumentTypeError(f"--names must be comma-separated non-empty names, got {text!r}")
    return names


def _imgsz(text: str) -> tuple[int, int]:
    try:
        parts = [int(p) for p in text.replace("x", ",").split(",")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"--imgsz must be H,W (or one size), got {text!r}")
    return parts[0], parts[1]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="import a model another library exported (Ultralytics ONNX/TFLite)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="the .onnx or .tflite file, as its library exported it")
    p.add_argument("--out", required=True, help="bundle directory to write")
    p.add_argument("--source", help="import source (default: detected from the metadata)")
    p.add_argument("--names", type=_names, help="class names in id order, comma-separated (when metadata lacks them)")
    p.add_argument("--imgsz", type=_imgsz, help="input size H,W (for a dynamic input without imgsz metadata)")
    p.add_argument("--task", help="the model's task when its metadata lacks it (only 'segment' imports)")
    e2e = p.add_mutually_exclusive_group()
    e2e.add_argument("--end2end", dest="end2end", action="store_true", default=None,
                     help="outputs are end-to-end detections (no NMS at run time)")
    e2e.add_argument("--no-end2end", dest="end2end", action="store_false", help="outputs are per anchor (NMS at run time)")
    p.add_argument("--decoder", help="the prompt decoder of a SAM-class ONNX pair (MODEL is then the image encoder)")
    p.add_argument("--lowres-only", action="store_true",
                   help="with --decoder: cut the decoder's full-size masks output (computed on every prompt, never "
                        "read) out of the graph; needs the export extra (onnx)")
    p.add_argument("--name", help="bundle name (default: the model file's stem)")
    p.add_argument("--force", action="store_true", help="overwrite existing bundles")
    q = p.add_argument_group("int8 (needs the export extra)")
    q.add_argument("--int8", action="store_true", help="also write OUT-int8: static int8 with the accuracy gate")
    q.add_argument("--calib", help="folder of calibration images (--int8)")
    q.add_argument("--calib-images", type=int, default=300, help="calibration images used, evenly spaced (default 300)")
    q.add_argument("--val", help="COCO-format val set (images/ + annotations.json) for the mAP gate (--int8)")
    q.add_argument("--val-limit", type=int, default=0, help="use only the first N val images (0: all)")
    q.add_argument("--gate", type=float, default=1.0, help="largest mask mAP50-95 drop allowed, points (default 1.0)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from edgeseg.imports import ImportOptions, import_model

    if args.int8 and not (args.calib and args.val):
        raise ValueError("--int8 needs --calib IMAGES and --val DATASET (the mask-mAP gate is measured on it)")
    if args.lowres_only and not args.decoder:
        raise ValueError("--lowres-only applies to the prompt decoder: pass --decoder DECODER")
    with tempfile.TemporaryDirectory() as tmp:
        decoder = args.decoder
        if args.lowres_only:
            try:
                from export.sam_decoder import lowres_decoder
            except ImportError as exc:
                print(f"edgeseg import --lowres-only needs the export extra (onnx): pip install 'edgeseg[export]'\n"
                      f"({exc})", file=sys.stderr)
                return 2
            decoder = str(lowres_decoder(args.decoder, Path(tmp) / "decoder.onnx"))
        options = ImportOptions(names=args.names, imgsz=args.imgsz, task=args.task, end2end=args.end2end,
                                name=args.name, decoder=decoder)
        bundle = import_model(args.model, args.out, source=args.source, options=options, force=args.force)
    m = bundle.manifest
    outs = ", ".join(f"{o.role}={o.name}{list(o.channels) if o.channels else ''}" for o in m.outputs)
    print(f"imported {args.model} -> {args.out}: {m.name} {m.family}/{m.format}/{m.precision}, "
          f"{len(m.classes)} classes, input {list(m.input.shape)}, outputs {outs}; "
          f"score {'>' if m.thresholds.score_strict else '>='} {m.thresholds.score}, iou {m.thresholds.iou}, max {m.thresholds.max_detections}"
          f"{', end-to-end (no NMS)' if not m.thresholds.nms else ''}")
    if not args.int8:
        return 0
    try:
        from export.import_int8 import quantize_imported
    except ImportError as exc:
        print(f"edgeseg import --int8 needs the export extra (onnx): pip install 'edgeseg[export]'\n({exc})",
              file=sys.stderr)
        return 2
    report = quantize_imported(bundle, f"{args.out.rstrip('/')}-int8", calib=args.calib, val=args.val,
                               calib_images=args.calib_images, val_limit=args.val_limit, gate=args.gate,
                               force=args.force, command=" ".join(["edgeseg", *sys.argv[1:]]))
    return 0 if report.passed else 1
