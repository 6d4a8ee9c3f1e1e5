"""Binary classification metrics for real-vs-fake scores, in plain NumPy.

Conventions used everywhere in this module:

- ``y_true`` holds 1 for fake and 0 for real ("fake" is the positive class);
- ``scores`` are fake probabilities (``fake_score``), higher meaning more likely fake;
- a sample is predicted fake when ``score >= threshold``.

Results were checked against brute-force and hand-computed references (see
``tests/core/test_metrics.py``); no scikit-learn is needed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from deepfakedetect._errors import ConfigError

__all__ = [
    "accuracy",
    "balanced_accuracy",
    "binary_metrics",
    "confusion_matrix",
    "equal_error_rate",
    "expected_calibration_error",
    "log_loss",
    "precision_recall",
    "roc_auc",
    "roc_curve",
    "threshold_at_fpr",
]


def _as_arrays(y_true: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or s.ndim != 1 or len(y) != len(s):
        raise ConfigError(
            f"labels and scores must be 1-D and of the same length, got shapes {y.shape} and {s.shape}"
        )
    if y.size and not np.isin(y, (0, 1)).all():
        raise ConfigError(f"labels must be 0 (real) or 1 (fake), got values {np.unique(y)[:5].tolist()}")
    if not np.isfinite(s).all():
        raise ConfigError("scores contain NaN or infinite values")
    return y.astype(np.int64), s


def _predict(scores: np.ndarray, threshold: float) -> np.ndarray:
    return (scores >= threshold).astype(np.int64)


def confusion_matrix(y_true: Any, scores: Any, *, threshold: float = 0.5) -> np.ndarray:
    """The 2x2 confusion matrix ``[[TN, FP], [FN, TP]]``.

    Rows are the true class and columns the predicted class, each ordered
    ``(real, fake)``.

    Args:
        y_true: 1 for fake, 0 for real.
        scores: Fake probabilities.
        threshold: Predict fake when ``score >= threshold``.

    Returns:
        An int64 array of shape (2, 2).

    Raises:
        ConfigError: for labels other than 0/1 or mismatched lengths.

    Example:
        >>> confusion_matrix([0, 0, 1, 1], [0.2, 0.7, 0.6, 0.9]).tolist()
        [[1, 1], [0, 2]]
    """
    y, s = _as_arrays(y_true, scores)
    pred = _predict(s, threshold)
    cm = np.zeros((2, 2), dtype=np.int64)
    np.add.at(cm, (y, pred), 1)
    return cm


def accuracy(y_true: Any, scores: Any, *, threshold: float = 0.5) -> float:
    """Fraction of samples whose predicted label matches the true one (NaN when empty).

    Example:
        >>> accuracy([0, 0, 1, 1], [0.2, 0.7, 0.6, 0.9])
        0.75
    """
    y, s = _as_arrays(y_true, scores)
    return float(np.mean(_predict(s, threshold) == y)) if len(y) else math.nan


def balanced_accuracy(y_true: Any, scores: Any, *, threshold: float = 0.5) -> float:
    """Mean of the accuracy on real samples and the accuracy on fake samples.

    NaN when one of the classes is absent.

    Example:
        >>> balanced_accuracy([0, 0, 0, 1], [0.1, 0.2, 0.7, 0.9])
        0.8333333333333333
    """
    cm = confusion_matrix(y_true, scores, threshold=threshold)
    n_real, n_fake = cm[0].sum(), cm[1].sum()
    if n_real == 0 or n_fake == 0:
        return math.nan
    return float((cm[0, 0] / n_real + cm[1, 1] / n_fake) / 2)


def precision_recall(y_true: Any, scores: Any, *, threshold: float = 0.5) -> tuple[float, float]:
    """Precision and recall of the fake class.

    Precision is 0.0 when nothing is predicted fake; recall is NaN when there is no
    fake sample.

    Example:
        >>> precision_recall([0, 0, 1, 1], [0.2, 0.7, 0.6, 0.9])
        (0.6666666666666666, 1.0)
    """
    cm = confusion_matrix(y_true, scores, threshold=threshold)
    tp, fp, fn = cm[1, 1], cm[0, 1], cm[1, 0]
    precision = float(tp / (tp + fp)) if tp + fp else 0.0
    recall = float(tp / (tp + fn)) if tp + fn else math.nan
    return precision, recall


def roc_curve(y_true: Any, scores: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ROC curve: false- and true-positive rates at every distinct threshold.

    Tied scores form one point (so the curve has a diagonal segment through a tie).
    The first point is ``(0, 0)`` at threshold ``+inf``.

    Args:
        y_true: 1 for fake, 0 for real; both classes must be present.
        scores: Fake probabilities.

    Returns:
        ``(fpr, tpr, thresholds)``, with thresholds decreasing; at ``thresholds[i]``
        a sample is predicted fake when ``score >= thresholds[i]``.

    Raises:
        ConfigError: when a class is missing (the curve is undefined).

    Example:
        >>> fpr, tpr, thr = roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
        >>> fpr.tolist(), tpr.tolist()
        ([0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0])
    """
    y, s = _as_arrays(y_true, scores)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ConfigError(
            f"the ROC curve needs both real and fake samples, got {n_neg} real and {n_pos} fake"
        )
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    # The last index of each run of equal scores: all tied samples switch together.
    last_of_run = np.r_[np.flatnonzero(np.diff(s_sorted)), len(s_sorted) - 1]
    tps = np.cumsum(y_sorted)[last_of_run]
    fps = (last_of_run + 1) - tps
    fpr = np.r_[0.0, fps / n_neg]
    tpr = np.r_[0.0, tps / n_pos]
    thresholds = np.r_[np.inf, s_sorted[last_of_run]]
    return fpr, tpr, thresholds


def roc_auc(y_true: Any, scores: Any) -> float:
    """Area under the ROC curve; a tie between a real and a fake sample counts one half.

    Computed from average ranks (the Mann-Whitney U statistic), which equals the
    trapezoidal area under :func:`roc_curve`. NaN when a class is missing.

    Example:
        >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
        0.75
        >>> roc_auc([0, 1], [0.5, 0.5])
        0.5
    """
    y, s = _as_arrays(y_true, scores)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    order = np.argsort(s, kind="mergesort")
    s_sorted = s[order]
    ranks = np.empty(len(s), dtype=np.float64)
    # Average rank (1-based) of each run of tied scores.
    starts = np.r_[0, np.flatnonzero(np.diff(s_sorted)) + 1]
    ends = np.r_[starts[1:], len(s)]
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    u = ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def equal_error_rate(y_true: Any, scores: Any) -> tuple[float, float]:
    """The equal error rate: where the false-positive and false-negative rates meet.

    Linearly interpolated between the two ROC points around the crossing.

    Args:
        y_true: 1 for fake, 0 for real; both classes must be present.
        scores: Fake probabilities.

    Returns:
        ``(eer, threshold)``: the rate, and the ROC threshold at the first point where
        the false-negative rate is no longer above the false-positive rate (clipped to
        [0, 1]).

    Raises:
        ConfigError: when a class is missing.

    Example:
        >>> equal_error_rate([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9])
        (0.5, 0.6)
    """
    fpr, tpr, thr = roc_curve(y_true, scores)
    fnr = 1.0 - tpr
    diff = fnr - fpr  # starts at 1, ends at -1, never increases
    i = int(np.flatnonzero(diff <= 0)[0])
    d0, d1 = diff[i - 1], diff[i]
    t = d0 / (d0 - d1) if d0 != d1 else 0.0
    eer = fpr[i - 1] + t * (fpr[i] - fpr[i - 1])
    threshold = float(np.clip(thr[i], 0.0, 1.0))
    return float(eer), threshold


def threshold_at_fpr(y_true: Any, scores: Any, fpr: float) -> float:
    """The smallest threshold whose false-positive rate on these samples is at most ``fpr``.

    Args:
        y_true: 1 for fake, 0 for real; needs real samples.
        scores: Fake probabilities in [0, 1].
        fpr: Target false-positive rate in [0, 1].

    Returns:
        A threshold in [0, 1]: predicting fake when ``score >= threshold`` flags at
        most ``floor(fpr * n_real)`` real samples (real samples scored exactly 1.0
        are flagged by every threshold, so they may exceed that).

    Raises:
        ConfigError: for a target outside [0, 1] or no real samples.

    Example:
        >>> y, s = [0, 0, 0, 0, 1], [0.1, 0.2, 0.3, 0.9, 0.8]
        >>> t = threshold_at_fpr(y, s, 0.25)  # one real of four may be flagged: 0.9
        >>> 0.3 < t < 0.3001
        True
        >>> threshold_at_fpr(y, s, 0.0) > 0.9
        True
    """
    if not (0.0 <= fpr <= 1.0):
        raise ConfigError(f"a target false-positive rate must be in [0, 1], got {fpr!r}")
    y, s = _as_arrays(y_true, scores)
    real = np.sort(s[y == 0])[::-1]
    if len(real) == 0:
        raise ConfigError("a threshold at a false-positive rate needs real samples, got none")
    allowed = math.floor(fpr * len(real) + 1e-9)
    if allowed >= len(real):
        return 0.0
    # Just above the first real score that must not be flagged.
    return float(min(1.0, np.nextafter(real[allowed], np.inf)))


def log_loss(y_true: Any, probs: Any, *, eps: float = 1e-15) -> float:
    """Mean binary cross-entropy (natural log) of fake probabilities.

    Probabilities are clipped to ``[eps, 1 - eps]`` so a confident mistake costs a
    large but finite amount. NaN when empty.

    Example:
        >>> round(log_loss([1, 0], [0.8, 0.4]), 6)
        0.366985
    """
    y, p = _as_arrays(y_true, probs)
    if len(y) == 0:
        return math.nan
    p = np.clip(p, eps, 1.0 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def expected_calibration_error(y_true: Any, probs: Any, *, n_bins: int = 15) -> float:
    """Expected calibration error of the fake probability, with equal-width bins.

    ``sum_b (n_b / n) * |mean(y in b) - mean(p in b)|`` over ``n_bins`` bins of
    [0, 1] (a probability on a bin edge goes to the upper bin; 1.0 to the last), the
    binary form torchmetrics uses. NaN when empty.

    Args:
        y_true: 1 for fake, 0 for real.
        probs: Fake probabilities in [0, 1].
        n_bins: Number of bins.

    Raises:
        ConfigError: for ``n_bins < 1`` or probabilities outside [0, 1].

    Example:
        >>> round(expected_calibration_error([0, 1, 1, 1], [0.1, 0.9, 0.9, 0.6], n_bins=2), 6)
        0.175
    """
    if not isinstance(n_bins, int) or n_bins < 1:
        raise ConfigError(f"n_bins must be a positive integer, got {n_bins!r}")
    y, p = _as_arrays(y_true, probs)
    if len(y) == 0:
        return math.nan
    if p.min() < 0.0 or p.max() > 1.0:
        raise ConfigError("calibration error needs probabilities in [0, 1]")
    idx = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    sum_p = np.bincount(idx, weights=p, minlength=n_bins)
    sum_y = np.bincount(idx, weights=y.astype(np.float64), minlength=n_bins)
    return float(np.abs(sum_y - sum_p).sum() / len(y))


def binary_metrics(y_true: Any, scores: Any, *, threshold: float = 0.5) -> dict[str, Any]:
    """Every metric of this module for one set of labels and fake probabilities.

    Args:
        y_true: 1 for fake, 0 for real.
        scores: Fake probabilities in [0, 1].
        threshold: Decision threshold for the thresholded metrics.

    Returns:
        A dict with ``n``, ``n_real``, ``n_fake``, ``threshold``, ``accuracy``,
        ``balanced_accuracy``, ``precision``, ``recall``, ``f1``, ``auc``, ``eer``,
        ``eer_threshold``, ``log_loss``, ``ece``, ``tpr_at_fpr_1%``, ``tpr_at_fpr_5%``
        and ``confusion_matrix`` (``[[TN, FP], [FN, TP]]``). Metrics undefined for
        the data (AUC with one class) are NaN.

    Example:
        >>> m = binary_metrics([0, 0, 1, 1], [0.2, 0.7, 0.6, 0.9])
        >>> m["accuracy"], m["auc"], m["confusion_matrix"]
        (0.75, 0.75, [[1, 1], [0, 2]])
    """
    y, s = _as_arrays(y_true, scores)
    n_fake = int(y.sum())
    n_real = len(y) - n_fake
    precision, recall = precision_recall(y, s, threshold=threshold)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    both = n_fake > 0 and n_real > 0
    if both:
        eer, eer_thr = equal_error_rate(y, s)
        fpr, tpr, _ = roc_curve(y, s)
        tpr_at = {f"tpr_at_fpr_{round(t * 100)}%": float(tpr[fpr <= t].max()) for t in (0.01, 0.05)}
    else:
        eer, eer_thr = math.nan, math.nan
        tpr_at = {"tpr_at_fpr_1%": math.nan, "tpr_at_fpr_5%": math.nan}
    return {
        "n": len(y),
        "n_real": n_real,
        "n_fake": n_fake,
        "threshold": float(threshold),
        "accuracy": accuracy(y, s, threshold=threshold),
        "balanced_accuracy": balanced_accuracy(y, s, threshold=threshold),
        "precision": precision,
        "recall": recall,
        "f1": float(f1) if not math.isnan(f1) else math.nan,
        "auc": roc_auc(y, s),
        "eer": eer,
        "eer_threshold": eer_thr,
        "log_loss": log_loss(y, s),
        "ece": expected_calibration_error(y, s),
        **tpr_at,
        "confusion_matrix": confusion_matrix(y, s, threshold=threshold).tolist(),
    }
