from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import calibration_curve

from ichbundles.metrics.calibration import expected_calibration_error, reliability


def test_hand_computed_ece():
    # bin (0.1, 0.2]: p 0.15 x2, one positive -> gap 0.35; bin (0.8, 0.9]: p 0.85 x2, both -> 0.15
    y = np.array([0, 1, 1, 1])
    p = np.array([0.15, 0.15, 0.85, 0.85])
    assert expected_calibration_error(y, p, 10) == pytest.approx((2 * 0.35 + 2 * 0.15) / 4)


def test_perfectly_calibrated_is_zero():
    y = np.array([0, 0, 0, 1, 1, 1, 1, 0])
    p = np.array([0.25, 0.25, 0.25, 0.25, 0.75, 0.75, 0.75, 0.75])
    assert expected_calibration_error(y, p, 4) == pytest.approx(0.0)


def test_edges_fall_in_bins():
    table = reliability(np.array([0, 1]), np.array([0.0, 1.0]), 5)
    assert table["count"].tolist() == [1, 0, 0, 0, 1]
    assert np.isnan(table["mean_prob"][1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reliability_matches_sklearn_calibration_curve(seed):
    rng = np.random.default_rng(seed)
    p = np.round(rng.random(500) * 0.998, 3) + 0.0005  # never on a bin edge: conventions differ
    y = (rng.random(500) < p).astype(int)
    table = reliability(y, p, 10)
    frequency, mean_prob = calibration_curve(y, p, n_bins=10, strategy="uniform")
    filled = table["count"] > 0
    np.testing.assert_allclose(table["frequency"][filled], frequency)
    np.testing.assert_allclose(table["mean_prob"][filled], mean_prob)
