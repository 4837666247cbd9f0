"""Calibration: expected calibration error and the reliability-diagram table."""

from __future__ import annotations

import numpy as np

__all__ = ["expected_calibration_error", "reliability"]


def reliability(y_true: np.ndarray, y_prob: np.ndarray, n_bins: int = 10) -> dict[str, np.ndarray]:
    """Bin one class's probabilities into equal-width bins over [0, 1].

    Bins are right-closed except the first, so 0 and 1 both fall in a bin.

    Returns:
        ``edges`` (n_bins + 1), and per bin ``count``, ``mean_prob`` and ``frequency`` (observed
        positive fraction); the last two are NaN for empty bins.
    """
    p = np.asarray(y_prob, dtype=np.float64)
    y = np.asarray(y_true, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.searchsorted(edges, p, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(bins, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_prob = np.bincount(bins, weights=p, minlength=n_bins) / count
        frequency = np.bincount(bins, weights=y, minlength=n_bins) / count
    return {"edges": edges, "count": count, "mean_prob": mean_prob, "frequency": frequency}


def expected_calibration_error(y_true: np.ndarray, y_prob: np.ndarray, n_bins: int = 10) -> float:
    """ECE: bin-size weighted mean of ``|frequency - mean probability|`` over equal-width bins."""
    table = reliability(y_true, y_prob, n_bins)
    filled = table["count"] > 0
    gaps = np.abs(table["frequency"][filled] - table["mean_prob"][filled])
    return float(gaps @ table["count"][filled] / table["count"].sum())
