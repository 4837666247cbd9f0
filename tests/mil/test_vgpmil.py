"""VGPMIL: learning instance labels from bag labels, invariances, the objective, the FITC
diagonal, determinism, persistence and input checks, on small synthetic MIL problems."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from scipy.special import expit
from sklearn.metrics import roc_auc_score

from ichbundles.mil import VGPMIL
from ichbundles.mil.vgpmil import (
    _Bags,
    _jaakkola_lambda,
    _others_max,
    _Problem,
    _whitened_cross,
    fitc_diagonal,
    rbf_kernel,
)

# Small and fast: about 600 instances, 40 inducing points, 60 rounds (~0.1 s a fit).
FAST = {"num_inducing": 40, "max_iter": 60}


def make_mil(
    seed: int, n_bags: int = 60, bag_size: int = 10, dim: int = 4, shift: float = 5.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Instances from N(0, I) or, for positive ones, N(mu, I) with |mu| = shift along the first
    two features; about half the bags hold 1 to bag_size/4 positive instances.

    Returns:
        ``X (N, dim)``, bag ids (str, one per instance), the bag label of each instance, and
        the true instance labels.
    """
    rng = np.random.default_rng(seed)
    sizes = rng.integers(bag_size // 2, bag_size * 3 // 2 + 1, n_bags)
    positive = rng.random(n_bags) < 0.5
    bag = np.repeat(np.arange(n_bags), sizes)
    instance = np.zeros(bag.size, dtype=bool)
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    for b in np.flatnonzero(positive):
        k = rng.integers(1, max(1, sizes[b] // 4) + 1)
        instance[starts[b] + rng.choice(sizes[b], k, replace=False)] = True
    x = rng.normal(size=(bag.size, dim))
    x[instance, :2] += shift / np.sqrt(2)
    ids = np.char.add("scan-", bag.astype(str))  # str ids: unique order differs from bag order
    return x, ids, positive[bag].astype(int), instance


def bag_truth(bag_ids: np.ndarray, bag_labels: np.ndarray) -> np.ndarray:
    """Bag labels in ``numpy.unique(bag_ids)`` order."""
    _, first = np.unique(bag_ids, return_index=True)
    return bag_labels[first]


@pytest.fixture(scope="module")
def problem():
    return make_mil(0), make_mil(100)


@pytest.fixture(scope="module")
def fitted(problem):
    (x, ids, y, _), _ = problem
    return VGPMIL(**FAST, seed=0).fit(x, ids, y)


@pytest.mark.parametrize("variance", [0.5, 2.0])
@pytest.mark.parametrize(("seed", "dim"), [(0, 2), (1, 5), (2, 3)])
def test_learns_instance_labels_from_bag_labels(seed, dim, variance):
    x, ids, y, _ = make_mil(seed, dim=dim)
    x_test, ids_test, y_test, inst_test = make_mil(seed + 100, dim=dim)
    model = VGPMIL(**FAST, variance=variance, seed=0).fit(x, ids, y)
    instance_p, bag_p = model.predict_proba(x_test, ids_test)
    assert instance_p.shape == (x_test.shape[0],)
    assert bag_p.shape == (np.unique(ids_test).size,)
    assert roc_auc_score(bag_truth(ids_test, y_test), bag_p) >= 0.95
    assert roc_auc_score(inst_test, instance_p) >= 0.9


def test_bag_probability_is_max_or_noisy_or_of_its_instances(problem, fitted):
    _, (x, ids, _, _) = problem
    instance_p, bag_p = fitted.predict_proba(x, ids)
    keys = np.unique(ids)
    np.testing.assert_allclose(bag_p, [instance_p[ids == k].max() for k in keys], rtol=1e-12)

    noisy = copy.copy(fitted)
    noisy.aggregation = "noisy_or"  # a prediction-time rule: no refit needed
    instance_q, bag_q = noisy.predict_proba(x, ids)
    np.testing.assert_array_equal(instance_q, instance_p)
    expected = [1 - np.prod(1 - instance_p[ids == k]) for k in keys]
    np.testing.assert_allclose(bag_q, expected, rtol=1e-9)
    assert np.all(bag_q >= bag_p - 1e-12)


def test_predictions_invariant_to_instance_and_bag_order(problem, fitted):
    (x, ids, y, _), (x_test, ids_test, _, _) = problem
    instance_p, bag_p = fitted.predict_proba(x_test, ids_test)
    perm = np.random.default_rng(1).permutation(x_test.shape[0])  # mixes bags and their rows
    instance_q, bag_q = fitted.predict_proba(x_test[perm], ids_test[perm])
    np.testing.assert_array_equal(instance_q, instance_p[perm])
    np.testing.assert_array_equal(bag_q, bag_p)

    # A model fitted on shuffled rows is the same model.
    perm = np.random.default_rng(2).permutation(x.shape[0])
    refit = VGPMIL(**FAST, seed=0).fit(x[perm], ids[perm], y[perm])
    np.testing.assert_array_equal(refit.inducing_points_, fitted.inducing_points_)
    np.testing.assert_array_equal(refit.alpha_, fitted.alpha_)
    np.testing.assert_array_equal(refit.predict_proba(x_test, ids_test)[1], bag_p)


@pytest.mark.parametrize("variance", [0.5, 2.0])
def test_objective_history_does_not_diverge(variance):
    """The q(u) and xi updates maximise the ELBO exactly (see the next test); the q(y) update
    changes every instance at once with the paper's max approximation, which guarantees
    nothing and leaves a small period-2 ripple. So: finite, a lower bound on a log probability
    (<= 0), not worse at the end than after the first rounds, and the ripple small."""
    x, ids, y, _ = make_mil(3)
    history = VGPMIL(**FAST, variance=variance, seed=0).fit(x, ids, y).history_
    assert history.shape == (FAST["max_iter"],)
    assert np.isfinite(history).all()
    assert np.all(history <= 0)
    scale = abs(history[-1])
    assert history[-1] >= history[:10].max() - 1e-6 * scale
    assert history[-1] >= history.max() - 0.01 * scale
    assert np.ptp(history[-10:]) <= 0.02 * scale


@pytest.mark.parametrize("variance", [0.5, 2.0])
def test_closed_form_updates_maximise_the_elbo(variance):
    x, ids, y, _ = make_mil(4, n_bags=20)
    z = x[:: len(x) // 15][:15]
    bags = _Bags.index(x, ids)
    x, y = x[bags.order], y[bags.order].astype(float)
    b, fitc, _, _ = _whitened_cross(x, z, 1.5, variance)
    prob = _Problem(b, fitc, y, bags, 100.0)
    rng = np.random.default_rng(0)
    logits = rng.normal(size=len(x))
    xi = np.abs(rng.normal(size=len(x))) + 0.1
    m = z.shape[0]

    def elbo(mean, factor, xi_):
        mu, var = prob.moments(mean, factor, exact=True)
        return prob.elbo(logits, mu, var, xi_, mean, factor)

    mean, factor = prob.update_u(expit(logits), _jaakkola_lambda(xi))
    best = elbo(mean, factor, xi)
    for _ in range(5):  # any other q(u) is worse, and so is the prior
        assert elbo(mean + 0.05 * rng.normal(size=m), factor, xi) < best
        assert elbo(mean, factor + 0.01 * np.triu(rng.normal(size=(m, m))), xi) < best
    assert elbo(np.zeros(m), np.eye(m), xi) < best

    mu, var = prob.moments(mean, factor, exact=True)
    xi_opt = np.sqrt(mu * mu + var)
    best_xi = elbo(mean, factor, xi_opt)
    assert best_xi >= best
    for scale in (0.9, 1.1):
        assert elbo(mean, factor, xi_opt * scale) < best_xi

    # The whitened update equals the paper's: S^-1 = K_zz^-1 + A^T diag(2 lambda) A,
    # m = S A^T (pi - 1/2), A = K_xz K_zz^-1 (jitter as in the model).
    kzz = rbf_kernel(z, z, 1.5, variance) + 1e-6 * variance * np.eye(m)
    a = rbf_kernel(x, z, 1.5, variance) @ np.linalg.inv(kzz)
    lam = _jaakkola_lambda(xi)
    s = np.linalg.inv(np.linalg.inv(kzz) + a.T @ (2 * lam[:, None] * a))
    l_zz = np.linalg.cholesky(kzz)
    np.testing.assert_allclose(l_zz @ mean, s @ a.T @ (expit(logits) - 0.5), rtol=1e-6, atol=1e-8)
    lf = l_zz @ factor
    np.testing.assert_allclose(lf @ lf.T, s, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("variance", [0.5, 2.0])
def test_fitc_diagonal_matches_brute_force(variance):
    rng = np.random.default_rng(0)
    z = rng.uniform(-3, 3, size=(8, 3))
    x = np.vstack([rng.normal(size=(30, 3)), z[:2]])
    kzz = rbf_kernel(z, z, 1.5, variance)
    kxz = rbf_kernel(x, z, 1.5, variance)
    brute = np.diag(rbf_kernel(x, x, 1.5, variance) - kxz @ np.linalg.inv(kzz) @ kxz.T)
    got = fitc_diagonal(x, z, 1.5, variance)
    # Off by at most about the jitter (1e-6 x variance) that keeps K_zz positive definite.
    np.testing.assert_allclose(got, brute, rtol=1e-5, atol=3e-6 * variance)
    assert np.all(got >= 0) and np.all(got <= variance)
    assert got[-2:] == pytest.approx(0, abs=3e-6 * variance)  # at an inducing point
    # The reference code's 1 - diag(K_xz K_zz^-1 K_zx) is off by 1 - variance.
    reference = 1 - np.diag(kxz @ np.linalg.inv(kzz) @ kxz.T)
    np.testing.assert_allclose(reference - got, 1 - variance, atol=3e-6 * variance)


def test_deterministic_by_seed(problem, fitted):
    (x, ids, y, _), (x_test, ids_test, _, _) = problem
    again = VGPMIL(**FAST, seed=0).fit(x, ids, y)
    for got, want in zip(
        again.predict_proba(x_test, ids_test), fitted.predict_proba(x_test, ids_test), strict=True
    ):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(again.history_, fitted.history_)
    other = VGPMIL(**FAST, seed=1).fit(x, ids, y)
    assert not np.array_equal(other.inducing_points_, fitted.inducing_points_)
    # The threads only split the work: the same numbers with one or several.
    threads = VGPMIL(**FAST, seed=0, n_threads=1).fit(x, ids, y)
    np.testing.assert_array_equal(threads.alpha_, fitted.alpha_)


def test_save_load_round_trip(tmp_path, problem, fitted):
    _, (x_test, ids_test, _, _) = problem
    path = fitted.save(tmp_path / "vgpmil.model")  # any name: written exactly there
    assert path == tmp_path / "vgpmil.model" and sorted(tmp_path.iterdir()) == [path]
    with np.load(path, allow_pickle=False) as data:  # plain arrays and a JSON header only
        assert all(data[k].dtype != object for k in data.files)
    loaded = VGPMIL.load(path)
    assert loaded.get_params() == fitted.get_params()
    for got, want in zip(
        loaded.predict_proba(x_test, ids_test), fitted.predict_proba(x_test, ids_test), strict=True
    ):
        np.testing.assert_array_equal(got, want)
    for name in ("mean_", "std_", "inducing_points_", "q_mean_", "q_cov_", "history_"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(fitted, name))
    assert loaded.jitter_ == fitted.jitter_ and loaded.n_features_in_ == fitted.n_features_in_
    # numpy scalars as hyper-parameters are stored as plain JSON numbers
    small = VGPMIL(num_inducing=np.int64(10), max_iter=3, seed=np.int64(2))
    (x, ids, y, _), _ = problem
    reloaded = VGPMIL.load(small.fit(x, ids, y).save(tmp_path / "small.npz"))
    assert reloaded.get_params() == small.get_params()


def test_standardisation_learned_in_fit_and_applied_in_predict(problem, fitted):
    (x, ids, y, _), _ = problem
    np.testing.assert_allclose(fitted.mean_, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(fitted.std_, x.std(axis=0), rtol=1e-12)
    np.testing.assert_allclose(fitted.standardize(x), (x - x.mean(0)) / x.std(0), atol=1e-12)
    # Shifting and scaling the features changes nothing once standardised.
    moved = VGPMIL(**FAST, seed=0).fit(x * 3 + 7, ids, y)
    np.testing.assert_allclose(moved.alpha_, fitted.alpha_, atol=1e-8)
    constant = np.c_[x, np.full(len(x), 4.0)]
    assert VGPMIL(**FAST).fit(constant, ids, y).std_[-1] == 1.0


def test_inducing_points_half_from_each_side_and_capped():
    x, ids, y, _ = make_mil(5)
    x[:, 0] += np.where(y == 1, 50.0, -50.0)  # positive bags' instances on one side
    z = VGPMIL(num_inducing=20, max_iter=2).fit(x, ids, y).inducing_points_
    assert z.shape == (20, x.shape[1])
    assert np.count_nonzero(z[:, 0] > 0) == 10
    # Fewer instances than inducing points: all of them, and the fit works.
    small = VGPMIL(num_inducing=200, max_iter=5).fit(x[:30], ids[:30], y[:30])
    assert small.inducing_points_.shape[0] <= 30
    assert np.isfinite(small.predict_proba(x, ids)[0]).all()


def test_bags_of_any_hashable_id_and_unique_order():
    x, ids, y, _ = make_mil(6, n_bags=12)
    as_int = np.unique(ids, return_inverse=True)[1] * 7 + 3
    a = VGPMIL(**FAST).fit(x, ids, y.astype(bool))
    b = VGPMIL(**FAST).fit(x, as_int, y)
    np.testing.assert_array_equal(a.predict_proba(x, ids)[1], b.predict_proba(x, as_int)[1])
    single = a.predict_proba(x[:3], ["one", "two", "one"])[1]
    assert single.shape == (2,)


def test_others_max_matches_brute_force():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 30, 300)
    pi = rng.choice([0.1, 0.5, 0.7, 0.9], size=300)  # many ties
    bags = _Bags.index(pi[:, None], ids)
    p = pi[bags.order]
    want = [
        max((p[j] for j in np.flatnonzero(bags.bag == bags.bag[i]) if j != i), default=0.0)
        for i in range(len(p))
    ]
    np.testing.assert_array_equal(_others_max(p, bags), want)


def test_jaakkola_lambda():
    xi = np.array([-3.0, -1e-6, 0.0, 1e-6, 1e-3, 0.5, 3.0, 40.0])
    with np.errstate(invalid="ignore", divide="ignore"):
        direct = (expit(xi) - 0.5) / (2 * xi)
    got = _jaakkola_lambda(xi)
    ok = np.abs(xi) > 1e-5
    np.testing.assert_allclose(got[ok], direct[ok], rtol=1e-9)
    np.testing.assert_allclose(got[~ok], 0.125, rtol=1e-9)


def _set(x: np.ndarray, value: float) -> np.ndarray:
    out = x.copy()
    out[3, 1] = value
    return out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda x, i, y: (_set(x, np.nan), i, y), r"NaN or inf value\(s\), the first at row"),
        (lambda x, i, y: (_set(x, -np.inf), i, y), "NaN or inf"),
        (lambda x, i, y: (x, i, np.r_[1 - y[0], y[1:]]), "different labels on their instances"),
        (lambda x, i, y: (x, i[:-1], y), "bag_ids must be 1-D with one entry per row"),
        (lambda x, i, y: (x, i, y[:-1]), "bag_labels must be 1-D with one entry per row"),
        (lambda x, i, y: (x, i, y * 2), "bag_labels must be 0/1"),
        (lambda x, i, y: (x[:, 0], i, y), "2-D"),
    ],
    ids=["nan", "inf", "inconsistent-labels", "short-ids", "short-labels", "labels-not-01", "1d"],
)
def test_invalid_inputs_raise(change, message):
    x, ids, y, _ = make_mil(7, n_bags=10)
    with pytest.raises(ValueError, match=message):
        VGPMIL(**FAST).fit(*change(x, ids, y))


def test_invalid_use_raises(problem, fitted):
    (x, ids, y, _), _ = problem
    with pytest.raises(RuntimeError, match="not fitted"):
        VGPMIL().predict_proba(x, ids)
    with pytest.raises(ValueError, match="features"):
        fitted.predict_proba(x[:, :2], ids)
    with pytest.raises(ValueError, match="NaN"):
        fitted.predict_proba(np.full_like(x, np.nan), ids)
    with pytest.raises(ValueError, match="variance"):
        VGPMIL(variance=0.0).fit(x, ids, y)
