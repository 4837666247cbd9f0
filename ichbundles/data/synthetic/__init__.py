"""Synthetic head-CT generator: phantom anatomy, hemorrhages, DICOM series with archive quirks.

The project's test bed: ``generate_dataset`` writes DICOM (optionally NIfTI) series with RSNA-
and CQ500-style labels; ``make_scan`` renders one scan in memory; a ``Stress`` pushes chosen
factors outside their normal range for robustness sets.
"""

from __future__ import annotations

from .anatomy import Tissue
from .dicom_writer import WrittenSeries, write_dicom_series, write_series
from .generate import GENERATOR, LAYOUTS, MIN_SIZE, generate_dataset, scan_seed
from .preview import render_preview
from .quirks import QUIRK_CHOICES, QUIRKS, STORAGE_QUIRKS, UidFactory, available_syntaxes
from .scan import SyntheticScan, make_scan
from .stress import FACTORS, Factor, Stress, parse_stress

__all__ = [
    "FACTORS",
    "GENERATOR",
    "LAYOUTS",
    "MIN_SIZE",
    "QUIRKS",
    "QUIRK_CHOICES",
    "STORAGE_QUIRKS",
    "Factor",
    "Stress",
    "SyntheticScan",
    "Tissue",
    "UidFactory",
    "WrittenSeries",
    "available_syntaxes",
    "generate_dataset",
    "make_scan",
    "parse_stress",
    "render_preview",
    "scan_seed",
    "write_dicom_series",
    "write_series",
]
