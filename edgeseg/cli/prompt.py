"""``edgeseg prompt``: segment what boxes or points show, with a prompt (SAM-class) bundle.

Each ``--box`` and each ``--point`` is one prompt (one instance in the
result, in the order given: boxes first); ``--point X,Y,0`` adds a
background point to every point prompt instead. Writes ``<name>.json``
(the frame format of ``edgeseg run``) and ``<name>.png`` (overlay) per image
into ``--out``; the image encoder runs once per image however many prompts.
IMAGE may be a folder (its images), as for ``edgeseg run``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _floats(text: str, what: str, counts: tuple[int, ...]) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) not in counts:
        raise argparse.ArgumentTypeError(f"{what} must be {' or '.join(map(str, counts))} comma-separated numbers, "
                                         f"got {text!r}")
    return values


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prompt", help="segment what boxes or points show (SAM-class bundle)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders")
    p.add_argument("--bundle", required=True, help="a prompt family bundle (edgeseg import ENCODER --decoder DECODER)")
    p.add_argument("--box", action="append", default=[], type=lambda t: _floats(t, "--box", (4,)),
                   metavar="X1,Y1,X2,Y2", help="a box prompt in image pixels (repeatable)")
    p.add_argument("--point", action="append", default=[], type=lambda t: _floats(t, "--point", (2, 3)),
                   metavar="X,Y[,LABEL]", help="a point prompt (label 1, default) or a background point (label 0) "
                                               "added to every point prompt (repeatable)")
    p.add_argument("--multimask", action="store_true", help="best of the multimask outputs instead of the single mask")
    p.add_argument("--device-config", help="board config YAML (default: built-in defaults)")
    p.add_argument("--out", type=Path, required=True, help="folder for <name>.json and <name>.png")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    import numpy as np

    from edgeseg.prompt import load_prompt
    from edgeseg.sources import check_sources, iter_frames
    from edgeseg.stream import ConsoleSink, FrameJsonSink, OverlaySink, Pipeline, PipelineOptions, Renderer

    if any(len(p) == 3 and p[2] not in (0, 1) for p in args.point):
        raise ValueError("--point labels must be 1 (foreground) or 0 (background)")
    fg = [p[:2] for p in args.point if len(p) == 2 or p[2] == 1]
    bg = [p[:2] for p in args.point if len(p) == 3 and p[2] == 0]
    if not args.box and not fg:
        raise ValueError("give at least one --box X1,Y1,X2,Y2 or --point X,Y")
    check_sources(args.images)
    seg = load_prompt(args.bundle, args.device_config)
    points = np.array([[p, *bg] for p in fg], np.float32).reshape(len(fg), 1 + len(bg), 2)
    labels = np.array([[1] + [0] * len(bg)] * len(fg), np.float32).reshape(len(fg), 1 + len(bg))

    def infer(frame):
        results = []
        if args.box:
            results.append(seg.prompt(frame.image, boxes=args.box, multimask=args.multimask, frame_id=frame.index))
        if fg:
            results.append(seg.prompt(frame.image, points=points, labels=labels, multimask=args.multimask,
                                      frame_id=frame.index))
        return results[0] if len(results) == 1 else _concat(results)

    overlays = OverlaySink(args.out, Renderer([]))
    sinks = [FrameJsonSink(args.out), overlays, ConsoleSink(sys.stdout, overlays)]
    summary = Pipeline(iter_frames(args.images), infer, sinks=sinks, options=PipelineOptions(threaded=False)).run()
    return summary.exit_code


def _concat(results):
    import dataclasses

    import numpy as np

    first, last = results[0], results[-1]
    return dataclasses.replace(
        first, boxes=np.concatenate([r.boxes for r in results]), scores=np.concatenate([r.scores for r in results]),
        class_ids=np.concatenate([r.class_ids for r in results]), masks=sum((r.masks for r in results), ()),
        timings=last.timings,
    )
