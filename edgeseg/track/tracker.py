"""A multi-object tracker for instances: ByteTrack-style two-stage association, mask-aware.

Per frame (:meth:`InstanceTracker.update`):

1. Every track's box is predicted one frame ahead (:mod:`~edgeseg.track.kalman`,
   constant velocity).
2. High-score detections (``>= high_score``) are matched to the confirmed and
   lost tracks on box IoU, mixed with mask IoU where boxes overlap
   (:mod:`~edgeseg.track.association`), same class only.
3. Low-score detections (``>= low_score``) are matched to the confirmed and
   lost tracks still unmatched (ByteTrack's second stage, which takes only
   tracks seen in the previous frame; taking lost ones too keeps ids through
   a stretch of low-confidence frames, e.g. when the light drops).
4. Tentative tracks are matched to the high-score detections left.
5. Birth: a high-score detection left over (``>= birth_score``) starts a
   tentative track; it gets an id after ``min_hits`` matched frames in a row
   (at once on the first frame). Death: a tentative track that misses a
   frame is dropped; a confirmed one becomes lost and is dropped after
   ``lost_frames`` frames without a match.

The output is the frame's own Result with a ``track_ids`` column: each id
sits on this frame's detection, so its mask is this frame's mask of that
object (never a stale or predicted one); detections without a confirmed
track get -1. Hand-written on numpy and scipy (the assignment) because the
tracking libraries (``trackers``, boxmot) need torch, which boards do not
install.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from edgeseg.result import CroppedMask, Result
from edgeseg.track import kalman
from edgeseg.track.association import assign, similarity


@dataclass(frozen=True)
class TrackerOptions:
    """Association thresholds and birth / death rules.

    Attributes:
        high_score: Detections at or above this score take part in the first stage.
        low_score: Detections below this are ignored (between: second stage only).
        birth_score: A new track needs a detection at least this confident.
        match_threshold: Least similarity (IoU-like, [0, 1]) for a first-stage or tentative match.
        low_match_threshold: Least similarity for a second-stage (low-score) match.
        min_hits: Matched frames in a row before a new track is given an id.
        lost_frames: Frames a lost track is kept (and predicted) while waiting to be found again.
    """

    high_score: float = 0.5
    low_score: float = 0.1
    birth_score: float = 0.6
    match_threshold: float = 0.2
    low_match_threshold: float = 0.3
    min_hits: int = 2
    lost_frames: int = 30

    def __post_init__(self) -> None:
        if not 0 <= self.low_score <= self.high_score <= 1 or not 0 <= self.birth_score <= 1:
            raise ValueError(f"need 0 <= low_score <= high_score <= 1 and birth_score in [0, 1], got "
                             f"{self.low_score}, {self.high_score}, {self.birth_score}")
        if not (0 < self.match_threshold <= 1 and 0 < self.low_match_threshold <= 1):
            raise ValueError(f"match thresholds must be in (0, 1], got {self.match_threshold}, "
                             f"{self.low_match_threshold}")
        if self.min_hits < 1 or self.lost_frames < 0:
            raise ValueError(f"min_hits must be >= 1 and lost_frames >= 0, got {self.min_hits}, {self.lost_frames}")


@dataclass
class _Track:
    track_id: int  # 0 while tentative
    class_id: int
    mean: np.ndarray  # (8,) Kalman state
    cov: np.ndarray  # (8, 8)
    mask: CroppedMask | None
    mask_center: np.ndarray  # (2,) state centre when the mask was seen
    hits: int = 1
    missed: int = 0


class InstanceTracker:
    """Keeps ids of instances across the frames of one stream.

    Args:
        options: Thresholds and birth / death rules (defaults: :class:`TrackerOptions`).

    Example::

        tracker = InstanceTracker()
        for frame in frames:
            result = tracker.update(seg(frame))   # result.track_ids: (N,) int32, -1 = not (yet) tracked
    """

    def __init__(self, options: TrackerOptions | None = None) -> None:
        self.options = options or TrackerOptions()
        self._tracks: list[_Track] = []
        self._next_id = 1
        self._frames = 0

    @property
    def active_ids(self) -> list[int]:
        """Ids of confirmed tracks that are not lost."""
        return [t.track_id for t in self._tracks if t.track_id and not t.missed]

    def update(self, result: Result) -> Result:
        """Associates ``result``'s instances with the tracks; returns it with ``track_ids`` set."""
        o = self.options
        tracks = self._tracks
        if tracks:
            mean, cov = kalman.predict(np.stack([t.mean for t in tracks]), np.stack([t.cov for t in tracks]))
            for t, m, c in zip(tracks, mean, cov, strict=True):
                t.mean, t.cov = m, c
        scores = result.scores
        high = np.flatnonzero(scores >= o.high_score)
        low = np.flatnonzero((scores >= o.low_score) & (scores < o.high_score))
        det_of: dict[int, int] = {}  # detection row -> track index

        def match(track_idx: list[int], det_idx: np.ndarray, threshold: float) -> tuple[list[int], list[int]]:
            sim = self._similarity([tracks[i] for i in track_idx], result, det_idx)
            pairs, free_t, free_d = assign(sim, threshold)
            for ti, di in pairs:
                det_of[int(det_idx[di])] = track_idx[ti]
            return [track_idx[i] for i in free_t], [int(det_idx[j]) for j in free_d]

        confirmed = [i for i, t in enumerate(tracks) if t.track_id]
        tentative = [i for i, t in enumerate(tracks) if not t.track_id]
        left_tracks, left_high = match(confirmed, high, o.match_threshold)
        match(left_tracks, low, o.low_match_threshold)
        _, left_high = match(tentative, np.asarray(left_high, np.int64), o.match_threshold)

        matched = set(det_of.values())
        if det_of:
            rows = list(det_of)
            idx = [det_of[r] for r in rows]
            mean, cov = kalman.update(np.stack([tracks[i].mean for i in idx]), np.stack([tracks[i].cov for i in idx]),
                                      result.boxes[rows])
            for r, i, m, c in zip(rows, idx, mean, cov, strict=True):
                t = tracks[i]
                t.mean, t.cov, t.hits, t.missed = m, c, t.hits + 1, 0
                t.mask, t.mask_center = (result.masks[r] if result.masks else None), m[:2].copy()
                if not t.track_id and t.hits >= o.min_hits:
                    t.track_id = self._take_id()
        survivors = []
        for i, t in enumerate(tracks):
            if i in matched:
                survivors.append(t)
            elif t.track_id and t.missed < o.lost_frames:
                t.missed += 1
                t.hits = 0
                survivors.append(t)
        births = [r for r in left_high if scores[r] >= o.birth_score]
        if births:
            mean, cov = kalman.initiate(result.boxes[births])
            for r, m, c in zip(births, mean, cov, strict=True):
                t = _Track(0, int(result.class_ids[r]), m, c, result.masks[r] if result.masks else None, m[:2].copy())
                if self._frames == 0 or o.min_hits <= 1:
                    t.track_id = self._take_id()
                survivors.append(t)
                det_of[r] = len(survivors) - 1
        self._tracks = survivors
        self._frames += 1
        ids = np.full(len(result), -1, np.int32)
        index = {id(t): t for t in survivors}
        for r, i in det_of.items():
            t = survivors[i] if r in births else tracks[i]
            if id(t) in index and t.track_id:
                ids[r] = t.track_id
        return dataclasses.replace(result, track_ids=ids)

    def _take_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    @staticmethod
    def _similarity(tracks: list[_Track], result: Result, det_idx: np.ndarray) -> np.ndarray:
        if not tracks or not len(det_idx):
            return np.zeros((len(tracks), len(det_idx)))
        means = np.stack([t.mean for t in tracks])
        shifts = np.rint(means[:, :2] - np.stack([t.mask_center for t in tracks])).astype(np.int64)
        masks = tuple(result.masks[i] for i in det_idx) if result.masks else ()
        return similarity(kalman.cxcywh_to_xyxy(means), np.array([t.class_id for t in tracks]),
                          [t.mask for t in tracks], shifts, result.boxes[det_idx].astype(np.float64),
                          result.class_ids[det_idx], masks)
