"""Metrics against brute-force and hand-computed references."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepfakedetect import ConfigError
from deepfakedetect._metrics import (
    accuracy,
    balanced_accuracy,
    binary_metrics,
    confusion_matrix,
    equal_error_rate,
    expected_calibration_error,
    log_loss,
    precision_recall,
    roc_auc,
    roc_curve,
    threshold_at_fpr,
)


def pairwise_auc(y: np.ndarray, s: np.ndarray) -> float:
    """P(score of a random fake > score of a random real), ties counting one half."""
    pos, neg = s[y == 1], s[y == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 1), st.integers(0, 6)), min_size=2, max_size=40).filter(
        lambda rows: len({r[0] for r in rows}) == 2
    )
)
def test_auc_with_ties_equals_the_pairwise_count_and_the_trapezoid(rows: list[tuple[int, int]]) -> None:
    y = np.array([r[0] for r in rows])
    s = np.array([r[1] / 6 for r in rows])  # few distinct values: many ties
    auc = roc_auc(y, s)
    assert auc == pytest.approx(pairwise_auc(y, s), abs=1e-12)
    fpr, tpr, _ = roc_curve(y, s)
    assert auc == pytest.approx(float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)), abs=1e-12)


def test_auc_hand_values_and_undefined_cases() -> None:
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    assert roc_auc([0, 1], [0.9, 0.1]) == 0.0
    assert roc_auc([0, 0, 1, 1], [0.5] * 4) == 0.5
    assert math.isnan(roc_auc([1, 1], [0.2, 0.3]))
    with pytest.raises(ConfigError, match="both real and fake"):
        roc_curve([1, 1], [0.2, 0.3])
    with pytest.raises(ConfigError, match="0 \\(real\\) or 1"):
        roc_auc([0, 2], [0.1, 0.2])
    with pytest.raises(ConfigError, match="same length"):
        roc_auc([0, 1, 1], [0.1, 0.2])


def test_roc_curve_groups_tied_scores() -> None:
    fpr, tpr, thr = roc_curve([0, 1, 0, 1], [0.3, 0.3, 0.1, 0.9])
    assert thr.tolist() == [np.inf, 0.9, 0.3, 0.1]
    assert fpr.tolist() == [0.0, 0.0, 0.5, 1.0]
    assert tpr.tolist() == [0.0, 0.5, 1.0, 1.0]


def test_eer_hand_computed() -> None:
    # Reals 0.1 0.2 0.3 0.7, fakes 0.4 0.6 0.8 0.9: at threshold 0.4 FPR = 1/4 (0.7)
    # and FNR = 0; at 0.6 FPR = 1/4, FNR = 1/4: they meet at 0.25.
    eer, thr = equal_error_rate([0, 0, 0, 0, 1, 1, 1, 1], [0.1, 0.2, 0.3, 0.7, 0.4, 0.6, 0.8, 0.9])
    assert eer == pytest.approx(0.25)
    assert thr == pytest.approx(0.6)
    # Interpolated crossing: FPR/FNR go (0, 0.5) -> (0.5, 0) between two points: EER 0.25.
    eer, _ = equal_error_rate([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9])
    assert eer == pytest.approx(0.5)
    eer, _ = equal_error_rate([0, 1], [0.2, 0.8])
    assert eer == 0.0


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000))
def test_eer_lies_where_the_error_rates_cross(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = np.r_[np.zeros(30, int), np.ones(30, int)]
    s = rng.random(60) + 0.3 * y
    eer, _ = equal_error_rate(y, s)
    # Brute force over all thresholds: the EER lies between the best max(FPR, FNR)
    # and the min over thresholds of the other; both rates are step functions.
    fprs = [(s[y == 0] >= t).mean() for t in np.r_[np.sort(s), np.inf]]
    fnrs = [(s[y == 1] < t).mean() for t in np.r_[np.sort(s), np.inf]]
    best = min(max(a, b) for a, b in zip(fprs, fnrs))
    lower = min(min(a, b) for a, b in zip(fprs, fnrs) if max(a, b) == best)
    assert lower - 1e-12 <= eer <= best + 1e-12


def test_log_loss_matches_the_formula_and_clips() -> None:
    y = np.array([1, 0, 1, 0])
    p = np.array([0.9, 0.2, 0.6, 0.5])
    expected = -(math.log(0.9) + math.log(0.8) + math.log(0.6) + math.log(0.5)) / 4
    assert log_loss(y, p) == pytest.approx(expected)
    assert log_loss([1], [0.0]) == pytest.approx(-math.log(1e-15))
    assert math.isfinite(log_loss([0, 1], [1.0, 0.0]))


def _ece_loop(y: np.ndarray, p: np.ndarray, n_bins: int) -> float:
    total = 0.0
    edges = np.linspace(0, 1, n_bins + 1)
    for b in range(n_bins):
        lo, hi = edges[b], edges[b + 1]
        mask = (p >= lo) & ((p < hi) if b < n_bins - 1 else (p <= hi))
        if mask.any():
            total += mask.sum() / len(p) * abs(y[mask].mean() - p[mask].mean())
    return total


def test_ece_hand_computed_and_against_a_loop() -> None:
    # Two bins: [0, 0.5): p 0.1, y 0 -> |0 - 0.1|; [0.5, 1]: p .9 .9 .6, y 1 1 1 -> |1 - 0.8|.
    assert expected_calibration_error([0, 1, 1, 1], [0.1, 0.9, 0.9, 0.6], n_bins=2) == pytest.approx(
        (0.1 + 3 * 0.2) / 4
    )
    assert expected_calibration_error([1, 0], [1.0, 0.0]) == 0.0
    rng = np.random.default_rng(0)
    for _ in range(20):
        p = rng.random(200)
        p[:5] = [0.0, 1.0, 0.5, 1 / 15, 14 / 15]
        y = (rng.random(200) < p).astype(int)
        assert expected_calibration_error(y, p) == pytest.approx(_ece_loop(y, p, 15), abs=1e-12)
    with pytest.raises(ConfigError, match="probabilities in"):
        expected_calibration_error([0], [1.5])


def test_thresholded_metrics() -> None:
    y = [0, 0, 0, 1, 1]
    s = [0.1, 0.6, 0.4, 0.5, 0.2]
    assert confusion_matrix(y, s).tolist() == [[2, 1], [1, 1]]
    assert accuracy(y, s) == pytest.approx(3 / 5)
    assert balanced_accuracy(y, s) == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert precision_recall(y, s) == pytest.approx((1 / 2, 1 / 2))
    assert precision_recall(y, s, threshold=0.7) == (0.0, 0.0)
    assert confusion_matrix(y, s, threshold=0.6).tolist() == [[2, 1], [2, 0]]  # score == threshold is fake


def test_threshold_at_fpr_bounds_the_false_positive_rate() -> None:
    rng = np.random.default_rng(1)
    y = np.r_[np.zeros(200, int), np.ones(50, int)]
    s = np.round(rng.random(250) * 0.98, 2)  # ties; below 1.0, which no threshold can exclude
    for target in (0.0, 0.01, 0.05, 0.2, 1.0):
        t = threshold_at_fpr(y, s, target)
        fpr = (s[y == 0] >= t).mean()
        assert fpr <= target + 1e-12
        # The smallest such threshold: any lower real score would be flagged and break it.
        lower = s[(y == 0) & (s < t)]
        if len(lower) and target < 1.0:
            assert (s[y == 0] >= lower.max()).mean() > target


def test_binary_metrics_bundle() -> None:
    m = binary_metrics([0, 0, 1, 1], [0.2, 0.7, 0.6, 0.9])
    assert m["n"] == 4 and m["n_real"] == 2 and m["n_fake"] == 2
    assert m["accuracy"] == 0.75 and m["auc"] == 0.75 and m["recall"] == 1.0
    assert m["confusion_matrix"] == [[1, 1], [0, 2]]
    one_class = binary_metrics([1, 1], [0.7, 0.2])
    assert math.isnan(one_class["auc"]) and math.isnan(one_class["eer"]) and one_class["accuracy"] == 0.5
