"""The one entry point for reading a CT series, whatever form it comes in."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ichbundles.io.dicom import read_dicom_series
from ichbundles.io.headers import quiet_pydicom
from ichbundles.io.series import CTSeries
from ichbundles.io.volume import read_volume, volume_suffix

__all__ = ["read_series"]


def read_series(
    path: str | os.PathLike | Sequence[str | os.PathLike], series_uid: str | None = None
) -> CTSeries:
    """Read a CT series in Hounsfield units, slices ascending along the slice normal.

    Args:
        path: a folder of DICOM files (any names, any order, searched recursively), a single
            DICOM file (one slice or an enhanced multi-frame CT), a list of DICOM files, or a
            volume file (``.nii``, ``.nii.gz``, ``.nrrd``, ``.mha``).
        series_uid: with a folder holding several series, the SeriesInstanceUID to read; by
            default the axial CT series with the most slices.

    Returns:
        The series; ``warnings`` lists every fix applied and every file skipped.

    Raises:
        SeriesReadError: one line naming the file or folder and the problem.
    """
    if isinstance(path, (str, os.PathLike)) and volume_suffix(path) and Path(path).is_file():
        return read_volume(path)
    with quiet_pydicom():
        return read_dicom_series(path, series_uid)
