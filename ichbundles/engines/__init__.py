"""Ignite glue for MONAI engines: whole-scan batches, their ``prepare_batch`` and loss."""

from __future__ import annotations

from ichbundles.engines.batching import (
    PAD_LABEL,
    MaskedBCEWithLogitsLoss,
    PrepareScanBatch,
    collate_scans,
    pad_scans,
    prepare_scan_batch,
)

__all__ = [
    "PAD_LABEL",
    "MaskedBCEWithLogitsLoss",
    "PrepareScanBatch",
    "collate_scans",
    "pad_scans",
    "prepare_scan_batch",
]
