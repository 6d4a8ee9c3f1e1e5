"""Fake segments: the time ranges of a video whose sampled frames look fake.

Frame scores are smoothed with a centred moving average over neighbouring *sampled*
frames, the end scores repeated past the ends (so one stray frame does not make a
segment, nor break one), and each run of
consecutive sampled frames whose smoothed score is at or above the threshold becomes
a :class:`Segment`.

A sampled frame stands for the time up to halfway to its sampled neighbours, so a
segment runs from halfway between the sampled frame before the run and the run's
first frame, to halfway between the run's last frame and the sampled frame after it.
At the ends of the sampled frames there is no neighbour: a run that starts at the
first sampled frame starts at that frame's timestamp, and one that ends at the last
sampled frame ends at that frame's timestamp.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepfakedetect._errors import ConfigError, InputError
from deepfakedetect.video.aggregators import FrameScores

logger = logging.getLogger(__name__)

__all__ = ["Segment", "find_segments"]


@dataclass(frozen=True)
class Segment:
    """A time range of a video whose sampled frames look fake.

    Attributes:
        start: Start in seconds (see the module documentation for how ends are placed).
        end: End in seconds; ``end >= start``.
        start_index: Index of the first sampled frame in the range.
        end_index: Index of the last sampled frame in the range (inclusive).
        score: Mean of the (unsmoothed) scores of the sampled frames in the range.
        num_frames: How many sampled frames the range holds.

    Example:
        >>> Segment(start=1.0, end=2.5, start_index=25, end_index=50, score=0.9, num_frames=2).to_dict()["end"]
        2.5
    """

    start: float
    end: float
    start_index: int
    end_index: int
    score: float
    num_frames: int = 1

    @property
    def duration(self) -> float:
        """``end - start`` in seconds."""
        return self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary.

        Example:
            >>> sorted(Segment(start=0.0, end=1.0, start_index=0, end_index=25, score=0.8).to_dict())
            ['end', 'end_index', 'num_frames', 'score', 'start', 'start_index']
        """
        return {
            "start": float(self.start),
            "end": float(self.end),
            "start_index": int(self.start_index),
            "end_index": int(self.end_index),
            "score": float(self.score),
            "num_frames": int(self.num_frames),
        }


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average; past the ends the first and last values are repeated."""
    if window <= 1 or len(values) <= 1:
        return values.astype(np.float64, copy=True)
    before = (window - 1) // 2
    after = window // 2
    padded = np.concatenate((np.full(before, values[0]), values, np.full(after, values[-1])))
    csum = np.concatenate(([0.0], np.cumsum(padded, dtype=np.float64)))
    return (csum[window:] - csum[:-window]) / window


def find_segments(
    scores: FrameScores, *, threshold: float, smoothing: int = 3, min_frames: int = 1
) -> list[Segment]:
    """The time ranges whose smoothed frame scores are at or above ``threshold``.

    Args:
        scores: Frame scores with their indices and timestamps (any order; they are
            sorted by index).
        threshold: A sampled frame counts as fake when its smoothed score is at or
            above this (less 1e-12, so rounding cannot lose an exact tie), in [0, 1].
        smoothing: Window of the centred moving average, in sampled frames: frame
            ``i`` is averaged with the ``(smoothing - 1) // 2`` before it and the
            ``smoothing // 2`` after it; past the first and last sampled frames their
            scores are repeated, so an edge frame weighs no more than any other.
            1 means no smoothing.
        min_frames: Runs of fewer sampled frames than this are dropped.

    Returns:
        The segments in time order; empty when no frame is at or above the threshold
        (or there are no scores).

    Raises:
        ConfigError: for a threshold outside [0, 1] or a smoothing / min_frames below 1.
        InputError: when ``scores`` is not a :class:`FrameScores`.

    Example:
        >>> fs = FrameScores(scores=[0.1, 0.9, 0.95, 0.9, 0.1], indices=[0, 25, 50, 75, 100],
        ...                  timestamps=[0.0, 1.0, 2.0, 3.0, 4.0])
        >>> [(s.start, s.end, s.start_index, s.end_index) for s in find_segments(fs, threshold=0.5, smoothing=1)]
        [(0.5, 3.5, 25, 75)]
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.number)) or not (
        math.isfinite(threshold) and 0.0 <= threshold <= 1.0
    ):
        raise ConfigError(f"threshold must be a number in [0, 1], got {threshold!r}")
    for name, value in (("smoothing", smoothing), ("min_frames", min_frames)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    if not isinstance(scores, FrameScores):
        raise InputError(f"find_segments needs FrameScores, got {type(scores).__name__}")
    if len(scores) == 0:
        return []
    order = np.argsort(scores.indices, kind="stable")
    raw = scores.scores[order]
    idx = scores.indices[order]
    ts = scores.timestamps[order]
    # A little slack so that an average equal to the threshold on paper counts despite rounding.
    flagged = _smooth(raw, int(smoothing)) >= threshold - 1e-12
    n = len(raw)
    segments: list[Segment] = []
    i = 0
    while i < n:
        if not flagged[i]:
            i += 1
            continue
        j = i
        while j + 1 < n and flagged[j + 1]:
            j += 1
        if j - i + 1 >= min_frames:
            start = (ts[i - 1] + ts[i]) / 2.0 if i > 0 else ts[i]
            end = (ts[j] + ts[j + 1]) / 2.0 if j + 1 < n else ts[j]
            segments.append(
                Segment(
                    start=float(start),
                    end=float(end),
                    start_index=int(idx[i]),
                    end_index=int(idx[j]),
                    score=float(np.mean(raw[i : j + 1])),
                    num_frames=j - i + 1,
                )
            )
        i = j + 1
    return segments
