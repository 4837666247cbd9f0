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
from ichbundles.engines.precision import (
    PRECISIONS,
    AutocastInferer,
    bf16_supported,
    place_network,
    resolve_precision,
)
from ichbundles.engines.slice_sampling import PrepareBlockBatch, PrepareSliceBatch

__all__ = [
    "PAD_LABEL",
    "PRECISIONS",
    "AutocastInferer",
    "MaskedBCEWithLogitsLoss",
    "PrepareBlockBatch",
    "PrepareScanBatch",
    "PrepareSliceBatch",
    "bf16_supported",
    "collate_scans",
    "pad_scans",
    "place_network",
    "prepare_scan_batch",
    "resolve_precision",
]
