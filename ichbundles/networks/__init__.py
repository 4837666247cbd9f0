"""Networks shared by the bundles: slice encoders, sequence heads, MIL pooling, axial fusion and
scan models."""

from __future__ import annotations

from ichbundles.networks.adjacent_slices import AdjacentSliceNet
from ichbundles.networks.attention_mil import AttentionMIL, AttentionMILOutput
from ichbundles.networks.axial_fusion import AxialFusion, axial_block_index
from ichbundles.networks.backbones import BACKBONES, build_backbone, load_backbone_weights
from ichbundles.networks.cnn_lstm import CNNLSTM, scan_logits
from ichbundles.networks.mil_pooling import MIL_POOLING_MODES, MILPooling
from ichbundles.networks.sequence import MaskedBiLSTM, prefix_lengths
from ichbundles.networks.slice_classifier import SliceClassifier
from ichbundles.networks.slice_encoding import encode_slices

__all__ = [
    "BACKBONES",
    "CNNLSTM",
    "MIL_POOLING_MODES",
    "AdjacentSliceNet",
    "AttentionMIL",
    "AttentionMILOutput",
    "AxialFusion",
    "MILPooling",
    "MaskedBiLSTM",
    "SliceClassifier",
    "axial_block_index",
    "build_backbone",
    "encode_slices",
    "load_backbone_weights",
    "prefix_lengths",
    "scan_logits",
]
