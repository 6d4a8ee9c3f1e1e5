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
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from deepfakedetect._config import CalibrationConfig
from deepfakedetect._errors import ConfigError
from deepfakedetect._metrics import equal_error_rate, roc_curve, threshold_at_fpr

logger = logging.getLogger(__name__)

__all__ = ["calibrate", "fake_margin", "fit_temperature", "fit_threshold", "operating_points"]

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


def calibrate(
    logits: Any,
    y_true: Any,
    *,
    fake_index: int = 0,
    method: str = "balanced_accuracy",
    fprs: Sequence[float] = (0.01, 0.05),
    temperature: bool = True,
) -> CalibrationConfig:
    """Fit a temperature, a threshold and operating points on validation logits.

    Args:
        logits: (N, 2) logits or (N,) single fake logits, uncalibrated.
        y_true: 1 for fake, 0 for real; both classes needed.
        fake_index: Which of two columns is fake (``config.fake_index``).
        method: Threshold method (see :func:`fit_threshold`).
        fprs: False-positive rates for the named operating points.
        temperature: Fit a temperature (else keep 1.0).

    Returns:
        A :class:`~deepfakedetect.CalibrationConfig` for ``config.replace(calibration=...)``.

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
    logger.info("calibration: temperature %.4g, threshold %.4g (%s), %s", t, threshold, method, points)
    return CalibrationConfig(temperature=float(t), threshold=float(threshold), operating_points=points)
