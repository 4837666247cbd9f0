"""Metrics at a threshold: confusion counts, proportions with Wilson CIs, threshold choice."""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm

__all__ = [
    "STAT_NAMES",
    "binary_stats",
    "confusion_counts",
    "stats_from_counts",
    "threshold_for_sensitivity",
    "wilson_ci",
]

#: Threshold statistics in report order.
STAT_NAMES: tuple[str, ...] = ("sensitivity", "specificity", "precision", "npv", "accuracy", "f1")


def confusion_counts(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Counts ``[tp, fp, tn, fn]`` of each column.

    Args:
        y_true: ``(N, C)`` labels in {0, 1}.
        y_pred: ``(N, C)`` binary decisions.

    Returns:
        ``(C, 4)`` int64.
    """
    y = np.asarray(y_true).astype(bool)
    p = np.asarray(y_pred).astype(bool)
    tp = (y & p).sum(axis=0)
    fp = (~y & p).sum(axis=0)
    fn = (y & ~p).sum(axis=0)
    tn = y.shape[0] - tp - fp - fn
    return np.stack([tp, fp, tn, fn], axis=-1).astype(np.int64)


def wilson_ci(successes: float, total: float, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion; ``(nan, nan)`` when ``total`` is 0."""
    if total <= 0:
        return (math.nan, math.nan)
    z = float(norm.ppf(0.5 + level / 2))
    p = successes / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def stats_from_counts(counts: np.ndarray) -> dict[str, np.ndarray]:
    """Threshold statistics from ``[..., 4]`` counts ``[tp, fp, tn, fn]``; NaN where undefined.

    Works on any leading shape, so bootstrap count arrays ``(B, C, 4)`` go through unchanged.
    """
    tp, fp, tn, fn = (counts[..., i].astype(np.float64) for i in range(4))
    return {
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "precision": _ratio(tp, tp + fp),
        "npv": _ratio(tn, tn + fn),
        "accuracy": _ratio(tp + tn, tp + fp + tn + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
    }


# Numerator and denominator of each proportion, as indices into [tp, fp, tn, fn].
_PROPORTIONS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "sensitivity": ((0,), (0, 3)),
    "specificity": ((2,), (2, 1)),
    "precision": ((0,), (0, 1)),
    "npv": ((2,), (2, 3)),
    "accuracy": ((0, 2), (0, 1, 2, 3)),
}


def binary_stats(counts: np.ndarray, level: float = 0.95) -> dict[str, dict[str, float | None]]:
    """Statistics of one class from its ``[tp, fp, tn, fn]`` with Wilson CIs for proportions.

    F1 is not a proportion, so its CI comes from the bootstrap (see ``evaluate``), not here.

    Returns:
        ``{name: {"value": v, "ci": (low, high)}}``; NaN where undefined.
    """
    values = stats_from_counts(np.asarray(counts))
    out: dict[str, dict] = {}
    for name in STAT_NAMES:
        ci = (math.nan, math.nan)
        if name in _PROPORTIONS:
            num, den = _PROPORTIONS[name]
            ci = wilson_ci(float(counts[list(num)].sum()), float(counts[list(den)].sum()), level)
        out[name] = {"value": float(values[name]), "ci": ci}
    return out


def threshold_for_sensitivity(y_true: np.ndarray, y_score: np.ndarray, target: float) -> float:
    """Highest threshold whose decisions ``score >= threshold`` reach the target sensitivity.

    The highest such threshold keeps specificity as high as the target allows (triage use).

    Returns:
        The threshold, or NaN when the class has no positives.
    """
    if not 0 < target <= 1:
        raise ValueError(f"target sensitivity must be in (0, 1], got {target}")
    positives = np.sort(np.asarray(y_score, dtype=np.float64)[np.asarray(y_true).astype(bool)])
    if positives.size == 0:
        return math.nan
    needed = math.ceil(target * positives.size - 1e-9)
    return float(positives[positives.size - needed])
