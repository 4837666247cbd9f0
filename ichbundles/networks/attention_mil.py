"""Att-CNN of paper 000 (Wu et al.): a small CNN per slice, attention MIL pooling over a scan."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks import Convolution
from torch import nn

from ichbundles.networks.mil_pooling import MILPooling
from ichbundles.networks.slice_encoding import encode_slices

__all__ = ["AttentionMIL", "AttentionMILOutput"]


class AttentionMILOutput(dict):
    """What :meth:`AttentionMIL.extract` returns: ``logits`` (B, K), ``features`` (B, S, M),
    ``weights`` (B, S) and ``pooled`` (B, M). A ``dict`` so that it collates and exports."""


class AttentionMIL(nn.Module):
    """Six convolution + max-pooling blocks, a linear layer to ``M`` features per slice, MIL
    pooling over the slices of a scan and a linear classifier of the scan.

    Trained with scan labels only (sigmoid BCE on the logits). The pooling weights say which
    slices the scan output rests on; paper 000 derives slice labels from them
    (:func:`ichbundles.mil.attention_slice_predictions`) and feeds the per-slice features to VGPMIL.

    Args:
        in_channels: channels per slice (3 CT windows, preset ``att_mil``).
        image_size: rows and columns of the input slices; fixes the flattened size.
        num_outputs: scan outputs: 1 ("any") or 6 (the subtypes and "any").
        features: ``M``, features per slice (8 in the paper).
        attention_hidden: ``L``, units of the attention layer (50 in the paper).
        pooling: ``"attention"`` (AL), ``"gated"``, or ``"mean"`` (the paper's nAL).
        channels: output channels of the six convolution blocks.

    Example::

        net = AttentionMIL(image_size=64)
        x = torch.randn(2, 20, 3, 64, 64)
        mask = torch.arange(20)[None] < torch.tensor([[20], [14]])
        logits = net(x, mask)  # (2, 1)
        out = net.extract(x, mask)  # logits, features (2, 20, 8), weights (2, 20), pooled
    """

    def __init__(
        self,
        in_channels: int = 3,
        image_size: int = 256,
        num_outputs: int = 1,
        features: int = 8,
        attention_hidden: int = 50,
        pooling: str = "attention",
        channels: Sequence[int] = (16, 32, 64, 64, 128, 128),
    ) -> None:
        super().__init__()
        if len(channels) != 6:
            raise ValueError(f"Att-CNN has six convolution blocks, got {len(channels)} channels")
        if image_size < 64:
            raise ValueError(f"image_size must be at least 64 (six 2x poolings), got {image_size}")
        blocks: list[nn.Module] = []
        size = image_size
        for c_in, c_out in zip((in_channels, *channels[:-1]), channels, strict=True):
            blocks += [
                Convolution(2, c_in, c_out, kernel_size=3, act="relu", norm="batch"),
                nn.MaxPool2d(2),
            ]
            size //= 2
        self.image_size = image_size
        self.features = features
        self.encoder = nn.Sequential(
            *blocks, nn.Flatten(), nn.Linear(channels[-1] * size * size, features)
        )
        self.pooling = MILPooling(features, hidden=attention_hidden, mode=pooling)
        self.classifier = nn.Linear(features, num_outputs)

    def extract(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> AttentionMILOutput:
        """Scan logits with the slice features and pooling weights behind them.

        Args:
            x: ``(B, S, C, H, W)`` scans, padded at the end to a common ``S``.
            mask: boolean ``(B, S)`` of valid slices, or ``None`` for all valid.
        """
        z = encode_slices(self.encoder, x, mask)
        pooled, weights = self.pooling(z, mask)
        return AttentionMILOutput(
            logits=self.classifier(pooled), features=z, weights=weights, pooled=pooled
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Scan logits ``(B, num_outputs)``.

        Args:
            x: ``(B, S, C, H, W)`` scans, padded at the end to a common ``S``.
            mask: boolean ``(B, S)`` of valid slices, or ``None`` for all valid.
        """
        return self.extract(x, mask)["logits"]
