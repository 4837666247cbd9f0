"""Slice predictions of an attention MIL network trained with scan labels only (paper 000)."""

from __future__ import annotations

import torch

__all__ = ["attention_slice_predictions"]


def attention_slice_predictions(
    scan_probability: torch.Tensor,
    weights: torch.Tensor,
    mask: torch.Tensor | None = None,
    threshold: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-slice scores and labels from a scan probability and its attention weights.

    Paper 000's rule: a scan predicted negative has all slices negative; in a scan predicted
    positive, the slices whose min-max normalised attention exceeds ``threshold`` are positive.
    The score is the scan probability times the normalised attention, a ranking for slice-level
    ROC curves whose maximum over a scan is the scan probability. Uniform weights (the mean
    pooling of ``nAL``, or a single slice) normalise to 1: every slice of a positive scan.

    Args:
        scan_probability: ``(B,)`` scan probabilities.
        weights: ``(B, S)`` attention weights.
        mask: boolean ``(B, S)`` of valid slices, or ``None`` for all valid.
        threshold: cut-off of both the scan probability and the normalised attention.

    Returns:
        ``(B, S)`` scores in [0, 1] and ``(B, S)`` bool labels; both zero at padded slices.
    """
    valid = torch.ones_like(weights, dtype=torch.bool) if mask is None else mask.bool()
    low = weights.masked_fill(~valid, float("inf")).amin(dim=1, keepdim=True)
    high = weights.masked_fill(~valid, float("-inf")).amax(dim=1, keepdim=True)
    spread = high - low
    # a relative tolerance: softmax weights that differ only by rounding count as uniform
    uniform = spread <= 1e-6 * high.abs().clamp_min(1e-30)
    normalised = torch.where(uniform, torch.ones_like(weights), (weights - low) / spread)
    normalised = normalised.masked_fill(~valid, 0.0)
    scores = scan_probability[:, None] * normalised
    labels = (scan_probability[:, None] >= threshold) & (normalised > threshold) & valid
    return scores, labels
