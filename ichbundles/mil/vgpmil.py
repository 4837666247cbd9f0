"""Variational Gaussian process multiple-instance learning (VGPMIL).

Haussmann, Hamprecht and Kandemir, "Variational Bayesian Multiple Instance Learning with Gaussian
Processes", CVPR 2017; paper 000 fits it on the Att-CNN's slice features (its Phase 2).

Model, for instances ``x_i`` grouped into bags ``b`` with labels ``Y_b`` in {0, 1}:

* inducing values ``u ~ N(0, K_zz)`` at ``M`` inducing points ``z``: k-means centres of the
  z-scored features, half from the instances of positive bags and half from negative ones;
* latent values ``f | u ~ N(K_xz K_zz^-1 u, diag(K_xx - K_xz K_zz^-1 K_zx))`` (FITC);
* instance labels ``y_i | f_i ~ Bernoulli(sigmoid(f_i))``;
* bag likelihood ``p(Y_b | y_b) = H^G_b / (H + 1)`` with ``G_b = [Y_b == max_i y_bi]``.

The posterior is approximated by ``q(u) q(y)``, ``q(u) = N(m, S)``, ``q(y_i) = Bernoulli(pi_i)``,
and the logistic terms by the Jaakkola bound ``log sigmoid(f) >= log sigmoid(xi) + (f - xi) / 2
- lambda(xi) (f^2 - xi^2)``, ``lambda(xi) = (sigmoid(xi) - 1/2) / (2 xi)``. Every update is then
closed form:

* ``q(u)``: ``S^-1 = K_zz^-1 + A^T diag(2 lambda) A``, ``m = S A^T (pi - 1/2)``,
  ``A = K_xz K_zz^-1``;
* ``q(y)``: ``logit pi_i = E[f_i] + log H (2 Y_b - 1) (1 - E[max_{j != i} y_bj])``, the
  expectation taken as ``max_{j != i} pi_j`` as in the paper and its reference code;
* ``xi_i = sqrt(E[f_i^2])``.

As in the reference code, ``q(y)`` starts small and equal for every instance, xi at its prior
value, and each round updates ``q(u)``, then every ``pi_i`` at once, then xi. The simultaneous
``pi`` update is not a coordinate ascent step: in a positive bag with two likely positives, each
one's ``max_{j != i} pi_j`` is high, so both drop, then both rise again. The evidence lower bound
(``VGPMIL.history_``) therefore climbs with a small period-2 ripple instead of monotonically.

The computation runs in whitened coordinates ``u = L w`` (``K_zz = L L^T``): the posterior
precision of ``w``, ``I + B^T diag(2 lambda) B`` with ``B = K_xz L^-T``, has every eigenvalue
>= 1, so its Cholesky factor never needs jitter. Memory is ``O(N M)``; no ``N x N`` matrix is
formed.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy.cluster.vq import kmeans2
from scipy.linalg import LinAlgError, cho_solve, cholesky, solve_triangular
from scipy.linalg.blas import dsyrk, strmm
from scipy.spatial.distance import cdist
from scipy.special import expit, log_expit, logit

__all__ = ["VGPMIL", "fitc_diagonal", "rbf_kernel"]

_FORMAT = "ichbundles.mil.vgpmil/1"
# Jitter added to K_zz, relative to the kernel variance; raised tenfold while Cholesky fails.
_JITTER = 1e-6
_JITTER_TRIES = 6
# Initial q(y_i = 1) of every instance: a small value, the mean of the reference code's
# uniform(0, 0.1) draw, but the same for all so that the fit does not depend on row order.
_PI_INIT = 0.05
_KMEANS_ITER = 20
# Rows per block of the N-long products in fit (4096 x 200 doubles: 6.5 MB).
_BLOCK_ROWS = 4096
# Rows per kernel block in predict_proba: bounds its memory at 16384 x M floats.
_PREDICT_CHUNK = 16384
# scipy >= 1.15 names the k-means random generator ``rng``; older releases call it ``seed``.
_KMEANS_RNG = "rng" if "rng" in inspect.signature(kmeans2).parameters else "seed"
_ARRAYS = ("mean", "std", "inducing_points", "alpha", "q_mean", "q_cov", "history")


def rbf_kernel(a: ArrayLike, b: ArrayLike, lengthscale: float, variance: float) -> np.ndarray:
    """RBF kernel ``variance * exp(-|a - b|^2 / (2 lengthscale^2))`` between rows.

    Squared distances come from ``cdist`` pair by pair rather than ``|a|^2 + |b|^2 - 2 a.b``:
    no cancellation, and a row's value does not depend on which other rows share its batch.

    Args:
        a: ``(N, D)`` points.
        b: ``(M, D)`` points.
        lengthscale: kernel length scale.
        variance: kernel variance (the value at zero distance).

    Returns:
        ``(N, M)`` float64 kernel matrix.
    """
    d2 = cdist(np.atleast_2d(a), np.atleast_2d(b), "sqeuclidean")
    return variance * np.exp(d2 * (-0.5 / lengthscale**2))


def _jittered_cholesky(k: np.ndarray, variance: float) -> tuple[np.ndarray, float]:
    """Lower Cholesky factor of ``k + jitter I`` and the jitter that made it succeed."""
    jitter = _JITTER * variance
    eye = np.eye(k.shape[0])
    for _ in range(_JITTER_TRIES):
        try:
            return cholesky(k + jitter * eye, lower=True, check_finite=False), jitter
        except LinAlgError:
            jitter *= 10.0
    raise LinAlgError(f"K_zz is not positive definite even with jitter {jitter / 10:.1e}")


def _whitened_cross(
    x: np.ndarray, z: np.ndarray, lengthscale: float, variance: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """``B = K_xz L^-T`` (Fortran order), the FITC diagonal, ``L`` and the jitter used."""
    l_zz, jitter = _jittered_cholesky(rbf_kernel(z, z, lengthscale, variance), variance)
    b = solve_triangular(l_zz, rbf_kernel(z, x, lengthscale, variance), lower=True).T
    # diag(K_xx) is the kernel variance for a stationary kernel; K_xz K_zz^-1 K_zx = B B^T.
    # Clipped at 0 where rounding leaves a tiny negative for x on an inducing point.
    fitc = np.maximum(variance - np.einsum("ij,ij->i", b, b), 0.0)
    return b, fitc, l_zz, jitter


def fitc_diagonal(x: ArrayLike, z: ArrayLike, lengthscale: float, variance: float) -> np.ndarray:
    """FITC variances ``diag(K_xx - K_xz K_zz^-1 K_zx)`` of the RBF kernel.

    ``diag(K_xx)`` is the kernel ``variance`` (the reference code uses 1 whatever the variance).
    ``K_zz`` carries the same small jitter as in :class:`VGPMIL`.

    Args:
        x: ``(N, D)`` points.
        z: ``(M, D)`` inducing points.
        lengthscale: kernel length scale.
        variance: kernel variance.

    Returns:
        ``(N,)`` non-negative float64.
    """
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    z = np.atleast_2d(np.asarray(z, dtype=np.float64))
    return _whitened_cross(x, z, lengthscale, variance)[1]


def _jaakkola_lambda(xi: np.ndarray) -> np.ndarray:
    """``lambda(xi) = (sigmoid(xi) - 1/2) / (2 xi) = tanh(xi / 2) / (4 xi)``, 1/8 at 0."""
    xi = np.abs(xi)
    small = xi < 1e-4
    safe = np.where(small, 1.0, xi)
    return np.where(small, 0.125 - xi * xi / 96.0, np.tanh(safe / 2) / (4 * safe))


@dataclass(frozen=True)
class _Bags:
    """Instances in a canonical order: by bag (``numpy.unique`` order), then by feature values.

    Sorting by the features too makes k-means, the fit and the predictions independent of the
    order of the input rows, bit for bit (rows that tie are identical).
    """

    order: np.ndarray  # (N,) input row at each canonical position
    bag: np.ndarray  # (N,) bag index of each canonical position, non-decreasing
    starts: np.ndarray  # (B,) first canonical position of each bag
    keys: np.ndarray  # (B,) bag ids in numpy.unique order

    @classmethod
    def index(cls, x: np.ndarray, bag_ids: np.ndarray) -> _Bags:
        try:
            keys, inverse = np.unique(bag_ids, return_inverse=True)
        except TypeError as err:
            msg = f"bag_ids must be mutually comparable (all str or all int): {err}"
            raise ValueError(msg) from err
        inverse = inverse.reshape(-1)
        order = np.lexsort((*x.T[::-1], inverse))  # the last key sorts first
        bag = inverse[order]
        starts = np.flatnonzero(np.r_[True, bag[1:] != bag[:-1]])
        return cls(order=order, bag=bag, starts=starts, keys=keys)


def _others_max(pi: np.ndarray, bags: _Bags) -> np.ndarray:
    """``max_{j != i} pi_j`` over the bag of each instance; 0 for a bag of one instance."""
    top = np.maximum.reduceat(pi, bags.starts)
    candidates = np.flatnonzero(pi == top[bags.bag])
    cand_bag = bags.bag[candidates]
    first = candidates[np.r_[True, cand_bag[1:] != cand_bag[:-1]]]  # one argmax per bag
    rest = pi.copy()
    rest[first] = -np.inf
    out = top[bags.bag]
    out[first] = np.maximum.reduceat(rest, bags.starts)  # the runner-up of each bag's argmax
    return np.maximum(out, 0.0)


class _Problem:
    """The fixed quantities of one fit (instances in canonical order) and its updates.

    ``w`` is the whitened inducing value, ``q(w) = N(mean, F F^T)``. The ``N``-long products run
    over fixed blocks of rows, summed in a fixed order, so the result does not depend on the
    number of threads that ``map_blocks`` spreads them over.
    """

    def __init__(
        self,
        b: np.ndarray,
        fitc: np.ndarray,
        labels: np.ndarray,
        bags: _Bags,
        h: float,
        map_blocks: Callable[..., Iterable[Any]] = map,
    ) -> None:
        n = b.shape[0]
        self.rows = [slice(s, min(s + _BLOCK_ROWS, n)) for s in range(0, n, _BLOCK_ROWS)]
        # Fortran order is the layout dsyrk/strmm take without a copy.
        self.b = [np.asfortranarray(b[r]) for r in self.rows]
        # float32 copy for the instance variances only: they set xi, where 1e-6 relative
        # error is immaterial, and single precision halves the cost of that product.
        self.b32 = [block.astype(np.float32, order="F") for block in self.b]
        self.fitc = fitc
        self.bags = bags
        self.bag_labels = labels[bags.starts].astype(bool)
        self.sign = 2.0 * labels - 1.0
        self.h = h
        self.log_h = math.log(h)
        self.eye = np.eye(b.shape[1])
        self.map_blocks = map_blocks

    def update_u(self, pi: np.ndarray, lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Optimal ``q(w)`` given ``q(y)`` and xi: its mean and upper-triangular factor ``F``."""
        scale = np.sqrt(2.0 * lam)
        residual = pi - 0.5

        def block(i: int) -> tuple[np.ndarray, np.ndarray]:
            b, rows = self.b[i], self.rows[i]
            # lower triangle of W^T W, W = diag(sqrt(2 lambda)) B: half the flops of a GEMM
            return dsyrk(1.0, b * scale[rows, None], trans=1, lower=1), b.T @ residual[rows]

        parts = list(self.map_blocks(block, range(len(self.rows))))
        precision = self.eye.copy()
        rhs = np.zeros(self.eye.shape[0])
        for gram, proj in parts:
            precision += gram
            rhs += proj
        l_p = cholesky(precision, lower=True, check_finite=False)
        mean = cho_solve((l_p, True), rhs, check_finite=False)
        # S = L_p^-T L_p^-1. The triangular inverse of L_p is well conditioned (its singular
        # values are <= 1) and costs M^3 once, where per-instance variances via solve_triangular
        # would be a triangular solve with N right-hand sides every iteration.
        factor = solve_triangular(l_p, self.eye, lower=True, check_finite=False).T
        return mean, factor

    def moments(
        self, mean: np.ndarray, factor: np.ndarray, exact: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """``E[f_i]`` and ``Var[f_i]`` under ``q(w) = N(mean, factor factor^T)``.

        By default ``factor`` must be upper triangular and the variances are computed in single
        precision; ``exact=True`` takes any square factor and stays in double precision.
        """
        factor32 = np.asfortranarray(factor, dtype=np.float32)

        def block(i: int) -> tuple[np.ndarray, np.ndarray]:
            b = self.b[i]
            c = b @ factor if exact else strmm(1.0, factor32, self.b32[i], side=1, lower=0)
            return b @ mean, np.einsum("ij,ij->i", c, c)

        mus, quads = zip(*self.map_blocks(block, range(len(self.rows))), strict=True)
        return np.concatenate(mus), self.fitc + np.concatenate(quads).astype(np.float64)

    def update_y(self, logits: np.ndarray, mu: np.ndarray) -> np.ndarray:
        """Logits of the new ``q(y)``, all instances at once from the previous ``q(y)``."""
        others = _others_max(expit(logits), self.bags)
        return mu + self.log_h * self.sign * (1.0 - others)

    def elbo(
        self,
        logits: np.ndarray,
        mu: np.ndarray,
        var: np.ndarray,
        xi: np.ndarray,
        mean: np.ndarray,
        factor: np.ndarray,
    ) -> float:
        """The evidence lower bound (with the Jaakkola bound), ``E[max y_b]`` taken exactly.

        Under ``q(y)``, ``E[max_i y_bi] = 1 - prod_i (1 - pi_i)`` in closed form, so this is a
        true lower bound on ``log p(Y)``. The ``q(u)`` and xi updates maximise it exactly; the
        ``q(y)`` update (parallel, with the max approximation) does not, so it is not monotone.
        """
        pi = expit(logits)
        log_not = log_expit(-logits)  # log(1 - pi), exact for large logits
        log_none = np.add.reduceat(log_not, self.bags.starts)
        g = np.where(self.bag_labels, -np.expm1(log_none), np.exp(log_none))  # E[G_b]
        likelihood = self.log_h * g.sum() - g.size * math.log1p(self.h)
        lam = _jaakkola_lambda(xi)
        jaakkola = (pi - 0.5) @ mu - lam @ (mu * mu + var - xi * xi)
        jaakkola += np.sum(log_expit(xi) - 0.5 * xi)
        entropy = -(pi @ log_expit(logits)) - (1.0 - pi) @ log_not
        diag = np.abs(np.diag(factor))
        kl = 0.5 * (np.sum(factor * factor) + mean @ mean - mean.size - 2 * np.log(diag).sum())
        return float(likelihood + jaakkola + entropy - kl)


@contextmanager
def _block_mapper(n_threads: int | None) -> Iterator[Callable[..., Iterable[Any]]]:
    """A ``map`` over row blocks: a thread pool with single-threaded BLAS in each thread.

    Threads over blocks of rows rather than BLAS's own threads: OpenBLAS splits each
    ``M x M`` reduction over ``N`` rows into many synchronised panels, which stall whenever
    another process holds one of the cores; whole blocks per thread do not. Without
    threadpoolctl, BLAS threads cannot be limited, so the blocks run in this thread only.
    """
    if n_threads is None:
        n_threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        n_threads = n_threads or os.cpu_count() or 1
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield map
        return
    with threadpool_limits(limits=1, user_api="blas"):
        if n_threads <= 1:
            yield map
        else:
            with ThreadPoolExecutor(max_workers=n_threads) as pool:
                yield pool.map


def _features(x: ArrayLike, n_features: int | None = None) -> np.ndarray:
    try:
        out = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"X must be a numeric array: {err}") from err
    if out.ndim != 2 or out.shape[0] == 0 or out.shape[1] == 0:
        raise ValueError(f"X must be a non-empty 2-D array (instances x features), got {out.shape}")
    if n_features is not None and out.shape[1] != n_features:
        raise ValueError(f"X has {out.shape[1]} features; the model was fitted on {n_features}")
    finite = np.isfinite(out)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        raise ValueError(
            f"X holds {np.count_nonzero(~finite)} NaN or inf value(s), the first at row {row}, "
            f"column {col}"
        )
    return out


def _per_instance(values: ArrayLike, n: int, name: str) -> np.ndarray:
    out = np.asarray(values)
    if out.shape != (n,):
        raise ValueError(f"{name} must be 1-D with one entry per row of X ({n}), got {out.shape}")
    return out


def _binary_labels(bag_labels: ArrayLike, n: int) -> np.ndarray:
    y = _per_instance(bag_labels, n, "bag_labels")
    try:
        y = y.astype(np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"bag_labels must be 0/1 or boolean: {err}") from err
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError(f"bag_labels must be 0/1 or boolean, got values {np.unique(y)[:5]}")
    return y


def _kmeans(data: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` k-means centres of ``data`` (``scipy.cluster.vq.kmeans2``, k-means++ start)."""
    distinct = np.unique(data, axis=0)
    if k >= len(distinct):
        return distinct
    with warnings.catch_warnings():
        # An emptied cluster keeps its previous centre, itself a data point from k-means++:
        # still a valid inducing point, so scipy's warning carries no action here.
        warnings.filterwarnings("ignore", "One of the clusters is empty", UserWarning)
        centres, _ = kmeans2(data, k, iter=_KMEANS_ITER, minit="++", **{_KMEANS_RNG: rng})
    return centres


def _inducing_points(
    x: np.ndarray, labels: np.ndarray, m: int, rng: np.random.Generator
) -> np.ndarray:
    """k-means centres, half from the instances of positive bags, half from negative ones.

    Where one side has fewer instances than its half, the other side makes up the rest.
    """
    pos, neg = x[labels == 1], x[labels == 0]
    n_pos = min(m // 2, len(pos))
    n_neg = min(m - n_pos, len(neg))
    n_pos = min(m - n_neg, len(pos))
    parts = [_kmeans(part, k, rng) for part, k in ((pos, n_pos), (neg, n_neg)) if k > 0]
    # Duplicate centres would make K_zz singular; np.unique also fixes their order.
    return np.unique(np.concatenate(parts), axis=0)


def _json_scalar(value: Any) -> Any:
    """numpy scalars (a seed or size given as ``np.int64``) as their Python values."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class VGPMIL:
    """Variational Gaussian process multiple-instance classifier (Haussmann et al., 2017).

    Fitted on bag labels only; predicts instance probabilities ``sigmoid(K_xz K_zz^-1 m)`` and
    bag probabilities (the maximum over the bag's instances, or their noisy-OR). Features are
    z-scored with the mean and standard deviation of the training instances. The fit is
    deterministic for a given ``seed`` (which only seeds k-means) and independent of the order
    of the rows.

    Args:
        num_inducing: number of inducing points; capped at the number of training instances.
        lengthscale: RBF length scale, in units of the z-scored features.
        variance: RBF kernel variance.
        H: bag likelihood ratio: a bag whose label agrees with the max of its instance labels
            is ``H`` times more likely than one that does not.
        max_iter: number of rounds of the closed-form updates of ``q(u)``, ``q(y)`` and xi.
        seed: seed of the k-means that places the inducing points.
        aggregation: bag probability from instance probabilities: ``"max"`` (the MIL rule of
            the model) or ``"noisy_or"`` (``1 - prod(1 - p_i)``).
        n_threads: threads for the products over instances in :meth:`fit`; ``None`` uses the
            cores available to the process. Results do not depend on it.

    Attributes:
        mean_: ``(D,)`` feature means of the training instances.
        std_: ``(D,)`` their standard deviations (1 where a feature is constant).
        inducing_points_: ``(M, D)`` inducing points, z-scored.
        q_mean_: ``(M,)`` posterior mean ``m`` of the inducing values.
        q_cov_: ``(M, M)`` their posterior covariance ``S``.
        alpha_: ``(M,)`` ``K_zz^-1 m``, so that the latent mean is ``K_xz alpha_``.
        history_: ``(max_iter,)`` evidence lower bound after each round of updates.
        jitter_: jitter that was added to the diagonal of ``K_zz``.
        n_features_in_: number of features.

    Example:
        >>> model = VGPMIL(seed=0).fit(X, bag_ids, bag_labels)  # doctest: +SKIP
        >>> instance_p, bag_p = model.predict_proba(X_new, bag_ids_new)  # doctest: +SKIP
    """

    def __init__(
        self,
        num_inducing: int = 200,
        lengthscale: float = 1.5,
        variance: float = 0.5,
        H: float = 100.0,
        max_iter: int = 200,
        seed: int = 0,
        aggregation: Literal["max", "noisy_or"] = "max",
        *,
        n_threads: int | None = None,
    ) -> None:
        self.num_inducing = num_inducing
        self.lengthscale = lengthscale
        self.variance = variance
        self.H = H
        self.max_iter = max_iter
        self.seed = seed
        self.aggregation = aggregation
        self.n_threads = n_threads

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments."""
        return {
            "num_inducing": self.num_inducing,
            "lengthscale": self.lengthscale,
            "variance": self.variance,
            "H": self.H,
            "max_iter": self.max_iter,
            "seed": self.seed,
            "aggregation": self.aggregation,
            "n_threads": self.n_threads,
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def _check_params(self) -> None:
        def integer(v: Any) -> bool:
            return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1

        def positive(v: Any) -> bool:
            return isinstance(v, (int, float, np.number)) and math.isfinite(v) and v > 0

        checks = {
            "num_inducing": integer(self.num_inducing),
            "lengthscale": positive(self.lengthscale),
            "variance": positive(self.variance),
            "H": positive(self.H) and self.H > 1,
            "max_iter": integer(self.max_iter),
            "aggregation": self.aggregation in ("max", "noisy_or"),
            "n_threads": self.n_threads is None or integer(self.n_threads),
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(
                f"invalid {', '.join(f'{n}={getattr(self, n)!r}' for n in bad)}: num_inducing, "
                "max_iter and n_threads must be integers >= 1 (n_threads may be None), "
                "lengthscale and variance > 0, H > 1, aggregation 'max' or 'noisy_or'"
            )

    def _check_fitted(self) -> None:
        if not hasattr(self, "alpha_"):
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet: call fit() first")

    def standardize(self, X: ArrayLike) -> np.ndarray:
        """Z-score features with the mean and standard deviation learned in :meth:`fit`."""
        self._check_fitted()
        return (_features(X, self.n_features_in_) - self.mean_) / self.std_

    def fit(self, X: ArrayLike, bag_ids: ArrayLike, bag_labels: ArrayLike) -> VGPMIL:
        """Fit on instances and the labels of their bags.

        Args:
            X: ``(N, D)`` instance features.
            bag_ids: ``(N,)`` bag of each instance (any sortable ids: str, int, ...).
            bag_labels: ``(N,)`` label of each instance's bag (0/1 or boolean), the same for
                every instance of a bag.

        Returns:
            ``self``.

        Raises:
            ValueError: on invalid hyper-parameters, mismatched lengths, NaN/inf features,
                labels other than 0/1, or a bag whose instances carry different labels.
        """
        self._check_params()
        x = _features(X)
        n = x.shape[0]
        ids = _per_instance(bag_ids, n, "bag_ids")
        labels = _binary_labels(bag_labels, n)
        bags = _Bags.index(x, ids)
        x, labels = x[bags.order], labels[bags.order]
        mixed = np.minimum.reduceat(labels, bags.starts) != np.maximum.reduceat(labels, bags.starts)
        if mixed.any():
            raise ValueError(
                f"{np.count_nonzero(mixed)} bag(s) have different labels on their instances, "
                f"e.g. {bags.keys[mixed][:5].tolist()}"
            )

        mean, std = x.mean(axis=0), x.std(axis=0)
        std[std <= 1e-12 * np.maximum(np.abs(mean), 1.0)] = 1.0  # constant features
        x = (x - mean) / std
        rng = np.random.default_rng(self.seed)
        z = _inducing_points(x, labels, int(self.num_inducing), rng)

        b, fitc, l_zz, jitter = _whitened_cross(x, z, self.lengthscale, self.variance)
        with _block_mapper(self.n_threads) as map_blocks:
            problem = _Problem(b, fitc, labels, bags, float(self.H), map_blocks)
            del b
            logits = np.full(n, logit(_PI_INIT))
            xi = np.full(n, math.sqrt(self.variance))  # E[f^2] under the prior
            history = np.empty(int(self.max_iter))
            for it in range(history.size):
                q_mean, factor = problem.update_u(expit(logits), _jaakkola_lambda(xi))
                mu, var = problem.moments(q_mean, factor)
                logits = problem.update_y(logits, mu)
                xi = np.sqrt(mu * mu + var)
                history[it] = problem.elbo(logits, mu, var, xi, q_mean, factor)

        # Back from whitened coordinates: u = L w, so m = L mw, S = (L F)(L F)^T and
        # K_zz^-1 m = L^-T mw.
        lf = l_zz @ factor
        self.mean_, self.std_ = mean, std
        self.inducing_points_ = z
        self.q_mean_ = l_zz @ q_mean
        self.q_cov_ = lf @ lf.T
        self.alpha_ = solve_triangular(l_zz, q_mean, trans="T", lower=True)
        self.history_ = history
        self.jitter_ = jitter
        self.n_features_in_ = x.shape[1]
        return self

    def decision_function(self, X: ArrayLike) -> np.ndarray:
        """Posterior mean of the latent function at each instance: its logit.

        ``expit`` of it is the instance probability of :meth:`predict_proba`, so it can stand
        where a network's logits do (``ichbundles.mil.VGPMILInferer``).

        Args:
            X: ``(N, D)`` instance features (raw; standardised here).

        Returns:
            ``(N,)`` float64, in the order of ``X``.
        """
        self._check_fitted()
        x = (_features(X, self.n_features_in_) - self.mean_) / self.std_
        latent = np.empty(x.shape[0])
        for start in range(0, x.shape[0], _PREDICT_CHUNK):
            rows = slice(start, start + _PREDICT_CHUNK)
            k = rbf_kernel(x[rows], self.inducing_points_, self.lengthscale, self.variance)
            latent[rows] = k @ self.alpha_
        return latent

    def predict_proba(self, X: ArrayLike, bag_ids: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Instance and bag probabilities.

        Args:
            X: ``(N, D)`` instance features (raw; standardised here).
            bag_ids: ``(N,)`` bag of each instance.

        Returns:
            ``(instance_probabilities, bag_probabilities)``: ``(N,)`` in the order of ``X``, and
            ``(B,)`` for the bags in ``numpy.unique(bag_ids)`` order.
        """
        self._check_fitted()
        x = _features(X, self.n_features_in_)
        bags = _Bags.index(x, _per_instance(bag_ids, x.shape[0], "bag_ids"))
        latent = self.decision_function(x[bags.order])
        if self.aggregation == "max":
            bag_p = expit(np.maximum.reduceat(latent, bags.starts))
        else:
            bag_p = -np.expm1(np.add.reduceat(log_expit(-latent), bags.starts))
        instance_p = np.empty_like(latent)
        instance_p[bags.order] = expit(latent)
        return instance_p, bag_p

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the fitted model to an ``.npz`` (plain arrays and a JSON header, no pickle).

        The file is written next to ``path`` and renamed into place, so a reader never sees a
        partial file.

        Returns:
            ``path`` as a :class:`~pathlib.Path`.
        """
        self._check_fitted()
        path = Path(path)
        header = {
            "format": _FORMAT,
            "params": self.get_params(),
            "jitter": self.jitter_,
            "n_features_in": self.n_features_in_,
        }
        arrays = {name: getattr(self, f"{name}_") for name in _ARRAYS}
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, header=np.array(json.dumps(header, default=_json_scalar)), **arrays)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> VGPMIL:
        """Read a model written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(data["header"].item())
            if header.get("format") != _FORMAT:
                raise ValueError(f"{path} is not a {_FORMAT} file (format {header.get('format')})")
            model = cls(**header["params"])
            for name in _ARRAYS:
                setattr(model, f"{name}_", np.array(data[name]))
        model.jitter_ = float(header["jitter"])
        model.n_features_in_ = int(header["n_features_in"])
        return model
