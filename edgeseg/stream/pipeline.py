"""The streaming loop as a small pipeline: read -> infer -> steps (track, count, grasp) -> sinks.

Each stage runs in its own thread and hands frames on through a bounded
:class:`~edgeseg.stream.channel.Channel`, so reading the next frame, running
the model and writing outputs overlap. Frames from files are all processed
(a full channel makes the reader wait); frames from live sources never make
the camera wait (the oldest queued frame is dropped and counted).
``threaded=False`` runs the same stages one after the other in the calling
thread (the baseline of ``benchmarks/stream_bench.py``, and simpler to debug).

Every failure in any stage (unreadable frame, model error, step error, sink
or hook error, health-file write) is counted by kind in a
:class:`~edgeseg.stream.failures.FailureLog`, logged once per kind, and the
loop goes on. :meth:`Pipeline.stop` (wired to SIGTERM / SIGINT by
:func:`stop_on_signals`) ends it cleanly: no new frames are read, frames in
flight finish, sinks and hooks are flushed and closed, the health file says
``stopped``.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from edgeseg.health import Heartbeat
from edgeseg.result import Result
from edgeseg.sources import Frame, SourceError
from edgeseg.stream.channel import END, Channel
from edgeseg.stream.failures import FailureLog
from edgeseg.stream.record import FrameRecord
from edgeseg.stream.sinks import Sink

#: A per-frame step after inference (tracker, counter, grasp planner): fills its part of the record.
Step = Callable[[FrameRecord], None]


@dataclass(frozen=True)
class PipelineOptions:
    """How the stages run.

    Attributes:
        threaded: One thread per stage with bounded channels (False: all
            stages in turn in the calling thread).
        queue_size: Frames that may wait between two stages.
    """

    threaded: bool = True
    queue_size: int = 4

    def __post_init__(self) -> None:
        if self.queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {self.queue_size}")


@dataclass(frozen=True)
class RunSummary:
    """How a run went.

    Attributes:
        frames: Frames that went through every stage.
        failed_frames: Frames lost before the sinks (unreadable, model error).
        errors: Failures by kind, all stages (``read``, ``infer:ValueError`` ...).
        dropped: Live frames dropped because the pipeline was busy.
        status: ``ended`` (source finished), ``stopped`` (signal or
            :meth:`Pipeline.stop`) or ``failed`` (the source kept failing).
        reason: Why the run ended, for people.
        signal: The signal number that stopped the run, if any.
    """

    frames: int
    failed_frames: int
    errors: dict[str, int]
    dropped: int
    status: str
    reason: str
    signal: int | None = None

    @property
    def exit_code(self) -> int:
        """0: the source ended and nothing failed; 1: it ended, some frames or outputs failed;
        3: the source kept failing; 128 + N: stopped by signal N."""
        if self.status == "failed":
            return 3
        if self.signal is not None:
            return 128 + self.signal
        return 1 if self.errors else 0


class Pipeline:
    """Runs frames through inference, steps and sinks.

    Args:
        frames: The frame iterator (:func:`edgeseg.sources.iter_frames`); may
            raise :class:`~edgeseg.sources.SourceError`.
        infer: Segments one frame (e.g. a :class:`~edgeseg.Segmenter` call).
        steps: Per-frame steps after inference, in order (tracking, counting, grasps).
        sinks: Where finished frames go.
        health: Heartbeat to keep up to date, or None.
        options: Threading and queue sizes.
    """

    def __init__(self, frames: Iterable[Frame], infer: Callable[[Frame], Result], *,
                 steps: Sequence[tuple[str, Step]] = (), sinks: Sequence[Sink] = (),
                 health: Heartbeat | None = None, options: PipelineOptions | None = None) -> None:
        self.frames, self.infer, self.steps, self.sinks = frames, infer, tuple(steps), tuple(sinks)
        self.health = health or Heartbeat(None)
        self.options = options or PipelineOptions()
        self.failures = FailureLog()
        self._stop = threading.Event()
        self._stop_reason = ""
        self._signal: int | None = None
        self._end: tuple[str, str] = ("ended", "source ended")
        self._frames_done = self._failed_frames = self._health_failures = 0
        self._read_channel: Channel | None = None

    def stop(self, reason: str = "stopped", signum: int | None = None) -> None:
        """Ends the run after the frames in flight (safe from a signal handler or another thread)."""
        if not self._stop.is_set():
            self._stop_reason, self._signal = reason, signum
            self._stop.set()

    # -- stages --------------------------------------------------------------
    def _read(self) -> Iterator[FrameRecord]:
        it = iter(self.frames)
        while not self._stop.is_set():
            try:
                frame = next(it)
            except StopIteration:
                return
            except SourceError as exc:
                self._end = ("failed", str(exc))
                return
            except Exception as exc:  # noqa: BLE001 - a broken source ends the run with its reason
                self._end = ("failed", f"source raised {type(exc).__name__}: {exc}")
                return
            yield FrameRecord(frame)

    def _infer(self, rec: FrameRecord) -> FrameRecord:
        if rec.frame.image is None:
            self.failures.record("read", rec.frame.name, rec.frame.error or "unreadable")
            return rec
        try:
            rec.result = self.infer(rec.frame)
        except Exception as exc:  # noqa: BLE001 - a model error skips the frame, not the run
            self.failures.record(FailureLog.kind("infer", exc), rec.frame.name, exc)
        return rec

    def _post(self, rec: FrameRecord) -> FrameRecord:
        if rec.result is None:
            return rec
        for name, step in self.steps:
            try:
                step(rec)
            except Exception as exc:  # noqa: BLE001
                self.failures.record(FailureLog.kind(name, exc), rec.frame.name, exc)
        return rec

    def _emit(self, rec: FrameRecord) -> None:
        if rec.result is None:
            self._failed_frames += 1
            self.health.frame_failed(rec.frame.name, rec.frame.error or "model error (see log)")
        else:
            for sink in self.sinks:
                try:
                    sink.write(rec)
                except Exception as exc:  # noqa: BLE001 - a full disk or a broken hook must not stop inference
                    self.failures.record(FailureLog.kind(f"sink:{sink.name}", exc), rec.frame.name, exc)
            self._frames_done += 1
            self.health.frame_ok(rec.frame.name, len(rec.result), rec.result.timings.total_ms)
        self._health_check(rec.frame.name)

    def _health_check(self, frame: str) -> None:
        self.health.counters(self.failures.counts(), self._dropped())
        if self.health.write_failures > self._health_failures:
            self._health_failures = self.health.write_failures
            self.failures.record(FailureLog.kind("health", self.health.last_write_error), frame,
                                 self.health.last_write_error)

    def _dropped(self) -> int:
        return self._read_channel.dropped if self._read_channel is not None else 0

    # -- running ---------------------------------------------------------------
    def run(self) -> RunSummary:
        """Runs until the source ends, fails, or :meth:`stop` is called; closes sinks; returns the summary."""
        try:
            if self.options.threaded:
                self._run_threaded()
            else:
                for rec in self._read():
                    self._emit(self._post(self._infer(rec)))
        finally:
            self._close()
        return self._summary()

    def _run_threaded(self) -> None:
        size = self.options.queue_size
        read_ch, infer_ch, post_ch = Channel(size), Channel(size), Channel(size)
        self._read_channel = read_ch

        def reader() -> None:
            try:
                for rec in self._read():
                    read_ch.put(rec, drop_oldest=rec.frame.live)
            finally:
                read_ch.end()

        def stage(src: Channel, dst: Channel | None, fn: Callable) -> Callable[[], None]:
            def loop() -> None:
                try:
                    while (rec := src.get()) is not END:
                        out = fn(rec)
                        if dst is not None:
                            dst.put(out)
                finally:
                    if dst is not None:
                        dst.end()
            return loop

        threads = [
            threading.Thread(target=reader, name="edgeseg-read", daemon=True),
            threading.Thread(target=stage(read_ch, infer_ch, self._infer), name="edgeseg-infer", daemon=True),
            threading.Thread(target=stage(infer_ch, post_ch, self._post), name="edgeseg-post", daemon=True),
            threading.Thread(target=stage(post_ch, None, self._emit), name="edgeseg-sinks", daemon=True),
        ]
        for t in threads:
            t.start()
        # Join in short slices so that signal handlers run in the main thread meanwhile.
        while threads[-1].is_alive():
            threads[-1].join(0.1)

    def _close(self) -> None:
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as exc:  # noqa: BLE001
                self.failures.record(FailureLog.kind(f"sink:{sink.name}:close", exc), "-", exc)
        status, reason = self._end
        if self._stop.is_set() and status == "ended":
            status, reason = "stopped", self._stop_reason
        self.health.counters(self.failures.counts(), self._dropped())
        self.health.close("failed" if status == "failed" else "stopped", reason)
        self._health_check("-")
        self._final = (status, reason)

    def _summary(self) -> RunSummary:
        status, reason = self._final
        return RunSummary(self._frames_done, self._failed_frames, self.failures.counts(), self._dropped(),
                          status, reason, self._signal if status == "stopped" else None)


@contextlib.contextmanager
def stop_on_signals(pipeline: Pipeline, signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT)):
    """Within the block, SIGTERM / SIGINT stop ``pipeline`` cleanly instead of killing the process.

    Must be entered in the main thread (Python runs signal handlers there).
    """
    def handler(signum, _frame) -> None:
        pipeline.stop(signal.Signals(signum).name, signum)

    previous = {s: signal.signal(s, handler) for s in signals}
    try:
        yield pipeline
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
