"""``edgeseg run``: segment images, folders, videos or a camera; write JSON and overlays."""

from __future__ import annotations

import argparse
import logging
import sys
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
    p.add_argument(
        "--hook", action="append", default=[], metavar="URL",
        help="send each frame's grasps to URL (repeatable): serial:///dev/ttyUSB0?baud=115200, udp://HOST:PORT, jsonl:-, jsonl:FILE",
    )
    p.add_argument("--grasps", action="store_true", help="plan grasps and draw them on overlays (implied by --hook)")
    p.add_argument("--health-file", type=Path, help="keep a JSON heartbeat here (frames, failures, last latency)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    import cv2

    import edgeseg
    from edgeseg.device_config import apply_cpu_affinity
    from edgeseg.grasp import draw_grasps
    from edgeseg.health import Heartbeat
    from edgeseg.hooks import open_hook
    from edgeseg.overlay import MaskAnnotator
    from edgeseg.sources import iter_frames

    seg = edgeseg.load(args.bundle, args.device_config)
    cores = apply_cpu_affinity(seg.device_config.backend)
    log.info("backend %s, decoder %s, cores %s", seg.backend.device, seg.decoder.path, list(cores))
    annotator = MaskAnnotator()
    hooks = [open_hook(url) for url in args.hook]
    planner = seg.device_config.grasp_planner() if (hooks or args.grasps) else None
    # A JSON-lines hook on stdout owns stdout; the human summary moves to stderr.
    summary_stream = sys.stderr if any(url.startswith("jsonl:-") for url in args.hook) else sys.stdout
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    failures = 0
    health = Heartbeat(args.health_file)
    for frame in iter_frames(args.sources, capture=seg.device_config.camera):
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
        grasps = planner.plan(result) if planner is not None else []
        for hook in hooks:
            hook(result, grasps)
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
            (args.out / f"{frame.name}.json").write_text(result.to_json() + "\n")
            overlay_path = args.out / f"{frame.name}.png"
            overlay = annotator.annotate(frame.image, result)
            cv2.imwrite(str(overlay_path), draw_grasps(overlay, grasps) if planner is not None else overlay)
            line += f" -> {overlay_path}"
        if planner is not None:
            line += f" | {len(grasps)} grasps"
        print(line, file=summary_stream, flush=True)
        health.frame_ok(frame.name, len(result), t.total_ms)
    health.close()
    for hook in hooks:
        hook.close()
        if hook.stats.dropped:
            log.info("hook %s dropped %d of %d frames (latest wins)", hook, hook.stats.dropped, hook.stats.submitted)
    return 1 if failures else 0
