"""Aggregators: how a video's frame scores become one score (public namespace of the built-ins).

An aggregator is any callable ``(FrameScores) -> float``. Name one in
``detect_video(aggregator="top_k_mean:k=5")``, pass an instance of a built-in below, or
pass your own function. :func:`~deepfakedetect.register_aggregator` gives yours a name.

Example:
    >>> from deepfakedetect.aggregators import FrameScores, TopKMeanAggregator
    >>> TopKMeanAggregator(k=2)(FrameScores(scores=[0.25, 0.75, 0.5], indices=[0, 1, 2], timestamps=[0, 1, 2]))
    0.625
"""

from deepfakedetect.video.aggregators import (
    Aggregator,
    ConfidentAggregator,
    FrameScores,
    MajorityAggregator,
    MaxAggregator,
    MeanAggregator,
    MedianAggregator,
    QuantileAggregator,
    TemporalAggregator,
    TopKMeanAggregator,
    TrimmedMeanAggregator,
    get_aggregator,
    list_aggregators,
    register_aggregator,
)
from deepfakedetect.video.segments import Segment, find_segments

__all__ = [
    "Aggregator",
    "ConfidentAggregator",
    "FrameScores",
    "MajorityAggregator",
    "MaxAggregator",
    "MeanAggregator",
    "MedianAggregator",
    "QuantileAggregator",
    "Segment",
    "TemporalAggregator",
    "TopKMeanAggregator",
    "TrimmedMeanAggregator",
    "find_segments",
    "get_aggregator",
    "list_aggregators",
    "register_aggregator",
]
