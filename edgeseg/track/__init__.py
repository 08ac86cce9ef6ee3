"""Tracking and counting instances over the frames of a stream.

Usage::

    from edgeseg.track import InstanceTracker, LineCounter
    tracker, line = InstanceTracker(), LineCounter((0, 240), (640, 240))
    for frame in frames:
        result = tracker.update(seg(frame))   # result.track_ids
        counts = line.update(result)          # {"line": {"box": 3, "can": 1}}: tracks that crossed, per class
"""

from edgeseg.track.count import LineCounter, ZoneCounter
from edgeseg.track.tracker import InstanceTracker, TrackerOptions

__all__ = ["InstanceTracker", "LineCounter", "TrackerOptions", "ZoneCounter"]
