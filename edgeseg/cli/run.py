"""``edgeseg run``: segment images, folders, videos or a camera; write JSON and overlays."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

log = logging.getLogger("edgeseg.run")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="segment images / folders / video", description=__doc__)
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="image, folder, video file, camera:N or GStreamer pipeline")
    p.add_argument("--bundle", help="bundle directory or .edgeseg file (default: the bundled model)")
    p.add_argument("--device-config", help="board config YAML")
    p.add_argument("--out", type=Path, help="write <name>.json and <name>.png overlays here")
    p.add_argument("--score", type=float, help="score threshold (default: the manifest's)")
    p.add_argument("--iou", type=float, help="NMS IoU threshold (default: the manifest's)")
    p.add_argument("--max-det", type=int, help="max detections per frame")
    p.add_argument("--health-file", type=Path, help="keep a JSON heartbeat here (frames, failures, last latency)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    import cv2

    import edgeseg
    from edgeseg.health import Heartbeat
    from edgeseg.overlay import MaskAnnotator
    from edgeseg.sources import iter_frames

    seg = edgeseg.load(args.bundle, args.device_config)
    annotator = MaskAnnotator()
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    failures = 0
    health = Heartbeat(args.health_file)
    for frame in iter_frames(args.sources):
        if frame.image is None:
            log.error("skipping frame %s: %s", frame.name, frame.error)
            health.frame_failed(frame.name, str(frame.error))
            failures += 1
            continue
        try:
            result = seg(
                frame.image, score_threshold=args.score, iou_threshold=args.iou,
                max_detections=args.max_det, frame_id=frame.index,
            )
        except ValueError as exc:
            log.error("skipping frame %s: %s", frame.name, exc)
            health.frame_failed(frame.name, str(exc))
            failures += 1
            continue
        counts: dict[str, int] = {}
        for inst in result:
            counts[inst.class_name] = counts.get(inst.class_name, 0) + 1
        summary = ", ".join(f"{n} {c}" for c, n in sorted(counts.items())) or "nothing"
        t = result.timings
        line = (
            f"{frame.name}: {len(result)} instances ({summary}) in {t.total_ms:.1f} ms "
            f"[pre {t.preprocess_ms:.1f} / infer {t.infer_ms:.1f} / decode {t.decode_ms:.1f}]"
        )
        if args.out:
            (args.out / f"{frame.name}.json").write_text(json.dumps(result.to_dict()) + "\n")
            overlay_path = args.out / f"{frame.name}.png"
            cv2.imwrite(str(overlay_path), annotator.annotate(frame.image, result))
            line += f" -> {overlay_path}"
        print(line, flush=True)
        health.frame_ok(frame.name, len(result), t.total_ms)
    health.close()
    return 1 if failures else 0
