from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
)

from ichbundles.metrics.threshold import (
    binary_stats,
    confusion_counts,
    stats_from_counts,
    threshold_for_sensitivity,
    wilson_ci,
)


def test_confusion_hand_counted():
    y = np.array([[1, 0], [1, 1], [0, 0], [0, 1], [1, 0]])
    d = np.array([[1, 0], [0, 1], [1, 0], [0, 0], [1, 1]])
    # column 0: tp rows 0,4; fn row 1; fp row 2; tn row 3
    # column 1: tp row 1; fn row 3; fp row 4; tn rows 0,2
    assert confusion_counts(y, d).tolist() == [[2, 1, 1, 1], [1, 1, 2, 1]]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stats_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 200)
    d = rng.integers(0, 2, 200)
    counts = confusion_counts(y[:, None], d[:, None])[0]
    tn, fp, fn, tp = confusion_matrix(y, d).ravel()
    assert counts.tolist() == [tp, fp, tn, fn]
    stats = stats_from_counts(counts)
    assert stats["sensitivity"] == pytest.approx(recall_score(y, d))
    assert stats["specificity"] == pytest.approx(recall_score(1 - y, 1 - d))
    assert stats["precision"] == pytest.approx(precision_score(y, d))
    assert stats["npv"] == pytest.approx(precision_score(1 - y, 1 - d))
    assert stats["accuracy"] == pytest.approx(accuracy_score(y, d))
    assert stats["f1"] == pytest.approx(f1_score(y, d))


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        (8, 10, 0.4902, 0.9433),  # textbook Wilson values
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (50, 100, 0.4038, 0.5962),
    ],
)
def test_wilson_known_values(k, n, low, high):
    lo, hi = wilson_ci(k, n)
    assert lo == pytest.approx(low, abs=1e-4)
    assert hi == pytest.approx(high, abs=1e-4)


def test_wilson_empty_is_nan():
    assert all(math.isnan(v) for v in wilson_ci(0, 0))


def test_binary_stats_undefined_figures_are_nan():
    stats = binary_stats(np.array([0, 0, 5, 0]))  # no positives, no positive decisions
    assert math.isnan(stats["sensitivity"]["value"])
    assert math.isnan(stats["precision"]["value"])
    assert math.isnan(stats["f1"]["value"])
    assert stats["specificity"]["value"] == 1.0
    assert stats["specificity"]["ci"][1] == 1.0


def test_binary_stats_cis_are_wilson():
    stats = binary_stats(np.array([8, 3, 20, 2]))  # tp fp tn fn
    assert stats["sensitivity"]["ci"] == pytest.approx(wilson_ci(8, 10))
    assert stats["precision"]["ci"] == pytest.approx(wilson_ci(8, 11))
    assert stats["accuracy"]["ci"] == pytest.approx(wilson_ci(28, 33))
    assert all(math.isnan(v) for v in stats["f1"]["ci"])  # from the bootstrap, not here


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.floats(0, 1)), min_size=1, max_size=50),
    st.sampled_from([0.5, 0.8, 0.9, 0.95, 1.0]),
)
def test_threshold_reaches_target_and_is_highest(rows, target):
    y = np.array([r[0] for r in rows])
    s = np.array([r[1] for r in rows])
    t = threshold_for_sensitivity(y, s, target)
    if not y.any():
        assert math.isnan(t)
        return
    sensitivity = (s[y] >= t).mean()
    assert sensitivity >= target - 1e-12
    higher = s[y][s[y] > t]
    if higher.size:  # the next higher candidate misses the target
        assert (s[y] >= higher.min()).mean() < target


def test_threshold_rejects_bad_target():
    with pytest.raises(ValueError, match="target sensitivity"):
        threshold_for_sensitivity(np.array([1]), np.array([0.5]), 0.0)
