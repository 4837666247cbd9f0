"""RSNA 2019 ICH: one item per series from the flat image folder and ``stage_2_train.csv``."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from ichbundles.data._series import ordered_series, slice_labelled_items, usable_images
from ichbundles.data.index import get_index
from ichbundles.data.labels import read_rsna_labels
from ichbundles.io.selection import AXIAL

__all__ = ["rsna_items"]

logger = logging.getLogger(__name__)


def rsna_items(
    image_dir: str | os.PathLike,
    labels_csv: str | os.PathLike,
    index: str | os.PathLike | pd.DataFrame | None = None,
    strict: bool = True,
) -> list[dict]:
    """Items of the RSNA 2019 training set: series ordered along the normal, per-slice labels.

    Images are grouped by SeriesInstanceUID and ordered by ImagePositionPatient projected on the
    slice normal. Unreadable, truncated and non-CT images are dropped with a warning, and so are
    their labels.

    Args:
        image_dir: the folder of ``ID_*.dcm`` files.
        labels_csv: ``stage_2_train.csv`` (``ID,Label``).
        index: a header index of ``image_dir`` (DataFrame or parquet path); scanned when None.
        strict: raise on labels without an image or images without labels; else drop them with
            a warning.

    Returns:
        Items sorted by series UID with keys ``image``, ``sop_instance_uids``,
        ``series_instance_uid``, ``study_instance_uid``, ``name`` (the series UID),
        ``slice_labels`` (S, 6) and ``scan_labels`` (6,) float32 (max over slices).

    Raises:
        LabelError: with ``strict``, when labels and images do not match one to one.
    """
    root = Path(image_dir)
    labels = read_rsna_labels(labels_csv)
    frame = get_index(root, index)
    series = []
    for s in ordered_series(usable_images(frame)):
        if s["kind"] == AXIAL:
            series.append(s)
        else:
            logger.warning("skipping series %s: %s", s["series_instance_uid"], s["kind"])

    names = [s["series_instance_uid"] for s in series]
    return slice_labelled_items(frame, series, names, root, labels, labels_csv, strict)
