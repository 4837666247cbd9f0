"""2D slice classifier: paper 001's stage 1, which turns each slice into a 6-class descriptor."""

from __future__ import annotations

import os

import torch
from torch import nn

from ichbundles.constants import NUM_CLASSES
from ichbundles.networks.backbones import build_backbone
from ichbundles.networks.slice_encoding import encode_slices

__all__ = ["SliceClassifier"]


class SliceClassifier(nn.Module):
    """A backbone and one linear layer that classify every slice on its own.

    Paper 001 trains a ResNet-50 on single slices (sampled in blocks of 7 adjacent ones) into the
    five ICH subtypes and "any"; the sigmoid of its outputs is the slice's *descriptor* that the
    axial fusion stage reads. Takes single slices ``(N, C, H, W)`` (training on sampled blocks)
    or padded scans ``(B, S, C, H, W)`` with a mask (validation, descriptor extraction,
    inference), so one network serves every engine.

    Args:
        backbone: registered backbone name (:data:`~ichbundles.networks.BACKBONES`); ``resnet50``
            as in the paper.
        in_channels: channels per slice (3 CT windows).
        num_classes: outputs per slice.
        dropout: dropout before the linear layer.
        pretrained: local state-dict file for the backbone, or ``None``.

    Example::

        net = SliceClassifier("resnet10_tiny")
        net(torch.randn(14, 3, 64, 64)).shape  # (14, 6)
        net(torch.randn(2, 9, 3, 64, 64), torch.ones(2, 9, dtype=torch.bool)).shape  # (2, 9, 6)
    """

    def __init__(
        self,
        backbone: str = "resnet50",
        in_channels: int = 3,
        num_classes: int = NUM_CLASSES,
        dropout: float = 0.0,
        pretrained: str | os.PathLike | None = None,
    ) -> None:
        super().__init__()
        self.encoder, self.features = build_backbone(backbone, in_channels, pretrained)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(self.features, num_classes)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of every slice.

        Args:
            x: ``(N, C, H, W)`` slices, or ``(B, S, C, H, W)`` scans padded at the end.
            mask: for scans, boolean ``(B, S)`` of real slices, or ``None`` for all real.

        Returns:
            ``(N, num_classes)`` or ``(B, S, num_classes)`` logits; padded slices are encoded
            as zero features, their logits carry no meaning.
        """
        if x.ndim == 4:
            if mask is not None:
                raise ValueError("a mask goes with (B, S, C, H, W) scans, not (N, C, H, W) slices")
            features = self.encoder(x)
        elif x.ndim == 5:
            features = encode_slices(self.encoder, x, mask)
        else:
            raise ValueError(f"expected (N, C, H, W) or (B, S, C, H, W), got {tuple(x.shape)}")
        return self.classifier(self.dropout(features))
