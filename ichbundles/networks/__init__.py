"""Networks shared by the bundles: slice encoders, sequence heads and slice-sequence models."""

from __future__ import annotations

from ichbundles.networks.backbones import BACKBONES, build_backbone, load_backbone_weights
from ichbundles.networks.cnn_lstm import CNNLSTM, scan_logits
from ichbundles.networks.sequence import MaskedBiLSTM, prefix_lengths

__all__ = [
    "BACKBONES",
    "CNNLSTM",
    "MaskedBiLSTM",
    "build_backbone",
    "load_backbone_weights",
    "prefix_lengths",
    "scan_logits",
]
