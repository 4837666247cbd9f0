"""Synthetic head-CT generator: phantom anatomy, hemorrhages, DICOM series with archive quirks.

The project's test bed: ``generate_dataset`` writes DICOM (optionally NIfTI) series with RSNA-
and CQ500-style labels; ``make_scan`` renders one scan in memory.
"""

from __future__ import annotations

from .anatomy import Tissue
from .dicom_writer import WrittenSeries, write_dicom_series, write_series
from .generate import GENERATOR, LAYOUTS, MIN_SIZE, generate_dataset, scan_seed
from .preview import render_preview
from .quirks import QUIRK_CHOICES, QUIRKS, STORAGE_QUIRKS, UidFactory, available_syntaxes
from .scan import SyntheticScan, make_scan

__all__ = [
    "GENERATOR",
    "LAYOUTS",
    "MIN_SIZE",
    "QUIRKS",
    "QUIRK_CHOICES",
    "STORAGE_QUIRKS",
    "SyntheticScan",
    "Tissue",
    "UidFactory",
    "WrittenSeries",
    "available_syntaxes",
    "generate_dataset",
    "make_scan",
    "render_preview",
    "scan_seed",
    "write_dicom_series",
    "write_series",
]
