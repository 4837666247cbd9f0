"""ROC AUC, its 95% confidence interval (seeded bootstrap or DeLong) and ROC curves.

AUC is computed from midranks (the Mann-Whitney statistic), exact with ties, vectorised over
classes. MONAI's ``compute_roc_auc`` walks the sorted scores in a Python loop and has no
resampling, so it does not fit 750 k slices or 1,000 bootstrap resamples.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy.stats import norm, rankdata

__all__ = [
    "bootstrap_auc",
    "bootstrap_counts",
    "delong_ci",
    "percentile_ci",
    "roc_auc",
    "roc_curve",
]

# Resample count matrices are built in chunks of at most this many cells to bound memory.
_CHUNK_CELLS = 4_000_000


def _columns(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    return a[:, None] if a.ndim == 1 else a


def roc_auc(y_true: np.ndarray, y_score: np.ndarray) -> np.ndarray:
    """AUC of each column; NaN where a column has only one label value.

    Args:
        y_true: ``(N,)`` or ``(N, C)`` labels in {0, 1}.
        y_score: scores of the same shape.

    Returns:
        ``(C,)`` float64 (a 0-d array for 1-d input).
    """
    y = _columns(y_true).astype(bool)
    s = _columns(y_score).astype(np.float64)
    ranks = rankdata(s, axis=0)
    n_pos = y.sum(axis=0).astype(np.float64)
    n_neg = y.shape[0] - n_pos
    rank_sum = np.where(y, ranks, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    auc[(n_pos == 0) | (n_neg == 0)] = np.nan
    return auc[0] if np.ndim(y_true) == 1 else auc


def bootstrap_counts(
    n_units: int, n_boot: int, seed: int, n_samples: int = 0
) -> Iterator[np.ndarray]:
    """Seeded bootstrap resamples as count matrices, in chunks of rows.

    Row ``b`` says how often each unit was drawn in resample ``b``: weighting the units by it
    equals indexing with the drawn indices, without materialising resampled copies. The chunk
    size depends only on ``n_units`` and ``n_samples`` (the rows a chunk is expanded to), so the
    AUC and F1 bootstraps of one evaluation see the same resamples.

    Yields:
        ``(b, n_units)`` float64 count matrices, ``n_boot`` rows in all.
    """
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_CELLS // max(n_units, n_samples, 1))
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        draws = rng.integers(0, n_units, size=(b, n_units))
        flat = (draws + (np.arange(b) * n_units)[:, None]).ravel()
        yield np.bincount(flat, minlength=b * n_units).reshape(b, n_units).astype(np.float64)


def _weighted_auc(counts: np.ndarray, unit: np.ndarray, y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """AUC of one class under each row of unit counts (``(B, K)`` -> ``(B,)``).

    The negatives are sorted once; per resample, the cumulative negative weight at each
    positive's score (``searchsorted`` left and right, so ties count one half) gives
    ``sum_i w_i * (negatives below i + tied negatives / 2) / (P * N)``, exact with ties.
    """
    pos = y.astype(bool)
    neg_order = np.flatnonzero(~pos)[np.argsort(s[~pos], kind="stable")]
    neg_scores = s[neg_order]
    pos_scores = s[pos]
    cum = np.zeros((counts.shape[0], neg_order.size + 1))
    np.cumsum(counts[:, unit[neg_order]], axis=1, out=cum[:, 1:])
    lo = np.searchsorted(neg_scores, pos_scores, side="left")
    hi = np.searchsorted(neg_scores, pos_scores, side="right")
    pos_w = counts[:, unit[pos]]
    below = cum[:, lo] if np.array_equal(lo, hi) else 0.5 * (cum[:, lo] + cum[:, hi])
    num = np.einsum("bi,bi->b", pos_w, below)
    den = pos_w.sum(axis=1) * cum[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def bootstrap_auc(
    y_true: np.ndarray,
    y_score: np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
    clusters: np.ndarray | None = None,
) -> np.ndarray:
    """AUC of each class on ``n_boot`` seeded resamples (paired across classes).

    Args:
        y_true: ``(N, C)`` labels.
        y_score: ``(N, C)`` scores.
        n_boot: number of resamples.
        seed: random seed; the same seed gives the same resamples in every function here.
        clusters: ``(N,)`` integer unit of each sample (its scan); units are resampled whole.
            ``None`` resamples the samples themselves.

    Returns:
        ``(n_boot, C)`` AUCs, NaN for a resample holding one label value only.
    """
    y = _columns(y_true).astype(np.float64)
    s = _columns(y_score).astype(np.float64)
    if clusters is not None:
        clusters = np.unique(clusters, return_inverse=True)[1]
    n_units = y.shape[0] if clusters is None else int(clusters.max()) + 1
    out = np.empty((n_boot, y.shape[1]))
    row = 0
    unit = np.arange(y.shape[0]) if clusters is None else clusters
    for counts in bootstrap_counts(n_units, n_boot, seed, y.shape[0]):
        for c in range(y.shape[1]):
            out[row : row + len(counts), c] = _weighted_auc(counts, unit, y[:, c], s[:, c])
        row += len(counts)
    return out


def percentile_ci(samples: np.ndarray, level: float = 0.95) -> np.ndarray:
    """Percentile interval of each column, ignoring NaN; ``(2, C)``, NaN if all are NaN."""
    tail = 100 * (1 - level) / 2
    samples = _columns(samples)
    out = np.full((2, samples.shape[1]), np.nan)
    valid = np.isfinite(samples).any(axis=0)
    if valid.any():
        out[:, valid] = np.nanpercentile(samples[:, valid], [tail, 100 - tail], axis=0)
    return out


def delong_ci(
    y_true: np.ndarray,
    y_score: np.ndarray,
    clusters: np.ndarray | None = None,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """AUC and its normal-approximation CI from the DeLong variance of one class.

    With ``clusters`` (the scan of each slice) the variance is Obuchowski's (1997) clustered
    form, so correlated slices of one scan do not narrow the interval; with every sample its
    own cluster it reduces to DeLong's. O(N log N): usable on 750 k slices where a bootstrap
    is too slow.

    Returns:
        ``(auc, low, high)``, bounds clipped to [0, 1]; all NaN when AUC is undefined.
    """
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(y_score, dtype=np.float64)
    m, n = int(y.sum()), int((~y).sum())
    if m == 0 or n == 0:
        return (np.nan, np.nan, np.nan)
    ranks = rankdata(s)
    v10 = (ranks[y] - rankdata(s[y])) / n  # per positive: share of negatives below it
    v01 = 1.0 - (ranks[~y] - rankdata(s[~y])) / m  # per negative: share of positives above
    theta = float(v10.mean())
    if clusters is None:
        var = (v10.var(ddof=1) if m > 1 else 0.0) / m + (v01.var(ddof=1) if n > 1 else 0.0) / n
    else:
        var = _clustered_variance(np.asarray(clusters), y, v10, v01, theta)
    half = norm.ppf(0.5 + level / 2) * np.sqrt(max(var, 0.0))
    return (theta, max(0.0, theta - half), min(1.0, theta + half))


def _clustered_variance(
    clusters: np.ndarray, y: np.ndarray, v10: np.ndarray, v01: np.ndarray, theta: float
) -> float:
    _, units = np.unique(clusters, return_inverse=True)
    k = int(units.max()) + 1
    m_i = np.bincount(units[y], minlength=k)
    n_i = np.bincount(units[~y], minlength=k)
    d10 = np.bincount(units[y], weights=v10, minlength=k) - m_i * theta
    d01 = np.bincount(units[~y], weights=v01, minlength=k) - n_i * theta
    m, n = m_i.sum(), n_i.sum()
    k10, k01 = int((m_i > 0).sum()), int((n_i > 0).sum())
    s10 = k10 / ((k10 - 1) * m) * (d10 @ d10) if k10 > 1 else 0.0
    s01 = k01 / ((k01 - 1) * n) * (d01 @ d01) if k01 > 1 else 0.0
    s11 = k / (k - 1) * (d10 @ d01) if k > 1 else 0.0
    return float(s10 / m + s01 / n + 2 * s11 / (m * n))


def roc_curve(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates at every distinct threshold, from (0, 0) to (1, 1)."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(y_score, dtype=np.float64)
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), len(s) - 1]
    tp = np.cumsum(y)[last]
    fp = (last + 1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.r_[0.0, fp / fp[-1]], np.r_[0.0, tp / tp[-1]]
