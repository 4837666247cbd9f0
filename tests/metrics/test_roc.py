from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from ichbundles.constants import NUM_CLASSES
from ichbundles.metrics.roc import (
    bootstrap_auc,
    bootstrap_counts,
    delong_ci,
    percentile_ci,
    roc_auc,
    roc_curve,
)

from .conftest import random_data


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize(("n", "seed"), [(5, 0), (50, 1), (2000, 2)])
def test_auc_matches_sklearn(n, seed, ties):
    y, p = random_data(n, seed, ties=ties)
    expected = [roc_auc_score(y[:, c], p[:, c]) for c in range(NUM_CLASSES)]
    np.testing.assert_allclose(roc_auc(y, p), expected, rtol=1e-12)
    assert roc_auc(y[:, 0], p[:, 0]) == pytest.approx(expected[0])


def test_single_label_value_gives_nan_not_error():
    y, p = random_data(20, 0)
    y[:, 0] = 0
    y[:, 1] = 1
    auc = roc_auc(y, p)
    assert np.isnan(auc[:2]).all() and np.isfinite(auc[2:]).all()
    assert np.isnan(delong_ci(y[:, 0], p[:, 0])).all()


def _explicit_draws(n_units: int, n_boot: int, seed: int) -> np.ndarray:
    """The indices bootstrap_counts draws, when one chunk holds every resample."""
    return np.random.default_rng(seed).integers(0, n_units, size=(n_boot, n_units))


def test_counts_equal_explicit_draws():
    counts = np.concatenate(list(bootstrap_counts(30, 7, seed=4)))
    draws = _explicit_draws(30, 7, 4)
    for row, idx in zip(counts, draws, strict=True):
        assert row.tolist() == np.bincount(idx, minlength=30).tolist()


@pytest.mark.parametrize("ties", [False, True])
def test_bootstrap_equals_sklearn_on_resampled_rows(ties):
    y, p = random_data(60, 7, ties=ties)
    boot = bootstrap_auc(y, p, n_boot=20, seed=11)
    for b, idx in enumerate(_explicit_draws(60, 20, 11)):
        for c in range(NUM_CLASSES):
            if len(np.unique(y[idx, c])) < 2:
                assert np.isnan(boot[b, c])
            else:
                assert boot[b, c] == pytest.approx(roc_auc_score(y[idx, c], p[idx, c]))


def test_cluster_bootstrap_resamples_whole_scans():
    y, p = random_data(48, 8, ties=True)
    clusters = np.repeat(np.arange(12), 4)[::-1]  # labels need not be sorted or start at 0
    codes = np.unique(clusters, return_inverse=True)[1]
    boot = bootstrap_auc(y, p, n_boot=15, seed=2, clusters=clusters)
    for b, drawn in enumerate(_explicit_draws(12, 15, 2)):
        rows = np.concatenate([np.flatnonzero(codes == k) for k in drawn])
        c = NUM_CLASSES - 1
        if len(np.unique(y[rows, c])) == 2:
            assert boot[b, c] == pytest.approx(roc_auc_score(y[rows, c], p[rows, c]))


def test_bootstrap_is_seeded_and_paired():
    y, p = random_data(100, 1)
    a = bootstrap_auc(y, p, 50, seed=3)
    np.testing.assert_array_equal(a, bootstrap_auc(y, p, 50, seed=3))
    assert not np.array_equal(a, bootstrap_auc(y, p, 50, seed=4))
    # classes share resamples: a duplicated column gives identical bootstrap columns
    both = bootstrap_auc(np.c_[y[:, 0], y[:, 0]], np.c_[p[:, 0], p[:, 0]], 50, seed=3)
    np.testing.assert_array_equal(both[:, 0], both[:, 1])


def test_percentile_ci_ignores_nan():
    samples = np.array([[0.1, np.nan], [0.5, np.nan], [0.9, np.nan], [np.nan, np.nan]])
    ci = percentile_ci(samples)
    assert ci[0, 0] == pytest.approx(0.12) and ci[1, 0] == pytest.approx(0.88)
    assert np.isnan(ci[:, 1]).all()


def _delong_quadratic(y, s):
    """Textbook DeLong: placement values from all positive/negative pairs."""
    x, z = s[y == 1], s[y == 0]
    psi = (x[:, None] > z[None, :]) + 0.5 * (x[:, None] == z[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return psi.mean(), v10.var(ddof=1) / len(x) + v01.var(ddof=1) / len(z)


def _obuchowski_loop(y, s, clusters):
    """Obuchowski (1997) clustered variance written plainly, cluster by cluster."""
    x_all, z_all = s[y == 1], s[y == 0]
    m, n = len(x_all), len(z_all)
    theta = ((x_all[:, None] > z_all) + 0.5 * (x_all[:, None] == z_all)).mean()
    rows = []
    for k in np.unique(clusters):
        x, z = s[(clusters == k) & (y == 1)], s[(clusters == k) & (y == 0)]
        v10 = sum(((xi > z_all) + 0.5 * (xi == z_all)).mean() for xi in x)
        v01 = sum(((x_all > zi) + 0.5 * (x_all == zi)).mean() for zi in z)
        rows.append((len(x), len(z), v10, v01))
    mi, ni, v10, v01 = (np.array(c, dtype=float) for c in zip(*rows, strict=True))
    k10, k01, k = (mi > 0).sum(), (ni > 0).sum(), len(mi)
    s10 = k10 / ((k10 - 1) * m) * ((v10 - mi * theta) ** 2).sum()
    s01 = k01 / ((k01 - 1) * n) * ((v01 - ni * theta) ** 2).sum()
    s11 = k / (k - 1) * ((v10 - mi * theta) * (v01 - ni * theta)).sum()
    return theta, s10 / m + s01 / n + 2 * s11 / (m * n)


@pytest.mark.parametrize(("seed", "ties"), [(0, False), (1, True), (2, True)])
def test_delong_matches_quadratic_reference(seed, ties):
    y, p = random_data(80, seed, ties=ties)
    auc, low, high = delong_ci(y[:, 3], p[:, 3])
    theta, var = _delong_quadratic(y[:, 3], p[:, 3])
    assert auc == pytest.approx(theta)
    half = 1.959963984540054 * np.sqrt(var)
    assert low == pytest.approx(max(0, theta - half))
    assert high == pytest.approx(min(1, theta + half))


@pytest.mark.parametrize("seed", [0, 1])
def test_clustered_delong_matches_obuchowski_loop(seed):
    y, p = random_data(60, seed, ties=True)
    clusters = np.random.default_rng(seed).integers(0, 9, 60)
    auc, low, _ = delong_ci(y[:, 5], p[:, 5], clusters)
    theta, var = _obuchowski_loop(y[:, 5], p[:, 5], clusters)
    assert auc == pytest.approx(theta)
    assert auc - low == pytest.approx(1.959963984540054 * np.sqrt(var), rel=1e-9)  # high clips


def test_singleton_clusters_reduce_to_delong():
    y, p = random_data(70, 4)
    np.testing.assert_allclose(
        delong_ci(y[:, 2], p[:, 2], np.arange(70)), delong_ci(y[:, 2], p[:, 2])
    )


@pytest.mark.parametrize("ties", [False, True])
def test_roc_curve_matches_sklearn(ties):
    y, p = random_data(300, 9, ties=ties)
    fpr, tpr = roc_curve(y[:, 1], p[:, 1])
    sk_fpr, sk_tpr, _ = sk_roc_curve(y[:, 1], p[:, 1], drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.integers(0, 5)), min_size=2, max_size=40),
    st.randoms(use_true_random=False),
)
def test_auc_invariant_to_row_order_and_monotone_transforms(rows, rnd):
    y = np.array([r[0] for r in rows], dtype=float)
    s = np.array([r[1] for r in rows], dtype=float)
    order = list(range(len(rows)))
    rnd.shuffle(order)
    auc = roc_auc(y, s)
    if len(np.unique(y)) < 2:
        assert np.isnan(auc)
        return
    assert roc_auc(y[order], s[order]) == pytest.approx(auc)
    assert roc_auc(y, np.exp(s) * 3 - 1) == pytest.approx(auc)
    assert auc == pytest.approx(roc_auc_score(y, s))
