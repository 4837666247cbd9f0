from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import log_loss

from ichbundles.constants import CLASS_WEIGHTS, NUM_CLASSES
from ichbundles.metrics.loss import EPS, class_log_loss, weighted_log_loss

from .conftest import random_data


@pytest.mark.parametrize(("n", "seed"), [(2, 0), (7, 1), (100, 2), (1000, 3)])
def test_matches_sklearn_with_tiled_class_weights(n, seed):
    y, p = random_data(n, seed)
    expected = log_loss(
        y.ravel(), p.ravel(), sample_weight=np.tile(CLASS_WEIGHTS, n), labels=[0, 1]
    )
    assert weighted_log_loss(y, p) == pytest.approx(expected, rel=1e-12)


def test_per_class_matches_sklearn():
    y, p = random_data(200, 5)
    expected = [log_loss(y[:, c], p[:, c], labels=[0, 1]) for c in range(NUM_CLASSES)]
    np.testing.assert_allclose(class_log_loss(y, p), expected, rtol=1e-12)


def test_any_weighs_twice():
    y = np.zeros((1, NUM_CLASSES))
    p = np.zeros((1, NUM_CLASSES))
    p[0, -1] = 0.5  # only "any" is wrong
    assert weighted_log_loss(y, p) == pytest.approx(2 * np.log(2) / 7)
    p = np.zeros((1, NUM_CLASSES))
    p[0, 0] = 0.5
    assert weighted_log_loss(y, p) == pytest.approx(np.log(2) / 7)


def test_clipping_to_1e15():
    y = np.array([[1, 0, 0, 0, 0, 1]])
    p = np.array([[0.0, 1.0, 0.0, 0.0, 0.0, 1.0]])  # two confident mistakes, rest perfect
    # epidural: 1 predicted 0; intraparenchymal: 0 predicted 1; three right at 0; any right at 1
    clipped_one = 1 - EPS
    expected = (-np.log(EPS) - np.log(1 - clipped_one) - 5 * np.log(clipped_one)) / 7
    assert weighted_log_loss(y, p) == pytest.approx(expected, rel=1e-9)
    assert np.isfinite(weighted_log_loss(y, p))


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.randoms(use_true_random=False))
def test_invariant_to_row_order(seed, rnd):
    y, p = random_data(30, seed)
    order = list(range(30))
    rnd.shuffle(order)
    assert weighted_log_loss(y[order], p[order]) == pytest.approx(weighted_log_loss(y, p))
