"""The RSNA 2019 weighted multi-label log loss."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ichbundles.constants import CLASS_WEIGHTS

__all__ = ["EPS", "class_log_loss", "weighted_log_loss"]

#: Probabilities are clipped to ``[EPS, 1 - EPS]`` as the competition metric did.
EPS = 1e-15


def class_log_loss(y_true: np.ndarray, y_prob: np.ndarray, eps: float = EPS) -> np.ndarray:
    """Mean binary cross-entropy of each class column.

    Args:
        y_true: ``(N, C)`` labels in {0, 1}.
        y_prob: ``(N, C)`` probabilities.
        eps: clipping bound.

    Returns:
        ``(C,)`` float64 losses.
    """
    y = np.asarray(y_true, dtype=bool)
    p = np.clip(np.asarray(y_prob, dtype=np.float64), eps, 1.0 - eps)
    # One log per cell instead of y*log(p) + (1-y)*log(1-p): half the work on 4.5 M cells.
    return -np.log(np.where(y, p, 1.0 - p)).mean(axis=0)


def weighted_log_loss(
    y_true: np.ndarray,
    y_prob: np.ndarray,
    weights: Sequence[float] = CLASS_WEIGHTS,
    eps: float = EPS,
) -> float:
    """RSNA weighted multi-label log loss: class losses weighted (2 for "any") and normalised.

    Every sample carries the same weights, so this equals scikit-learn's ``log_loss`` of the
    flattened arrays with the weights tiled as ``sample_weight``.

    Args:
        y_true: ``(N, C)`` labels in {0, 1}, columns in ``ICH_CLASSES`` order.
        y_prob: ``(N, C)`` probabilities.
        weights: per-class weights, ``CLASS_WEIGHTS`` by default.
        eps: clipping bound.
    """
    w = np.asarray(weights, dtype=np.float64)
    return float(class_log_loss(y_true, y_prob, eps) @ w / w.sum())
