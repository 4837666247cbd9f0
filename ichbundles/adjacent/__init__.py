"""Paper 001 (deep descriptors of adjacent slices): stage 1 descriptors without leakage, the
joined two-stage checkpoint and the results table of the ``ich_adjacent_slices`` bundle."""

from __future__ import annotations

from ichbundles.adjacent.checkpoint import join_stage_checkpoints
from ichbundles.adjacent.descriptors import (
    DESCRIPTOR_FORMAT,
    DescriptorSource,
    DescriptorWriter,
    descriptor_datalist,
    descriptor_file,
    descriptor_sources,
    extract_descriptors,
    fold_models,
    read_descriptors,
)
from ichbundles.adjacent.evaluation import (
    TABLE_ROWS,
    AdjacentTable,
    adjacent_table,
    read_stage_metrics,
    write_adjacent_table,
)

__all__ = [
    "DESCRIPTOR_FORMAT",
    "TABLE_ROWS",
    "AdjacentTable",
    "DescriptorSource",
    "DescriptorWriter",
    "adjacent_table",
    "descriptor_datalist",
    "descriptor_file",
    "descriptor_sources",
    "extract_descriptors",
    "fold_models",
    "join_stage_checkpoints",
    "read_descriptors",
    "read_stage_metrics",
    "write_adjacent_table",
]
