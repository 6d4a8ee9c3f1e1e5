"""An example deepfakedetect aggregator plugin: the mean of frame scores in log-odds space.

Averaging probabilities lets many lukewarm frames drown a few confident ones;
averaging their log-odds (logits) and mapping back gives confident frames more say,
which is how independent pieces of evidence combine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from deepfakedetect import ConfigError, InputError

if TYPE_CHECKING:
    from deepfakedetect.video.aggregators import FrameScores

__all__ = ["LogitMeanAggregator"]


@dataclass(frozen=True)
class LogitMeanAggregator:
    """``sigmoid(mean(logit(clip(scores, eps, 1 - eps))))``.

    Args:
        eps: Scores are clipped to ``[eps, 1 - eps]`` so that a frame scored exactly
            0 or 1 does not make the result infinite.

    Example:
        >>> from deepfakedetect.aggregators import FrameScores
        >>> agg = LogitMeanAggregator()
        >>> round(agg(FrameScores(scores=[0.5, 0.9, 0.9], indices=[0, 1, 2], timestamps=[0, 1, 2])), 4)
        0.8123
    """

    eps: float = 1e-4

    def __post_init__(self) -> None:
        if not (isinstance(self.eps, (int, float)) and 0 < self.eps < 0.5):
            raise ConfigError(f"logit_mean.eps must be in (0, 0.5), got {self.eps!r}")

    def __call__(self, scores: FrameScores, /) -> float:
        if len(scores) == 0:
            raise InputError("logit_mean needs at least one frame score")
        p = np.clip(scores.scores, self.eps, 1.0 - self.eps)
        mean_logit = float(np.mean(np.log(p) - np.log1p(-p)))
        return 1.0 / (1.0 + math.exp(-mean_logit))
