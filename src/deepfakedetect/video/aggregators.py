"""Aggregators: how the scores of a video's frames become one score.

An aggregator is anything callable as ``aggregator(frame_scores) -> float``, a plain
function included. Built-ins are frozen dataclasses whose fields are their
parameters (so their ``repr`` records exactly what ran), registered by name so that
configs and the command line can say ``"top_k_mean:k=5"`` or
``{"name": "quantile", "q": 0.95}``. Every aggregator is called with at least one
score; an empty :class:`FrameScores` raises :class:`InputError`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar, cast, runtime_checkable

import numpy as np

from deepfakedetect._errors import ConfigError, InputError
from deepfakedetect._registry import Registry
from deepfakedetect.models.temporal import load_temporal, temporal_probability

logger = logging.getLogger(__name__)

__all__ = [
    "AGGREGATORS",
    "Aggregator",
    "ConfidentAggregator",
    "FrameScores",
    "MajorityAggregator",
    "MaxAggregator",
    "MeanAggregator",
    "MedianAggregator",
    "QuantileAggregator",
    "TemporalAggregator",
    "TopKMeanAggregator",
    "TrimmedMeanAggregator",
    "get_aggregator",
    "list_aggregators",
    "register_aggregator",
]


@dataclass(frozen=True, eq=False)
class FrameScores:
    """The fake scores of a video's sampled frames, with where they are in the video.

    The three arrays have one entry per frame and are read-only.

    Attributes:
        scores: Fake probabilities in [0, 1] (float64).
        indices: Frame indices (int64).
        timestamps: Frame times in seconds (float64).
        features: Optional per-frame embeddings of the face scored, (N, D) float32, for
            aggregators that read them (``temporal``); ``None`` unless one asked for them.

    Raises:
        InputError: when the lengths differ, an array is not one-dimensional, or a
            score is outside [0, 1] or not a number.

    Example:
        >>> fs = FrameScores(scores=[0.1, 0.9], indices=[0, 25], timestamps=[0.0, 1.0])
        >>> len(fs), float(fs.scores.max())
        (2, 0.9)
    """

    scores: np.ndarray
    indices: np.ndarray
    timestamps: np.ndarray
    features: np.ndarray | None = None

    def __post_init__(self) -> None:
        arrays = {}
        for name, dtype in (("scores", np.float64), ("indices", np.int64), ("timestamps", np.float64)):
            try:
                arr = np.array(getattr(self, name), dtype=dtype)
            except (TypeError, ValueError) as e:
                raise InputError(f"FrameScores.{name} must be numbers: {e}") from e
            if arr.ndim != 1:
                raise InputError(f"FrameScores.{name} must be one-dimensional, got shape {arr.shape}")
            arr.setflags(write=False)
            arrays[name] = arr
        lengths = {k: len(v) for k, v in arrays.items()}
        if len(set(lengths.values())) > 1:
            raise InputError(f"FrameScores arrays must have the same length, got {lengths}")
        s = arrays["scores"]
        if len(s) and not (np.all(np.isfinite(s)) and s.min() >= 0.0 and s.max() <= 1.0):
            raise InputError("FrameScores.scores must be probabilities in [0, 1] (no NaN)")
        if self.features is not None:
            feats = np.array(self.features, dtype=np.float32)
            if feats.ndim != 2 or len(feats) != len(s):
                raise InputError(
                    f"FrameScores.features must be one row per score, (N, D) with N = {len(s)}; got shape {feats.shape}"
                )
            feats.setflags(write=False)
            object.__setattr__(self, "features", feats)
        for name, arr in arrays.items():
            object.__setattr__(self, name, arr)

    def __len__(self) -> int:
        return len(self.scores)


@runtime_checkable
class Aggregator(Protocol):
    """Turns the frame scores of a video into one fake score in [0, 1].

    Any callable with this signature is an aggregator, a plain function included.

    Example:
        >>> def last_frame(scores):
        ...     return float(scores.scores[-1])
        >>> isinstance(last_frame, Aggregator)
        True
    """

    def __call__(self, scores: FrameScores, /) -> float: ...


AGGREGATORS: Registry[Callable[..., Any]] = Registry("aggregator", group="deepfakedetect.aggregators")

F = TypeVar("F", bound=Callable[..., Any])


def register_aggregator(name: str | None = None, *, override: bool = False) -> Callable[[F], F]:
    """Decorator that registers an aggregator class or function under ``name``.

    Args:
        name: The name configs and the CLI use; default: the object's ``__name__``.
        override: Replace an existing aggregator of that name instead of raising.

    Returns:
        The decorator; it returns the object unchanged.

    Raises:
        ConfigError: when the name is taken and ``override`` is false.

    Example:
        >>> @register_aggregator("last_frame_example")
        ... def last_frame(scores):
        ...     return float(scores.scores[-1])
        >>> get_aggregator("last_frame_example")(FrameScores(scores=[0.2, 0.7], indices=[0, 1], timestamps=[0, 0.04]))
        0.7
    """
    return AGGREGATORS.register(name, override=override)


def list_aggregators() -> list[str]:
    """Sorted names of the aggregators known now, entry points of installed packages included.

    Returns:
        The names ``get_aggregator`` accepts.

    Example:
        >>> "top_k_mean" in list_aggregators()
        True
    """
    return AGGREGATORS.names()


def get_aggregator(spec: Any) -> Aggregator:
    """A ready aggregator from a name, ``"name:key=value"``, a mapping, or a callable.

    Args:
        spec: ``"mean"``, ``"top_k_mean:k=5"``, ``{"name": "quantile", "q": 0.95}``, or
            any callable ``(FrameScores) -> float`` (returned as it is).

    Returns:
        The aggregator.

    Raises:
        UnknownPluginError: no aggregator has that name (the message lists the known ones).
        ConfigError: the spec or its parameters are invalid.

    Example:
        >>> get_aggregator("top_k_mean:k=3")
        TopKMeanAggregator(k=3)
    """
    return cast(Aggregator, AGGREGATORS.create(spec))


def _values(scores: FrameScores, who: str) -> np.ndarray:
    if not isinstance(scores, FrameScores):
        raise InputError(f"{who} needs FrameScores, got {type(scores).__name__}")
    if len(scores) == 0:
        raise InputError(f"{who} needs at least one frame score, got none (no frame was decoded or scored)")
    return scores.scores


def _check_fraction(owner: str, name: str, value: Any, *, low: float, high: float, closed_high: bool = True) -> None:
    ok = (
        not isinstance(value, bool)
        and isinstance(value, (int, float, np.number))
        and math.isfinite(value)
        and low <= value
        and (value <= high if closed_high else value < high)
    )
    if not ok:
        bracket = "]" if closed_high else ")"
        raise ConfigError(f"{owner}.{name} must be a number in [{low}, {high}{bracket}, got {value!r}")


@register_aggregator("mean")
@dataclass(frozen=True)
class MeanAggregator:
    """The mean frame score.

    Example:
        >>> MeanAggregator()(FrameScores(scores=[0.25, 0.75], indices=[0, 1], timestamps=[0, 1]))
        0.5
    """

    def __call__(self, scores: FrameScores, /) -> float:
        return float(np.mean(_values(scores, "mean")))


@register_aggregator("median")
@dataclass(frozen=True)
class MedianAggregator:
    """The median frame score.

    Example:
        >>> MedianAggregator()(FrameScores(scores=[0.1, 0.9, 0.3], indices=[0, 1, 2], timestamps=[0, 1, 2]))
        0.3
    """

    def __call__(self, scores: FrameScores, /) -> float:
        return float(np.median(_values(scores, "median")))


@register_aggregator("max")
@dataclass(frozen=True)
class MaxAggregator:
    """The highest frame score.

    Example:
        >>> MaxAggregator()(FrameScores(scores=[0.1, 0.9, 0.3], indices=[0, 1, 2], timestamps=[0, 1, 2]))
        0.9
    """

    def __call__(self, scores: FrameScores, /) -> float:
        return float(np.max(_values(scores, "max")))


@register_aggregator("top_k_mean")
@dataclass(frozen=True)
class TopKMeanAggregator:
    """The mean of the ``k`` highest frame scores (of all of them when there are fewer).

    Example:
        >>> TopKMeanAggregator(k=2)(FrameScores(scores=[0.1, 0.9, 0.5], indices=[0, 1, 2], timestamps=[0, 1, 2]))
        0.7
    """

    k: int = 5

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, (int, np.integer)) or self.k < 1:
            raise ConfigError(f"top_k_mean.k must be an integer >= 1, got {self.k!r}")

    def __call__(self, scores: FrameScores, /) -> float:
        s = _values(scores, "top_k_mean")
        k = min(int(self.k), len(s))
        return float(np.mean(np.partition(s, len(s) - k)[len(s) - k :]))


@register_aggregator("quantile")
@dataclass(frozen=True)
class QuantileAggregator:
    """The ``q``-quantile of the frame scores (linear interpolation, as ``numpy.quantile``).

    Example:
        >>> QuantileAggregator(q=0.5)(FrameScores(scores=[0.1, 0.3, 0.9], indices=[0, 1, 2], timestamps=[0, 1, 2]))
        0.3
    """

    q: float = 0.9

    def __post_init__(self) -> None:
        _check_fraction("quantile", "q", self.q, low=0.0, high=1.0)

    def __call__(self, scores: FrameScores, /) -> float:
        return float(np.quantile(_values(scores, "quantile"), self.q))


@register_aggregator("trimmed_mean")
@dataclass(frozen=True)
class TrimmedMeanAggregator:
    """The mean after dropping ``floor(proportion * n)`` scores from each end (as ``scipy.stats.trim_mean``).

    Example:
        >>> fs = FrameScores(scores=[0.0, 0.5, 0.5, 1.0], indices=[0, 1, 2, 3], timestamps=[0, 1, 2, 3])
        >>> TrimmedMeanAggregator(proportion=0.25)(fs)
        0.5
    """

    proportion: float = 0.1

    def __post_init__(self) -> None:
        _check_fraction("trimmed_mean", "proportion", self.proportion, low=0.0, high=0.5, closed_high=False)

    def __call__(self, scores: FrameScores, /) -> float:
        s = np.sort(_values(scores, "trimmed_mean"))
        cut = int(math.floor(self.proportion * len(s)))
        return float(np.mean(s[cut : len(s) - cut]))


@register_aggregator("majority")
@dataclass(frozen=True)
class MajorityAggregator:
    """The fraction of frames whose score is at or above ``threshold`` (the vote for "fake").

    "At or above" is the rule that labels a single frame fake, so with the model's
    threshold the video is fake when at least that share of its frames are.

    Example:
        >>> MajorityAggregator()(FrameScores(scores=[0.2, 0.6, 0.9, 0.5], indices=[0, 1, 2, 3], timestamps=[0, 1, 2, 3]))
        0.75
    """

    threshold: float = 0.5

    def __post_init__(self) -> None:
        _check_fraction("majority", "threshold", self.threshold, low=0.0, high=1.0)

    def __call__(self, scores: FrameScores, /) -> float:
        return float(np.mean(_values(scores, "majority") >= self.threshold))


@register_aggregator("confident")
@dataclass(frozen=True)
class ConfidentAggregator:
    """The "confident strategy" of the DFDC winner (Selim Seferbekov, 2020).

    With ``n`` frames, let ``fakes`` be the number scoring above ``fake_threshold``:

    1. if ``fakes > min_fake_frames`` and ``fakes > n / fake_divisor``: the mean of those scores;
    2. else, if more than ``real_fraction * n`` frames score below ``real_threshold``:
       the mean of those scores;
    3. else: the mean of all scores.

    The defaults are the winner's (0.8, 11, 2.5, 0.2, 0.9). All comparisons are strict.

    Example:
        >>> fs = FrameScores(scores=[0.05] * 19 + [0.5], indices=list(range(20)), timestamps=list(range(20)))
        >>> round(ConfidentAggregator()(fs), 4)
        0.05
    """

    fake_threshold: float = 0.8
    min_fake_frames: int = 11
    fake_divisor: float = 2.5
    real_threshold: float = 0.2
    real_fraction: float = 0.9

    def __post_init__(self) -> None:
        _check_fraction("confident", "fake_threshold", self.fake_threshold, low=0.0, high=1.0)
        _check_fraction("confident", "real_threshold", self.real_threshold, low=0.0, high=1.0)
        _check_fraction("confident", "real_fraction", self.real_fraction, low=0.0, high=1.0)
        if (
            isinstance(self.min_fake_frames, bool)
            or not isinstance(self.min_fake_frames, (int, np.integer))
            or self.min_fake_frames < 0
        ):
            raise ConfigError(f"confident.min_fake_frames must be an integer >= 0, got {self.min_fake_frames!r}")
        if (
            isinstance(self.fake_divisor, bool)
            or not isinstance(self.fake_divisor, (int, float, np.number))
            or not (math.isfinite(self.fake_divisor) and self.fake_divisor > 0)
        ):
            raise ConfigError(f"confident.fake_divisor must be a positive number, got {self.fake_divisor!r}")

    def __call__(self, scores: FrameScores, /) -> float:
        s = _values(scores, "confident")
        n = len(s)
        fake = s[s > self.fake_threshold]
        if len(fake) > self.min_fake_frames and len(fake) > n / self.fake_divisor:
            return float(np.mean(fake))
        real = s[s < self.real_threshold]
        if len(real) > self.real_fraction * n:
            return float(np.mean(real))
        return float(np.mean(s))



@register_aggregator("temporal")
@dataclass(frozen=True)
class TemporalAggregator:
    """A learned temporal model over the frames' embeddings (see :mod:`deepfakedetect.models.temporal`).

    Unlike the other aggregators it reads ``FrameScores.features`` as well as the
    scores; ``detect_video`` computes them when this aggregator runs. It needs a
    trained head: the detector's own (a model folder with ``temporal.json`` and
    ``temporal.safetensors``, made by ``deepfakedetect train VIDEOS --temporal``), or
    the one in the folder ``model`` names.

    Attributes:
        model: A model folder to take the head from; ``None``: the detector's.

    Raises:
        ConfigError: ``model`` names a folder without a temporal head.
        InputError: when called without features or before a head is bound.

    Example:
        >>> TemporalAggregator()
        TemporalAggregator(model=None)
    """

    model: str | None = None
    head: Any = field(default=None, repr=False, compare=False)

    needs_features: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if self.model is not None and self.head is None:
            head = load_temporal(self.model)
            if head is None:
                raise ConfigError(
                    f"temporal.model {self.model!r} holds no temporal head (temporal.json and temporal.safetensors); "
                    "train one with 'deepfakedetect train VIDEOS --temporal --model FOLDER'"
                )
            object.__setattr__(self, "head", head)

    def with_head(self, head: Any) -> TemporalAggregator:
        """This aggregator using ``head`` (what ``detect_video`` does with the detector's own)."""
        return TemporalAggregator(model=self.model, head=head)

    def __call__(self, scores: FrameScores, /) -> float:
        s = _values(scores, "temporal")
        if self.head is None:
            raise InputError(
                "the temporal aggregator has no trained head: use a model folder that has one "
                "(deepfakedetect train VIDEOS --temporal), or pass {'name': 'temporal', 'model': FOLDER}"
            )
        if scores.features is None:
            raise InputError(
                "the temporal aggregator needs the frames' embeddings (FrameScores.features); "
                "detect_video computes them when this aggregator is chosen"
            )
        return temporal_probability(self.head, scores.features, s)
