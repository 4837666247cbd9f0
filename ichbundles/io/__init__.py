"""Reading CT series: DICOM folders and files, enhanced multi-frame CT, NIfTI and ITK images."""

from __future__ import annotations

from ichbundles.io.reader import read_series
from ichbundles.io.series import CTSeries, SeriesReadError

__all__ = ["CTSeries", "SeriesReadError", "read_series"]
