"""Calibrating a detector on validation data: temperature, threshold, operating points.

- **Temperature**: the single scalar ``T`` that minimises the negative log-likelihood
  of ``softmax(logits / T)`` on validation data (temperature scaling, Guo et al.
  2017). It changes probabilities, never the ranking, so AUC is unchanged.
- **Threshold**: by default the threshold that maximises balanced accuracy (the mean
  of the accuracy on real and on fake samples, equivalently Youden's J) on the
  calibrated scores. Unlike plain accuracy it does not drift towards the majority
  class when validation data is unbalanced; ``method="eer"`` picks the equal-error
  point instead.
- **Operating points**: named thresholds at fixed false-positive rates, e.g.
  ``"fpr@1%"``, for users who must bound how many real items get flagged.
- **Uncertain band**: ``(low, high)`` around the threshold, where validation shows the
  score cannot be trusted. ``high`` is the lowest score (at or above the threshold) from
  which calling "fake" reaches the target precision on the validation data; ``low`` the
  highest score (at or below it) below which calling "real" does. Precision is
  class-balanced by default (as if real and fake were equally common), so an unbalanced
  validation set does not flatter the majority class's calls. When no score reaches the
  target on one side, the band runs to the end of the scale there.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from deepfakedetect._config import CalibrationConfig
from deepfakedetect._errors import ConfigError
from deepfakedetect._metrics import equal_error_rate, roc_auc, roc_curve, threshold_at_fpr
from deepfakedetect.results import verdict

logger = logging.getLogger(__name__)

__all__ = [
    "band_stats",
    "calibrate",
    "fake_margin",
    "fit_temperature",
    "fit_threshold",
    "fit_uncertain_band",
    "operating_points",
]

# Temperatures are searched in this range: beyond it the data are separable (T -> 0)
# or carry no signal (T -> inf), and an extreme value would only overfit the split.
_T_MIN, _T_MAX = 0.05, 20.0
_THRESHOLD_METHODS = ("balanced_accuracy", "eer")


def fake_margin(logits: Any, *, fake_index: int = 0) -> np.ndarray:
    """The logit of "fake" against "real": ``p_fake = sigmoid(margin / T)``.

    Args:
        logits: (N, 2) two-class logits or (N,) / (N, 1) single fake logits.
        fake_index: Which of two columns is fake.

    Returns:
        A float64 array of shape (N,).

    Raises:
        ConfigError: for other shapes.

    Example:
        >>> fake_margin([[2.0, 0.5], [0.0, 1.0]], fake_index=0).tolist()
        [1.5, -1.0]
    """
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim == 2 and z.shape[1] == 2:
        if fake_index not in (0, 1):
            raise ConfigError(f"fake_index must be 0 or 1 for two-class logits, got {fake_index!r}")
        return z[:, fake_index] - z[:, 1 - fake_index]
    if z.ndim == 2 and z.shape[1] == 1:
        return z[:, 0]
    if z.ndim == 1:
        return z
    raise ConfigError(f"logits must have shape (N, 2), (N, 1) or (N,), got {z.shape}")


def _nll(margin: np.ndarray, y: np.ndarray, temperature: float) -> float:
    z = margin / temperature
    # -log sigmoid(z) for fakes, -log sigmoid(-z) for reals, computed stably.
    signed = np.where(y == 1, z, -z)
    return float(np.mean(np.logaddexp(0.0, -signed)))


def fit_temperature(logits: Any, y_true: Any, *, fake_index: int = 0) -> float:
    """The temperature that minimises the validation negative log-likelihood.

    The NLL is convex in ``1 / T``, so a golden-section search over ``log T`` in
    [0.05, 20] finds the minimum; a minimum at an end of the range (separable or
    uninformative data) is returned as that end and logged.

    Args:
        logits: (N, 2) logits or (N,) single fake logits, uncalibrated.
        y_true: 1 for fake, 0 for real.
        fake_index: Which of two columns is fake.

    Returns:
        The temperature (divide logits by it).

    Raises:
        ConfigError: for empty input or mismatched lengths.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> margin = rng.normal(0.0, 2.0, 5000)
        >>> y = (rng.random(5000) < 1 / (1 + np.exp(-margin))).astype(int)  # margin is calibrated
        >>> round(fit_temperature(3 * margin, y))  # logits three times too confident
        3
    """
    margin = fake_margin(logits, fake_index=fake_index)
    y = np.asarray(y_true).astype(np.int64)
    if len(margin) == 0 or len(margin) != len(y):
        raise ConfigError(f"need as many labels as logits (and at least one), got {len(y)} and {len(margin)}")
    lo, hi = math.log(_T_MIN), math.log(_T_MAX)
    golden = (math.sqrt(5) - 1) / 2
    a, b = lo, hi
    c, d = b - golden * (b - a), a + golden * (b - a)
    fc, fd = _nll(margin, y, math.exp(c)), _nll(margin, y, math.exp(d))
    for _ in range(80):
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - golden * (b - a)
            fc = _nll(margin, y, math.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + golden * (b - a)
            fd = _nll(margin, y, math.exp(d))
    t = math.exp((a + b) / 2)
    if t < _T_MIN * 1.01 or t > _T_MAX / 1.01:
        logger.info("fitted temperature %.4g is at the end of the searched range [%g, %g]", t, _T_MIN, _T_MAX)
    return t


def fit_threshold(y_true: Any, scores: Any, *, method: str = "balanced_accuracy") -> float:
    """A decision threshold on fake scores, fitted on validation data.

    Args:
        y_true: 1 for fake, 0 for real; both classes needed.
        scores: Calibrated fake probabilities.
        method: ``"balanced_accuracy"`` (default): the threshold maximising the mean
            of the real and fake accuracies, placed midway between the two scores
            that bound it; ``"eer"``: the equal-error-rate threshold.

    Returns:
        A threshold in [0, 1] (predict fake when ``score >= threshold``).

    Raises:
        ConfigError: for an unknown method or a missing class.

    Example:
        >>> fit_threshold([0, 0, 1, 1], [0.1, 0.3, 0.4, 0.9])
        0.35
    """
    if method not in _THRESHOLD_METHODS:
        raise ConfigError(f"unknown threshold method {method!r}; choose one of {', '.join(_THRESHOLD_METHODS)}")
    if method == "eer":
        return equal_error_rate(y_true, scores)[1]
    fpr, tpr, thr = roc_curve(y_true, scores)
    j = tpr - fpr
    i = int(np.argmax(j[1:])) + 1  # point 0 (threshold +inf) flags nothing
    upper = thr[i]
    lower = thr[i + 1] if i + 1 < len(thr) else 0.0
    return float(np.clip((upper + lower) / 2, 0.0, 1.0))


def operating_points(y_true: Any, scores: Any, *, fprs: Sequence[float] = (0.01, 0.05)) -> dict[str, float]:
    """Named thresholds at target false-positive rates, e.g. ``{"fpr@1%": 0.97}``.

    Args:
        y_true: 1 for fake, 0 for real.
        scores: Calibrated fake probabilities.
        fprs: Target false-positive rates.

    Returns:
        ``{"fpr@<rate>%": threshold}``, from :func:`~deepfakedetect._metrics.threshold_at_fpr`.

    Example:
        >>> sorted(operating_points([0] * 99 + [1], list(np.linspace(0, 0.98, 99)) + [0.99]))
        ['fpr@1%', 'fpr@5%']
    """
    out: dict[str, float] = {}
    for rate in fprs:
        name = f"fpr@{rate * 100:g}%"
        out[name] = threshold_at_fpr(y_true, scores, rate)
    return out


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


def calibrate(
    logits: Any,
    y_true: Any,
    *,
    fake_index: int = 0,
    method: str = "balanced_accuracy",
    fprs: Sequence[float] = (0.01, 0.05),
    temperature: bool = True,
    target_precision: float | None = 0.9,
) -> CalibrationConfig:
    """Fit a temperature, a threshold, operating points and an uncertain band on validation logits.

    Args:
        logits: (N, 2) logits or (N,) single fake logits, uncalibrated.
        y_true: 1 for fake, 0 for real; both classes needed.
        fake_index: Which of two columns is fake (``config.fake_index``).
        method: Threshold method (see :func:`fit_threshold`).
        fprs: False-positive rates for the named operating points.
        temperature: Fit a temperature (else keep 1.0).
        target_precision: The class-balanced precision each call must reach outside the
            uncertain band (see :func:`fit_uncertain_band`); ``None`` fits no band.

    Returns:
        A :class:`~deepfakedetect.CalibrationConfig` for ``config.replace(calibration=...)``,
        with ``fitted_on``: ``n_real``, ``n_fake``, ``auc``, ``target_precision``,
        ``uncertain_share`` and ``decided_accuracy`` on these validation samples.

    Raises:
        ConfigError: for a missing class or bad arguments.

    Example:
        >>> cal = calibrate([[2.0, 0.0], [-1.0, 1.0], [0.5, 0.0], [-2.0, 0.5]], [1, 0, 1, 0])
        >>> 0.0 <= cal.threshold <= 1.0, sorted(cal.operating_points)
        (True, ['fpr@1%', 'fpr@5%'])
    """
    margin = fake_margin(logits, fake_index=fake_index)
    y = np.asarray(y_true).astype(np.int64)
    n_fake = int(y.sum())
    if n_fake == 0 or n_fake == len(y):
        raise ConfigError(
            f"calibration needs real and fake validation samples, got {len(y) - n_fake} real and {n_fake} fake"
        )
    t = fit_temperature(margin, y) if temperature else 1.0
    scores = 1.0 / (1.0 + np.exp(-margin / t))
    threshold = fit_threshold(y, scores, method=method)
    points = operating_points(y, scores, fprs=fprs)
    band = (
        fit_uncertain_band(y, scores, threshold, target_precision=target_precision)
        if target_precision is not None
        else None
    )
    fitted: dict[str, Any] = {
        "n_real": len(y) - n_fake,
        "n_fake": n_fake,
        "auc": roc_auc(y, scores),
        "method": method,
        "target_precision": target_precision,
        **band_stats(y, scores, threshold, band),
    }
    fitted = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in fitted.items()}
    logger.info(
        "calibration: temperature %.4g, threshold %.4g (%s), %s, uncertain band %s (%.1f%% of validation)",
        t, threshold, method, points, band, 100 * fitted["uncertain_share"],
    )  # fmt: skip
    return CalibrationConfig(
        temperature=float(t), threshold=float(threshold), operating_points=points, uncertain_band=band, fitted_on=fitted
    )
