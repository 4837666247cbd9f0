"""Axial fusion of adjacent slice descriptors (paper 001, stage 2)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ichbundles.constants import ADJACENT_CONTEXT, NUM_CLASSES
from ichbundles.networks.sequence import prefix_lengths

__all__ = ["LOGIT_LIMIT", "AxialFusion", "axial_block_index"]

# probabilities are clamped to [eps, 1 - eps] before their logit: logits within +-LOGIT_LIMIT
_LOGIT_EPS = 1e-6
#: The largest logit magnitude the fusion sees with ``logit_inputs`` (13.8).
LOGIT_LIMIT = math.log((1 - _LOGIT_EPS) / _LOGIT_EPS)


def axial_block_index(mask: torch.Tensor, context: int = ADJACENT_CONTEXT) -> torch.Tensor:
    """Slice indices of the block around every slice: itself and ``context`` on each side.

    Blocks stay inside their scan: a neighbour beyond the first or last real slice is that
    slice again (edge replication, as paper 001 pads its 7-slice blocks). Padded positions point
    at the scan's last real slice, so every index is valid.

    Args:
        mask: boolean ``(B, S)`` of real slices, real slices first.
        context: slices on each side (3 gives paper 001's blocks of 7).

    Returns:
        int64 ``(B, S, 2 * context + 1)`` indices into the slice axis, on ``mask``'s device.
    """
    if context < 0:
        raise ValueError(f"context must be non-negative, got {context}")
    lengths = prefix_lengths(mask).to(mask.device).clamp(min=1)
    positions = torch.arange(mask.shape[1], device=mask.device)
    offsets = torch.arange(-context, context + 1, device=mask.device)
    index = positions[None, :, None] + offsets[None, None, :]
    last = (lengths - 1)[:, None, None]
    index = torch.minimum(index.clamp(min=0), last)
    return torch.where(mask[..., None].bool(), index, last)


class AxialFusion(nn.Module):
    """Re-calibrates each slice's prediction from the descriptors of its axial neighbours.

    Paper 001 stacks the stage-1 outputs (6 per slice) of the 7 slices around a slice into a
    ``7 x 6 x 1`` map and classifies the middle slice with two convolution layers and one fully
    connected layer; the kernels see both neighbouring slices and related subtypes. The paper
    does not give kernel sizes or widths: 3 x 3 convolutions with ``channels`` filters keep the
    map's size here. MONAI has no network of this shape, so it is written out in plain PyTorch.

    Input ``(B, S, K)`` descriptors per slice (stage-1 probabilities or logits) and a mask;
    output ``(B, S, num_classes)`` logits per slice.

    Args:
        in_features: descriptor size per slice (``K``, 6 for the ICH classes).
        num_classes: outputs per slice.
        context: neighbours on each side (3: blocks of 7).
        channels: filters of the two convolutions.
        dropout: dropout before the fully connected layer.
        logit_inputs: the descriptors are probabilities to map to logits before the
            convolutions. Probabilities crowd near 0 and 1, where a slice at 0.99 and one at
            0.9999 look alike; logits keep them apart, and the scan-level maximum depends on
            the strongest slices.
    """

    def __init__(
        self,
        in_features: int = NUM_CLASSES,
        num_classes: int = NUM_CLASSES,
        context: int = ADJACENT_CONTEXT,
        channels: Sequence[int] = (32, 32),
        dropout: float = 0.0,
        logit_inputs: bool = False,
    ) -> None:
        super().__init__()
        if len(channels) != 2:
            raise ValueError(f"the fusion network has two convolutions, got {len(channels)}")
        self.context = context
        self.logit_inputs = logit_inputs
        block = 2 * context + 1
        self.features = nn.Sequential(
            nn.Conv2d(1, channels[0], kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels[0], channels[1], kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Flatten(),
            nn.Dropout(dropout),
        )
        self.classifier = nn.Linear(channels[1] * block * in_features, num_classes)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Re-classified logits of every slice from its block of descriptors.

        Args:
            x: ``(B, S, K)`` slice descriptors, padded at the end to a common ``S``.
            mask: boolean ``(B, S)`` of real slices, or ``None`` for all real.
        """
        if self.logit_inputs:
            # clamped so that certain descriptors (0 or 1) still give finite logits
            x = torch.logit(x, eps=_LOGIT_EPS)
        return self.fuse(x, mask)

    def fuse(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`forward` on descriptors already mapped: logits when ``logit_inputs``.

        Args:
            x: ``(B, S, K)`` probabilities, or logits within :data:`LOGIT_LIMIT` when
                ``logit_inputs``.
            mask: boolean ``(B, S)`` of real slices, or ``None`` for all real.
        """
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        index = axial_block_index(mask, self.context)  # (B, S, 2c+1)
        b, s, width = index.shape
        rows = torch.arange(b, device=x.device)[:, None, None]
        blocks = x[rows, index]  # (B, S, 2c+1, K)
        maps = blocks.reshape(b * s, 1, width, x.shape[-1])
        return self.classifier(self.features(maps)).reshape(b, s, -1)
