"""Paper 001 end to end: slice descriptors (stage 1), then their axial fusion (stage 2)."""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence

import torch
from torch import nn

from ichbundles.constants import ADJACENT_CONTEXT, NUM_CLASSES
from ichbundles.networks.axial_fusion import LOGIT_LIMIT, AxialFusion
from ichbundles.networks.slice_classifier import SliceClassifier

__all__ = ["AdjacentSliceNet"]


class AdjacentSliceNet(nn.Module):
    """Stage 1 :class:`SliceClassifier` and stage 2 :class:`AxialFusion` as one network.

    Each slice's descriptor is the sigmoid of stage 1's logits (the class probabilities, as in
    the paper); the fusion network re-calibrates each slice from the descriptors of its block of
    ``2 * context + 1`` slices. The two stages are trained apart (``ich_adjacent_slices``
    bundle); this module joins their weights for inference and export (``stage1.*`` and
    ``fusion.*`` keys). With ``use_fusion=False`` it is stage 1 alone, the paper's 2D baseline,
    from the same checkpoint.

    Args:
        backbone: stage 1 backbone name.
        in_channels: channels per slice.
        num_classes: classes per slice (descriptor size and output size).
        context: neighbours on each side of the fusion block.
        fusion_channels: filters of the fusion network's two convolutions.
        dropout: stage 1 dropout before its linear layer.
        fusion_dropout: fusion dropout before its linear layer.
        pretrained: local state-dict file for the stage 1 backbone, or ``None``.
        use_fusion: output the fused logits (``True``) or stage 1's.
        fusion_logit_inputs: the fusion network takes the descriptors as logits (see
            :class:`AxialFusion`'s ``logit_inputs``).
    """

    def __init__(
        self,
        backbone: str = "resnet50",
        in_channels: int = 3,
        num_classes: int = NUM_CLASSES,
        context: int = ADJACENT_CONTEXT,
        fusion_channels: Sequence[int] = (32, 32),
        dropout: float = 0.0,
        fusion_dropout: float = 0.0,
        pretrained: str | os.PathLike | None = None,
        use_fusion: bool = True,
        fusion_logit_inputs: bool = False,
    ) -> None:
        super().__init__()
        self.stage1 = SliceClassifier(backbone, in_channels, num_classes, dropout, pretrained)
        self.fusion = AxialFusion(
            num_classes,
            num_classes,
            context,
            fusion_channels,
            dropout=fusion_dropout,
            logit_inputs=fusion_logit_inputs,
        )
        self.use_fusion = use_fusion

    def with_fusion(self, use_fusion: bool) -> AdjacentSliceNet:
        """This network with fusion on or off, sharing its modules (and so its weights).

        ``net.with_fusion(False)`` is stage 1 alone, the paper's 2D baseline, for evaluating
        both from one checkpoint.
        """
        other = copy.copy(self)
        other.use_fusion = use_fusion
        return other

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Per-slice logits.

        Args:
            x: ``(B, S, C, H, W)`` scans, padded at the end to a common ``S``.
            mask: boolean ``(B, S)`` of real slices (a prefix of each scan), ``None`` for all.

        Returns:
            ``(B, S, num_classes)`` logits; values at padded slices carry no meaning.
        """
        logits = self.stage1(x, mask)
        if not self.use_fusion:
            return logits
        if self.fusion.logit_inputs:
            # stage 1's logits go in as they are, clamped as the fusion clamps probabilities:
            # the float32 round trip through sigmoid and logit loses the digits of large
            # logits, and ONNX Runtime's sigmoid, accurate to an absolute error, moved fused
            # logits by up to 0.01 that way
            return self.fusion.fuse(logits.clamp(-LOGIT_LIMIT, LOGIT_LIMIT), mask)
        return self.fusion(torch.sigmoid(logits), mask)
