"""Run a 2D slice encoder over the valid slices of padded scan batches."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["encode_slices"]


def encode_slices(
    encoder: nn.Module, x: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Encode every valid slice of a batch of scans.

    Only valid slices go through the encoder: padding costs no compute and never enters the
    batch-norm statistics.

    Args:
        encoder: maps ``(N, C, H, W)`` slices to ``(N, F)`` features.
        x: ``(B, S, C, H, W)`` scans, padded at the end to a common ``S``.
        mask: boolean ``(B, S)`` of valid slices, or ``None`` for all valid.

    Returns:
        ``(B, S, F)`` features, zero at padded slices.
    """
    b, s = x.shape[:2]
    if mask is None:
        return encoder(x.flatten(0, 1)).view(b, s, -1)
    mask = mask.bool()
    valid = encoder(x[mask])
    features = valid.new_zeros(b, s, valid.shape[-1])
    return features.masked_scatter(mask[..., None], valid)
