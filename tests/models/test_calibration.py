"""Temperature, threshold and operating points fitted on validation data."""

from __future__ import annotations

import numpy as np
import pytest

from deepfakedetect import CalibrationConfig, ConfigError
from deepfakedetect.models.calibration import (
    calibrate,
    fake_margin,
    fit_temperature,
    fit_threshold,
    operating_points,
)
from deepfakedetect._metrics import log_loss, roc_auc


def _calibrated_margins(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Margins whose sigmoid is the true probability of fake."""
    rng = np.random.default_rng(seed)
    margin = rng.normal(0.0, 2.0, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-margin))).astype(int)
    return margin, y


@pytest.mark.parametrize("scale", [0.5, 1.0, 4.0])
def test_temperature_recovers_the_overconfidence_factor(scale: float) -> None:
    margin, y = _calibrated_margins(20_000)
    assert fit_temperature(scale * margin, y) == pytest.approx(scale, rel=0.08)


def test_temperature_minimises_nll_against_a_grid() -> None:
    margin, y = _calibrated_margins(3000, seed=1)
    z = 2.5 * margin + 0.3
    t = fit_temperature(z, y)
    grid = np.exp(np.linspace(np.log(0.05), np.log(20), 2000))
    nll = [log_loss(y, 1 / (1 + np.exp(-z / g))) for g in grid]
    best = grid[int(np.argmin(nll))]
    assert t == pytest.approx(best, rel=0.01)
    assert log_loss(y, 1 / (1 + np.exp(-z / t))) <= min(nll) + 1e-9


def test_two_column_logits_use_the_fake_column() -> None:
    logits = np.array([[2.0, -1.0], [0.0, 3.0]])
    assert fake_margin(logits, fake_index=0).tolist() == [3.0, -3.0]
    assert fake_margin(logits, fake_index=1).tolist() == [-3.0, 3.0]
    with pytest.raises(ConfigError, match="shape"):
        fake_margin(np.zeros((2, 3)))


def test_threshold_maximises_balanced_accuracy_on_unbalanced_data() -> None:
    # 90 reals around 0.3, 10 fakes around 0.6: accuracy alone would favour "all real".
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(90, int), np.ones(10, int)]
    s = np.clip(np.r_[rng.normal(0.3, 0.1, 90), rng.normal(0.6, 0.1, 10)], 0, 1)
    thr = fit_threshold(y, s)
    candidates = np.unique(s)
    bal = [((s[y == 1] >= c).mean() + (s[y == 0] < c).mean()) / 2 for c in candidates]
    got = ((s[y == 1] >= thr).mean() + (s[y == 0] < thr).mean()) / 2
    assert got == pytest.approx(max(bal))
    assert fit_threshold([0, 0, 1, 1], [0.1, 0.3, 0.4, 0.9]) == pytest.approx(0.35)  # midway
    eer_thr = fit_threshold(y, s, method="eer")
    assert 0.0 <= eer_thr <= 1.0
    with pytest.raises(ConfigError, match="unknown threshold method"):
        fit_threshold(y, s, method="youden")


def test_operating_points_are_named_and_bound_the_false_positive_rate() -> None:
    rng = np.random.default_rng(2)
    y = np.r_[np.zeros(500, int), np.ones(500, int)]
    s = np.r_[rng.beta(2, 5, 500), rng.beta(5, 2, 500)]
    points = operating_points(y, s, fprs=(0.01, 0.05, 0.5))
    assert list(points) == ["fpr@1%", "fpr@5%", "fpr@50%"]
    for name, rate in (("fpr@1%", 0.01), ("fpr@5%", 0.05), ("fpr@50%", 0.5)):
        assert (s[y == 0] >= points[name]).mean() <= rate
    assert points["fpr@1%"] >= points["fpr@5%"] >= points["fpr@50%"]


def test_calibrate_returns_a_config_that_keeps_ranking_and_improves_nll() -> None:
    margin, y = _calibrated_margins(4000, seed=3)
    logits = np.stack([3.0 * margin, np.zeros_like(margin)], axis=1)  # fake first, overconfident
    cal = calibrate(logits, y, fake_index=0)
    assert isinstance(cal, CalibrationConfig)
    assert cal.temperature == pytest.approx(3.0, rel=0.1)
    raw = 1 / (1 + np.exp(-3.0 * margin))
    fitted = 1 / (1 + np.exp(-3.0 * margin / cal.temperature))
    assert log_loss(y, fitted) < log_loss(y, raw)
    assert roc_auc(y, fitted) == pytest.approx(roc_auc(y, raw))
    assert set(cal.operating_points) == {"fpr@1%", "fpr@5%"}
    assert CalibrationConfig(**cal.__dict__) == cal  # valid values for the config
    with pytest.raises(ConfigError, match="real and fake"):
        calibrate(logits[y == 1], y[y == 1])


def test_detector_uses_the_fitted_calibration() -> None:
    import torch

    from deepfakedetect import Detector

    det = Detector.from_backbone("resnet18", input_size=32)
    logits = torch.tensor([[2.0, 0.0]])  # fake index 0
    base = float(det.fake_probability(logits)[0])
    det.config = det.config.replace(calibration=CalibrationConfig(temperature=2.0, threshold=0.3))
    assert float(det.fake_probability(logits)[0]) == pytest.approx(1 / (1 + np.exp(-1.0)))
    assert base == pytest.approx(1 / (1 + np.exp(-2.0)))
    assert det.threshold == 0.3
