"""The "uncertain" band: where validation data shows a score cannot be trusted.

A calibrated threshold splits scores into "real" and "fake", but scores close to it are
coin flips. The band ``[low, high)`` around the threshold is fitted on validation data:

- ``high`` is the lowest score (at or above the threshold) from which calling "fake"
  reaches the target precision on the validation data;
- ``low`` is the highest score (at or below the threshold) below which calling "real"
  reaches the target precision.

Precision is class-balanced by default: computed as if real and fake items were equally
common (``prior=0.5``), so an unbalanced validation set (more fakes than reals, as in
FaceForensics++) does not make "fake" calls look more precise than they are. When no
score reaches the target on one side, the band reaches the end of the scale on that side
and every score there is "uncertain".

A verdict is ``"fake"`` at or above ``high``, ``"real"`` below ``low`` and
``"uncertain"`` in between; it never contradicts the label (``"fake"`` when
``score >= threshold``): the band is widened to hold the threshold when a caller passes
a threshold outside it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._errors import ConfigError

__all__ = ["VERDICTS", "band_stats", "fit_uncertain_band", "verdict"]

#: The three verdicts a result can carry.
VERDICTS = ("real", "fake", "uncertain")


def verdict(score: float | None, threshold: float, band: tuple[float, float] | None) -> str | None:
    """The verdict on one score: ``"real"``, ``"fake"`` or ``"uncertain"``; ``None`` without a score.

    Args:
        score: The calibrated fake score, or ``None`` (no face: no verdict).
        threshold: The decision threshold (``"fake"`` when ``score >= threshold``).
        band: ``(low, high)``: scores in ``[low, high)`` are uncertain; ``None``: no band.

    Example:
        >>> [verdict(s, 0.5, (0.3, 0.8)) for s in (0.1, 0.3, 0.6, 0.8)]
        ['real', 'uncertain', 'uncertain', 'fake']
        >>> verdict(0.6, 0.5, None)
        'fake'
    """
    if score is None:
        return None
    label = "fake" if score >= threshold else "real"
    if band is None:
        return label
    low, high = min(band[0], threshold), max(band[1], threshold)
    return "uncertain" if low <= score < high else label


def check_band(band: Any, *, what: str = "uncertain_band") -> tuple[float, float] | None:
    """Validate a band: ``None``, or two numbers ``0 <= low <= high <= 1``.

    Example:
        >>> check_band([0.2, 0.7])
        (0.2, 0.7)
    """
    if band is None:
        return None
    try:
        low, high = (float(v) for v in band)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be two numbers (low, high) or None, got {band!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and 0.0 <= low <= high <= 1.0):
        raise ConfigError(f"{what} must satisfy 0 <= low <= high <= 1, got {band!r}")
    return (low, high)


def _precision(called: np.ndarray, y: np.ndarray, positive: int, prior: float | None) -> float:
    """Precision of calling ``positive`` on the items where ``called`` is true."""
    if not called.any():
        return math.nan
    hits = called & (y == positive)
    misses = called & (y != positive)
    if prior is None:
        return float(hits.sum() / called.sum())
    n_pos, n_neg = int((y == positive).sum()), int((y != positive).sum())
    p = prior if positive == 1 else 1.0 - prior
    rate_hit = hits.sum() / n_pos if n_pos else 0.0
    rate_miss = misses.sum() / n_neg if n_neg else 0.0
    denom = p * rate_hit + (1.0 - p) * rate_miss
    return float(p * rate_hit / denom) if denom > 0 else math.nan


def fit_uncertain_band(
    y_true: Any,
    scores: Any,
    threshold: float,
    *,
    target_precision: float = 0.9,
    prior: float | None = 0.5,
) -> tuple[float, float]:
    """Fit the uncertain band around ``threshold`` on validation scores.

    Args:
        y_true: 1 for fake, 0 for real; both classes needed.
        scores: Calibrated fake scores in [0, 1].
        threshold: The decision threshold the band surrounds.
        target_precision: The precision each call ("fake" at or above ``high``, "real"
            below ``low``) must reach on the validation data.
        prior: The share of fakes precision is computed for (0.5: class-balanced);
            ``None`` uses the validation data's own mix.

    Returns:
        ``(low, high)`` with ``0 <= low <= threshold <= high <= 1``.

    Raises:
        ConfigError: a missing class, mismatched lengths, or a target outside (0.5, 1].

    Example:
        >>> y = [0, 0, 0, 0, 1, 0, 1, 1, 1, 1]
        >>> s = [0.05, 0.1, 0.2, 0.3, 0.4, 0.55, 0.6, 0.7, 0.8, 0.9]
        >>> fit_uncertain_band(y, s, 0.5, target_precision=0.95)
        (0.4, 0.6)
    """
    if not (isinstance(target_precision, (int, float)) and 0.5 < float(target_precision) <= 1.0):
        raise ConfigError(f"target_precision must be in (0.5, 1], got {target_precision!r}")
    if prior is not None and not (0.0 < float(prior) < 1.0):
        raise ConfigError(f"prior must be in (0, 1) or None, got {prior!r}")
    y = np.asarray(y_true).astype(np.int64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if len(y) != len(s):
        raise ConfigError(f"need as many labels as scores, got {len(y)} and {len(s)}")
    n_fake = int(y.sum())
    if n_fake == 0 or n_fake == len(y):
        raise ConfigError(
            f"an uncertain band needs real and fake validation samples, got {len(y) - n_fake} real and {n_fake} fake"
        )
    target = float(target_precision)
    # high: the lowest candidate t >= threshold where calling "fake" for s >= t is precise enough.
    high = 1.0
    for t in np.unique(np.r_[threshold, s[s >= threshold]]):
        p = _precision(s >= t, y, 1, prior)
        if not math.isnan(p) and p >= target:
            high = float(t)
            break
    # low: the highest candidate t <= threshold where calling "real" for s < t is precise enough.
    low = 0.0
    for t in np.unique(np.r_[threshold, s[s <= threshold]])[::-1]:
        p = _precision(s < t, y, 0, prior)
        if not math.isnan(p) and p >= target:
            low = float(t)
            break
    return (min(low, threshold), max(high, threshold))


def band_stats(y_true: Any, scores: Any, threshold: float, band: tuple[float, float] | None) -> dict[str, Any]:
    """What a band does on labelled scores: the uncertain share and the accuracy of the rest.

    Returns:
        ``uncertain_share`` (of all items), ``decided_accuracy`` (accuracy of the
        "real"/"fake" verdicts, NaN when none), ``uncertain_real`` and ``uncertain_fake``
        (how many of each class are uncertain).

    Example:
        >>> band_stats([0, 1, 1, 0], [0.1, 0.9, 0.6, 0.55], 0.5, (0.5, 0.7))
        {'uncertain_share': 0.5, 'decided_accuracy': 1.0, 'uncertain_real': 1, 'uncertain_fake': 1}
    """
    y = np.asarray(y_true).astype(np.int64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    v = np.array([verdict(float(x), threshold, band) for x in s], dtype=object)
    unsure = v == "uncertain"
    decided = ~unsure
    right = (v == "fake") & (y == 1) | (v == "real") & (y == 0)
    return {
        "uncertain_share": float(unsure.mean()) if len(y) else math.nan,
        "decided_accuracy": float(right[decided].mean()) if decided.any() else math.nan,
        "uncertain_real": int((unsure & (y == 0)).sum()),
        "uncertain_fake": int((unsure & (y == 1)).sum()),
    }
