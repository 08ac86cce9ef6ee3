"""``edgeseg bench``: latency per stage for one or more bundles on this board (``edgeseg bench report``: tables and plots).

Examples::

    edgeseg bench bundles/nano-onnx bundles/nano-tflite-int8 --device auto --frames 200
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger("edgeseg.bench")

DEFAULT_RESULTS = Path("benchmarks/results")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="benchmark bundles per stage (p50/p90/p99)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("bundles", nargs="*", metavar="BUNDLE",
                   help="bundles to compare (default: the bundled model)")
    device = p.add_mutually_exclusive_group()
    device.add_argument("--device-config", type=Path, help="board config YAML")
    device.add_argument("--device", help="'auto' (detect this board) or a board id, e.g. rpi5")
    p.add_argument("--config-dir", type=Path, help="where --device looks for <board>.yaml (default: device_configs/)")
    p.add_argument("--images", nargs="+", help="image files or folders (default: edgeseg/assets/samples)")
    p.add_argument("--max-images", type=int, default=0, help="use at most this many images (default: all)")
    p.add_argument("--frames", type=int, default=200, help="timed frames per bundle (default: 200)")
    p.add_argument("--warmup", type=int, default=10, help="untimed warm-up frames (default: 10)")
    p.add_argument("--no-grasp", action="store_true", help="skip the grasp planning stage")
    p.add_argument("--hook", default="mem://", help="hook URL frames go to ('' for none; default: mem://)")
    p.add_argument("--val", help="COCO validation set (annotations.json + images) for mask mAP")
    p.add_argument("--val-limit", type=int, default=0, help="evaluate at most this many validation images")
    p.add_argument("--out", type=Path, help=f"results root (default: {DEFAULT_RESULTS})")
    p.add_argument("--report", type=Path, help="also write a report of this run's results to this folder")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=main)


def _config(args: argparse.Namespace):
    """``(DeviceConfig, path str, BoardInfo)`` from --device-config / --device."""
    from edgeseg.board import config_for_board, default_config_dir, detect_board
    from edgeseg.device_config import DeviceConfig, load_device_config

    board = detect_board()
    if args.device_config:
        return load_device_config(args.device_config), str(args.device_config), board
    if args.device == "auto":
        path = config_for_board(board, args.config_dir)
        print(f"board: {board} -> {path}")
        return load_device_config(path), str(path), board
    if args.device:
        path = (args.config_dir or default_config_dir()) / f"{args.device}.yaml"
        if not path.is_file():
            raise ValueError(f"no device config {path} for --device {args.device!r}")
        return load_device_config(path), str(path), board
    return DeviceConfig(), "", board


def _images(args: argparse.Namespace):
    import edgeseg
    from edgeseg.sources import list_images

    sources = args.images or [str(Path(edgeseg.__file__).parent / "assets" / "samples")]
    return list_images(sources, limit=args.max_images)


def main(args: argparse.Namespace) -> int:
    import edgeseg
    from edgeseg.bench import BenchOptions, bench_bundles, save_run
    from edgeseg.bench.report import markdown_table, write_report
    from edgeseg.bundle import check_bundle_paths

    bundles = args.bundles or [str(edgeseg.DEFAULT_BUNDLE)]
    check_bundle_paths(bundles)  # every path, before the first bundle is benchmarked
    config, config_path, board = _config(args)
    options = BenchOptions(
        frames=args.frames, warmup=args.warmup, grasp=not args.no_grasp, hook_url=args.hook,
        val_dir=args.val, val_limit=args.val_limit, progress=not args.no_progress,
    )
    runs = bench_bundles(bundles, _images(args), config, options, config_path=config_path, board=board)
    for run in runs:
        print(f"results      {save_run(run, args.out or DEFAULT_RESULTS)}")
    print(markdown_table(runs))
    if args.report:
        for name, path in write_report(runs, args.report).items():
            print(f"{name:13s} {path}")
    return 0
