"""CNN-LSTM slice-sequence classifier (paper 002, Nguyen et al.)."""

from __future__ import annotations

import os

import torch
from torch import nn

from ichbundles.constants import NUM_CLASSES
from ichbundles.networks.backbones import build_backbone
from ichbundles.networks.sequence import MaskedBiLSTM
from ichbundles.networks.slice_encoding import encode_slices

__all__ = ["CNNLSTM", "scan_logits"]


def scan_logits(slice_logits: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Scan-level logits: the maximum over valid slices, as the paper scores CQ500.

    The sigmoid is monotonic, so the maximum logit gives the maximum slice probability.

    Args:
        slice_logits: ``(B, S, K)`` per-slice logits.
        mask: boolean ``(B, S)``, ``True`` for valid slices; ``None`` means all valid.

    Returns:
        ``(B, K)``; ``-inf`` for a scan without valid slices.
    """
    if mask is not None:
        slice_logits = slice_logits.masked_fill(~mask.bool()[..., None], float("-inf"))
    return slice_logits.amax(dim=1)


class CNNLSTM(nn.Module):
    """2D slice encoder, bidirectional LSTM across slices and a linear layer per slice.

    Each slice (3 stacked CT windows in the paper) is encoded by a backbone from
    :func:`~ichbundles.networks.backbones.build_backbone`; two bidirectional LSTM layers of 512
    units link the slices of a scan and a linear layer gives per-slice logits for the five ICH
    subtypes and "any". Train with sigmoid BCE; :func:`scan_logits` gives the scan output.

    Args:
        backbone: registered backbone name; ``resnet50`` and ``seresnext50`` as in the paper.
        in_channels: channels per slice.
        num_classes: outputs per slice.
        hidden: LSTM hidden units per direction.
        layers: stacked LSTM layers.
        dropout: dropout between LSTM layers and before the linear layer.
        pretrained: local state-dict file for the backbone, or ``None``.

    Example::

        net = CNNLSTM("resnet10_tiny", hidden=64)
        x = torch.randn(2, 12, 3, 64, 64)  # (B, S, C, H, W)
        mask = torch.arange(12)[None] < torch.tensor([[12], [9]])  # valid slices first
        logits = net(x, mask)  # (2, 12, 6)
        scan = scan_logits(logits, mask)  # (2, 6)
    """

    def __init__(
        self,
        backbone: str = "resnet50",
        in_channels: int = 3,
        num_classes: int = NUM_CLASSES,
        hidden: int = 512,
        layers: int = 2,
        dropout: float = 0.0,
        pretrained: str | os.PathLike | None = None,
    ) -> None:
        super().__init__()
        self.encoder, self.features = build_backbone(backbone, in_channels, pretrained)
        self.sequence = MaskedBiLSTM(self.features, hidden=hidden, layers=layers, dropout=dropout)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(self.sequence.out_features, num_classes)

    def encode(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Encode every valid slice.

        Args:
            x: ``(B, S, C, H, W)`` scans.
            mask: boolean ``(B, S)`` of valid slices, or ``None`` for all valid.

        Returns:
            ``(B, S, F)`` features, zero at padded slices.
        """
        return encode_slices(self.encoder, x, mask)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Per-slice logits.

        Args:
            x: ``(B, S, C, H, W)`` scans, padded at the end to a common ``S``.
            mask: boolean ``(B, S)``, ``True`` for valid slices (a prefix of each scan);
                ``None`` means all slices are valid.

        Returns:
            ``(B, S, num_classes)`` logits; values at padded slices carry no meaning.
        """
        hidden = self.sequence(self.encode(x, mask), mask)
        return self.classifier(self.dropout(hidden))
