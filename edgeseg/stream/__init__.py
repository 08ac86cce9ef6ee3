"""The streaming loop of ``edgeseg run``: sources -> inference -> steps -> sinks, in threads.

Usage::

    from edgeseg.sources import iter_frames
    from edgeseg.stream import FrameJsonSink, Pipeline

    seg = edgeseg.load()
    pipe = Pipeline(iter_frames(["video.mp4"]), lambda f: seg(f.image, frame_id=f.index),
                    sinks=[FrameJsonSink(Path("out"))])
    summary = pipe.run()           # summary.frames, .errors, .exit_code
"""

from edgeseg.stream.failures import FailureLog
from edgeseg.stream.pipeline import Pipeline, PipelineOptions, RunSummary, stop_on_signals
from edgeseg.stream.record import FrameRecord, Renderer
from edgeseg.stream.sinks import ConsoleSink, FrameJsonSink, HookSink, JsonlSink, OverlaySink, Sink

__all__ = [
    "ConsoleSink", "FailureLog", "FrameJsonSink", "FrameRecord", "HookSink", "JsonlSink", "OverlaySink",
    "Pipeline", "PipelineOptions", "Renderer", "RunSummary", "Sink", "stop_on_signals",
]
