"""Dataset lists and labels: RSNA 2019, CQ500 and plain folders as MONAI-ready per-series items.

Every builder returns ``list[dict]`` items with ``image`` (DICOM file paths in slice order, or a
volume file path), ``sop_instance_uids``, ``series_instance_uid``, ``study_instance_uid``,
``name``, ``scan_labels`` (6,) and, where known, ``slice_labels`` (S, 6), in ``ICH_CLASSES``
order. Header scanning is cached by the resumable index of :func:`build_index`.
"""

from __future__ import annotations

from ichbundles.data.cq500 import SERIES_CHOICES, cq500_items
from ichbundles.data.folder import folder_items
from ichbundles.data.index import INDEX_COLUMNS, INDEX_NAME, build_index, get_index, load_index
from ichbundles.data.labels import (
    LabelError,
    read_cq500_reads,
    read_rsna_labels,
    read_scan_labels,
    rsna_id,
    sop_key,
)
from ichbundles.data.rsna import rsna_items

__all__ = [
    "INDEX_COLUMNS",
    "INDEX_NAME",
    "SERIES_CHOICES",
    "LabelError",
    "build_index",
    "cq500_items",
    "folder_items",
    "get_index",
    "load_index",
    "read_cq500_reads",
    "read_rsna_labels",
    "read_scan_labels",
    "rsna_id",
    "rsna_items",
    "sop_key",
]
