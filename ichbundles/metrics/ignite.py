"""The command's weighted log loss and mean AUC as MONAI metrics and Ignite handlers.

The metrics buffer probabilities and labels over an epoch (MONAI ``Cumulative``, gathered across
processes) and score them with the same numpy functions as ``ichbundles evaluate``, so a bundle's
key metric equals the figure the command prints. Bundle configs name the handlers, e.g.
``{"_target_": "ichbundles.metrics.MeanAUC", "output_transform":
"$monai.handlers.from_engine(['pred', 'label'])"}``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch
from monai.handlers import IgniteMetricHandler
from monai.metrics import CumulativeIterationMetric

from ichbundles.constants import CLASS_WEIGHTS, NUM_CLASSES
from ichbundles.metrics.loss import EPS, weighted_log_loss
from ichbundles.metrics.roc import roc_auc

__all__ = ["MeanAUC", "MeanAUCMetric", "WeightedLogLoss", "WeightedLogLossMetric"]


class _ProbabilityBuffer(CumulativeIterationMetric):
    """Buffers ``(probabilities, labels)`` rows of shape ``(N, K)``, K classes (6 by default).

    Inputs may be ``(B, K)``, ``(B, S, K)`` slice sequences or decollated ``(K,)`` items; rows
    whose labels are negative (padded slices) are dropped.

    Args:
        sigmoid: apply a sigmoid first (inputs are logits).
    """

    def __init__(self, sigmoid: bool = False) -> None:
        super().__init__()
        self.sigmoid = sigmoid

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None):
        if y is None:
            raise ValueError("labels (y) are required")
        classes = y_pred.shape[-1] if y_pred.ndim else NUM_CLASSES
        p = y_pred.detach().to(torch.float64).reshape(-1, classes)
        labels = y.detach().to(torch.float64).reshape(-1, classes)
        if self.sigmoid:
            p = torch.sigmoid(p)
        keep = (labels >= 0).all(dim=1)
        return p[keep].cpu(), labels[keep].cpu()

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        buffers = self.get_buffer()
        if not isinstance(buffers, list | tuple) or len(buffers) != 2:
            raise RuntimeError("no data: call the metric on at least one batch first")
        p, y = buffers
        return p.numpy(), y.numpy()


class WeightedLogLossMetric(_ProbabilityBuffer):
    """RSNA weighted multi-label log loss over everything seen since ``reset()``.

    Args:
        weights: class weights, ``CLASS_WEIGHTS`` (2 for "any") by default.
        eps: probability clipping bound.
        sigmoid: apply a sigmoid first (inputs are logits).
    """

    def __init__(
        self, weights: Sequence[float] = CLASS_WEIGHTS, eps: float = EPS, sigmoid: bool = False
    ) -> None:
        super().__init__(sigmoid=sigmoid)
        self.weights = tuple(weights)
        self.eps = eps

    def aggregate(self) -> torch.Tensor:
        p, y = self._arrays()
        return torch.tensor(weighted_log_loss(y, p, self.weights, self.eps), dtype=torch.float64)


class MeanAUCMetric(_ProbabilityBuffer):
    """Mean ROC AUC over the classes whose AUC is defined (both label values present).

    NaN, with a warning, when no class has both label values.
    """

    def aggregate(self) -> torch.Tensor:
        p, y = self._arrays()
        aucs = roc_auc(y, p)
        if np.isnan(aucs).all():
            warnings.warn("mean AUC undefined: no class has both label values", stacklevel=2)
            return torch.tensor(float("nan"), dtype=torch.float64)
        return torch.tensor(float(np.nanmean(aucs)), dtype=torch.float64)


class WeightedLogLoss(IgniteMetricHandler):
    """Ignite handler of :class:`WeightedLogLossMetric` (lower is better).

    Args:
        weights: class weights.
        sigmoid: apply a sigmoid first (inputs are logits).
        output_transform: engine output -> ``(y_pred, y)``.
        save_details: keep the buffered rows in ``engine.state.metric_details``.
    """

    def __init__(
        self,
        weights: Sequence[float] = CLASS_WEIGHTS,
        sigmoid: bool = False,
        output_transform: Callable = lambda x: x,
        save_details: bool = False,
    ) -> None:
        metric_fn = WeightedLogLossMetric(weights=weights, sigmoid=sigmoid)
        super().__init__(
            metric_fn=metric_fn, output_transform=output_transform, save_details=save_details
        )


class MeanAUC(IgniteMetricHandler):
    """Ignite handler of :class:`MeanAUCMetric` (higher is better).

    Args:
        sigmoid: apply a sigmoid first (inputs are logits).
        output_transform: engine output -> ``(y_pred, y)``.
        save_details: keep the buffered rows in ``engine.state.metric_details``.
    """

    def __init__(
        self,
        sigmoid: bool = False,
        output_transform: Callable = lambda x: x,
        save_details: bool = False,
    ) -> None:
        metric_fn = MeanAUCMetric(sigmoid=sigmoid)
        super().__init__(
            metric_fn=metric_fn, output_transform=output_transform, save_details=save_details
        )
