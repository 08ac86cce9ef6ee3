"""``edgeseg run``: segment images, folders, videos, cameras or streams; write JSON, overlays, hooks.

This module only wires: sources (:mod:`edgeseg.sources`), the pipeline and
its sinks (:mod:`edgeseg.stream`), the steps after inference (grasps), the
health file. Exit code: 0 when the source ended and nothing failed, 1 when
it ended but some frames or outputs failed (counted, logged once per kind),
3 when the source kept failing, 128 + N when stopped by signal N (SIGTERM: 143).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger("edgeseg.run")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="segment images / folders / video / camera", description=__doc__)
    p.add_argument("sources", nargs="+", metavar="SOURCE",
                   help="image, folder, video file, camera:N, rtsp:// or http:// stream, or GStreamer pipeline")
    p.add_argument("--bundle", help="bundle directory or .edgeseg file (default: the bundled model)")
    p.add_argument("--device-config",
                   help="board config YAML (default: the detected board's, as `edgeseg info` shows; 'none': built-in defaults)")
    p.add_argument("--out", type=Path,
                   help="write <name>.json per frame, <name>.png overlays of images, <video>.mp4 annotated videos")
    p.add_argument("--png-frames", action="store_true", help="with --out: a PNG per video frame instead of a video")
    p.add_argument("--jsonl", metavar="FILE", help="append every frame's result as one JSON line to FILE (- = stdout)")
    p.add_argument("--recursive", action="store_true", help="walk sub-folders of folder sources")
    p.add_argument("--score", type=float, help="score threshold (default: the manifest's)")
    p.add_argument("--iou", type=float, help="NMS IoU threshold (default: the manifest's)")
    p.add_argument("--max-det", type=int, help="max detections per frame")
    p.add_argument("--min-score", type=float,
                   help="drop instances whose reported score is below this (SOLOv2-style and query models report "
                        "scores after maskness / Matrix NMS decay, below their candidates' --score)")
    p.add_argument(
        "--hook", action="append", default=[], metavar="URL",
        help="send each frame's grasps to URL (repeatable): serial:///dev/ttyUSB0?baud=115200, udp://HOST:PORT, jsonl:-, jsonl:FILE",
    )
    p.add_argument(
        "--serve", action="append", default=[], metavar="URL",
        help="answer robots/PLCs (repeatable): tcp://HOST:PORT pick server (?trigger=1: capture on request), "
             "modbus://HOST:PORT Modbus TCP server; see docs/pick_server.md, docs/modbus.md",
    )
    p.add_argument("--grasps", action="store_true", help="plan grasps and draw them on overlays (implied by --hook)")
    p.add_argument("--health-file", type=Path, help="keep a JSON heartbeat here (frames, failures, last latency)")
    p.add_argument("--track", action="store_true", help="keep instance ids across frames (track_id in JSON, overlays, hooks)")
    p.add_argument("--count-line", action="append", default=[], metavar="X1,Y1,X2,Y2",
                   help="count tracks crossing this line, per class (repeatable; implies --track)")
    p.add_argument("--count-zone", action="append", default=[], metavar="X1,Y1,X2,Y2,X3,Y3,...",
                   help="count tracks inside this polygon, per class (repeatable; implies --track)")
    p.add_argument("--sequential", action="store_true", help="run the stages one after another in one thread")
    p.add_argument("--refine", metavar="BUNDLE",
                   help="a prompt (SAM-class) bundle: each frame's detections become its box prompts and its masks "
                        "replace the detector's (default: the device config's refine.bundle; 'none': off)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    import edgeseg
    from edgeseg.cell import open_server, triggered_frames
    from edgeseg.device_config import apply_cpu_affinity
    from edgeseg.grasp import GraspPlanner, draw_grasps
    from edgeseg.health import Heartbeat
    from edgeseg.hooks import open_hook
    from edgeseg.model_info import ModelInfo
    from edgeseg.sources import SourceOptions, check_sources, iter_frames
    from edgeseg.stream import (
        ConsoleSink,
        FrameJsonSink,
        HookSink,
        JsonlSink,
        OverlaySink,
        Pipeline,
        PipelineOptions,
        Renderer,
        stop_on_signals,
    )
    from edgeseg.track import InstanceTracker

    # Bad values fail once, here, before the model loads (not once per frame).
    counters = _counters(args.count_line, args.count_zone)
    _check_thresholds(args.score, args.iou, args.max_det, args.min_score)
    check_sources(args.sources)
    seg = edgeseg.load(args.bundle, _device_config(args.device_config))
    if seg.manifest.prompt is not None:
        raise ValueError(f"{args.bundle} is a prompt (SAM-class) bundle: segment with `edgeseg prompt IMAGE --box ...`, "
                         "or refine a detector with `edgeseg run SOURCE --refine BUNDLE`")
    cores = apply_cpu_affinity(seg.device_config.backend)
    log.info("backend %s, decoder %s, cores %s", seg.backend.device, seg.decoder.path, list(cores))

    steps, drawers = [], []
    if args.track or counters:
        tracker = InstanceTracker()
        steps.append(("track", lambda rec: setattr(rec, "result", tracker.update(rec.result))))
    if counters:
        steps.append(("count", lambda rec: setattr(rec, "counts", {k: v for c in counters
                                                                    for k, v in c.update(rec.result).items()})))
        drawers += [lambda image, rec, c=c: c.draw(image) for c in counters]
    cell = seg.device_config.cell
    hook_urls = list(args.hook) or ([cell.mqtt] if cell.mqtt else [])
    links = {url: open_hook(url) for url in hook_urls}
    links.update({url: open_server(url, cell) for url in (list(args.serve) or cell.server_urls)})
    if links or args.grasps:
        planner = GraspPlanner.from_device_config(seg.device_config)
        steps.append(("grasp", lambda rec: setattr(rec, "grasps", tuple(planner.plan(rec.result)))))
        drawers.append(lambda image, rec: draw_grasps(image, rec.grasps, labels=rec.labels))

    # A JSON-lines stream on stdout owns stdout; the human summary moves to stderr.
    to_stdout = any(url.startswith("jsonl:-") for url in args.hook) or args.jsonl == "-"
    overlays = OverlaySink(args.out, Renderer(drawers), png_frames=args.png_frames) if args.out else None
    sinks = [FrameJsonSink(args.out), overlays] if args.out else []
    if args.jsonl:
        sinks.append(JsonlSink(args.jsonl))
    if seg.bundle is not None:  # serial links name the bundle behind the class ids when they come up
        model = ModelInfo.of_bundle(seg.bundle)
        for link in links.values():
            link.set_model(model)
    sinks += [HookSink(link, url) for url, link in links.items()]
    sinks.append(ConsoleSink(sys.stderr if to_stdout else sys.stdout, overlays))

    refiner = _refiner(args.refine, seg.device_config)

    def infer(frame):
        result = seg(frame.image, score_threshold=args.score, iou_threshold=args.iou,
                     max_detections=args.max_det, min_score=args.min_score, frame_id=frame.index)
        return refiner.refine(frame.image, result) if refiner is not None else result

    frames = iter_frames(args.sources, capture=seg.device_config.camera,
                         options=SourceOptions(recursive=args.recursive))
    health = Heartbeat(args.health_file)
    health.watch_hooks(links)
    pipeline = Pipeline(triggered_frames(frames, links.values(), on_wait=health.alive), infer, steps=steps, sinks=sinks, health=health,
                        options=PipelineOptions(threaded=not args.sequential))
    with stop_on_signals(pipeline):
        summary = pipeline.run()
    errors = ", ".join(f"{k} x{n}" for k, n in sorted(summary.errors.items())) or "none"
    log_fn = log.error if summary.status == "failed" else log.info
    log_fn("%s: %s; %d frames done, %d skipped, %d dropped; failures: %s", summary.status, summary.reason,
           summary.frames, summary.failed_frames, summary.dropped, errors)
    return summary.exit_code


def _refiner(flag: str | None, config):
    """The promptable model of ``--refine`` (or the config's ``refine.bundle``), loaded; ``None`` when off."""
    path = config.refine.bundle if flag is None else ("" if flag == "none" else flag)
    if not path:
        return None
    from edgeseg.prompt import load_prompt

    refiner = load_prompt(path, config)
    log.info("refining masks with %s (detections as box prompts)", refiner.manifest.name)
    return refiner


def _check_thresholds(score: float | None, iou: float | None, max_det: int | None,
                      min_score: float | None = None) -> None:
    """Validates ``--score/--iou/--max-det/--min-score`` with the decoder's own rules (:class:`DecodeOptions`)."""
    from edgeseg.decode.options import DecodeOptions

    if max_det is not None and max_det < 1:
        raise ValueError(f"--max-det must be >= 1, got {max_det}")
    flags = {"score_threshold": "--score", "iou_threshold": "--iou", "max_detections": "--max-det",
             "min_score": "--min-score"}
    given = {k: v for k, v in zip(flags, (score, iou, max_det, min_score), strict=True) if v is not None}
    try:
        DecodeOptions(**given)
    except ValueError as exc:
        text = str(exc)
        for field, flag in flags.items():
            text = text.replace(field, flag)
        raise ValueError(text) from None


def _device_config(path: str | None) -> str | None:
    """``--device-config``, or the detected board's config (said in the log), or None for ``none``."""
    from edgeseg.board import config_for_board, detect_board

    if path == "none":
        return None
    if path:
        return path
    board = detect_board()
    try:
        found = config_for_board(board)
    except FileNotFoundError:
        log.info("board %s: no device config found; built-in defaults (--device-config to choose one)", board.id)
        return None
    log.info("device config %s (detected board %s; --device-config to choose another)", found, board.id)
    return str(found)


def _numbers(text: str, what: str, *, count: int | None = None) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"{what} must be comma-separated numbers, got {text!r}") from None
    if (count is not None and len(values) != count) or (count is None and (len(values) < 6 or len(values) % 2)):
        want = f"{count} numbers" if count is not None else "an even number (>= 6) of numbers"
        raise ValueError(f"{what} needs {want}, got {len(values)}: {text!r}")
    return values


def _counters(lines: list[str], zones: list[str]) -> list:
    """Line and zone counters from ``--count-line`` / ``--count-zone`` values (named line, line2, zone ...)."""
    from edgeseg.track import LineCounter, ZoneCounter

    out: list = []
    for i, text in enumerate(lines):
        x1, y1, x2, y2 = _numbers(text, "--count-line", count=4)
        out.append(LineCounter((x1, y1), (x2, y2), name="line" if i == 0 else f"line{i + 1}"))
    for i, text in enumerate(zones):
        v = _numbers(text, "--count-zone")
        out.append(ZoneCounter(list(zip(v[::2], v[1::2], strict=True)), name="zone" if i == 0 else f"zone{i + 1}"))
    return out
