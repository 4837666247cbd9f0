"""Ignite glue for MONAI engines: whole-scan batches, their ``prepare_batch`` (whole scans,
random slices or blocks of adjacent slices) and loss."""

from __future__ import annotations

from ichbundles.engines.batching import (
    PAD_LABEL,
    MaskedBCEWithLogitsLoss,
    PrepareScanBatch,
    collate_scans,
    pad_scans,
    prepare_scan_batch,
)
from ichbundles.engines.slice_sampling import PrepareBlockBatch, PrepareSliceBatch

__all__ = [
    "PAD_LABEL",
    "MaskedBCEWithLogitsLoss",
    "PrepareBlockBatch",
    "PrepareScanBatch",
    "PrepareSliceBatch",
    "collate_scans",
    "pad_scans",
    "prepare_scan_batch",
]
