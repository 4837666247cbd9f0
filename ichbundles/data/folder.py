"""Plain folders: every axial CT series and NIfTI/NRRD/MHA volume under a root, optional labels."""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from ichbundles.data._series import (
    Series,
    item_of,
    labels_mismatch,
    ordered_series,
    slice_labelled_items,
    usable_images,
)
from ichbundles.data.index import get_index
from ichbundles.data.labels import read_rsna_labels, read_scan_labels
from ichbundles.io.selection import AXIAL, choose_series
from ichbundles.io.volume import VOLUME_SUFFIXES, volume_series_uid

__all__ = ["folder_items"]

logger = logging.getLogger(__name__)


def _scan_series(all_series: list[Series]) -> list[Series]:
    """One series per top folder, as :func:`ichbundles.io.read_series` would read that folder;
    each series directly under the root is its own scan. Others are skipped with a warning."""
    by_folder: dict[str, list[Series]] = defaultdict(list)
    for s in all_series:
        by_folder[s["folder"] or s["series_instance_uid"]].append(s)
    chosen = []
    for members in by_folder.values():
        kinds = {s["series_instance_uid"]: s["kind"] for s in members}
        sizes = {s["series_instance_uid"]: s["n_slices"] for s in members}
        uid = choose_series(kinds, sizes)
        for s in members:
            if s["series_instance_uid"] == uid and s["n_slices"] >= 2:
                chosen.append(s)
            else:
                reason = "a single slice" if s["series_instance_uid"] == uid else s["kind"]
                if s["kind"] == AXIAL and s["series_instance_uid"] != uid:
                    reason = "its folder holds a larger axial CT series"
                logger.warning("skipping series %s: %s", s["series_instance_uid"], reason)
    return sorted(chosen, key=lambda s: s["series_instance_uid"])


def _volume_item(root: Path, path: str) -> dict:
    return {
        "image": str(root / path),
        "sop_instance_uids": [],
        "series_instance_uid": volume_series_uid(root / path),
        "study_instance_uid": "",
        "name": path,
    }


def folder_items(
    root: str | os.PathLike,
    scan_labels_csv: str | os.PathLike | None = None,
    slice_labels_csv: str | os.PathLike | None = None,
    index: str | os.PathLike | pd.DataFrame | None = None,
    strict: bool = True,
) -> list[dict]:
    """Items of every series under ``root``, labelled when label files are given.

    DICOM files are grouped by SeriesInstanceUID; each top folder under ``root`` is one scan
    whose item is the series :func:`ichbundles.io.read_series` reads from it (the axial CT
    series with the most images, at least two), and each series directly in ``root`` is a scan
    of its own; other series are skipped with a warning. Each NIfTI/NRRD/MHA file is an item of its
    own whose series UID is its file stem when that is a valid UID.

    Args:
        root: the data folder.
        scan_labels_csv: per-scan labels (see :func:`~ichbundles.data.labels.read_scan_labels`),
            joined on ``series_instance_uid`` or on ``scan_id``/``name`` = the item's ``name``.
        slice_labels_csv: RSNA-format per-image labels (DICOM only); scan labels are their max
            unless ``scan_labels_csv`` is given.
        index: a header index of ``root`` (DataFrame or parquet path); scanned when None.
        strict: raise on labels without an item or items without labels; else drop them with a
            warning.

    Returns:
        DICOM items (by series UID), then volume items (by path). Keys: ``image``,
        ``sop_instance_uids``, ``series_instance_uid``, ``study_instance_uid``, ``name`` (the
        top folder under ``root``, or the series UID for files directly in it; the relative
        path for a volume), plus ``slice_labels`` (S, 6) and ``scan_labels`` (6,) float32 when
        labels are given.

    Raises:
        LabelError: with ``strict``, labels and items that do not match.
    """
    root = Path(root)
    frame = get_index(root, index)
    is_volume = frame["path"].str.lower().str.endswith(VOLUME_SUFFIXES).to_numpy(dtype=bool)
    series = _scan_series(ordered_series(usable_images(frame[~is_volume])))
    names = [s["folder"] or s["series_instance_uid"] for s in series]
    volumes = [_volume_item(root, p) for p in sorted(frame.loc[is_volume, "path"])]

    if slice_labels_csv is None:
        items = [item_of(s, root, n) for s, n in zip(series, names, strict=True)] + volumes
    else:
        labels = read_rsna_labels(slice_labels_csv)
        items = slice_labelled_items(frame, series, names, root, labels, slice_labels_csv, strict)
        if scan_labels_csv is None:
            example = volumes[0]["name"] if volumes else ""
            problem = "volumes cannot take per-slice labels"
            labels_mismatch(slice_labels_csv, len(volumes), problem, example, strict)
        else:
            items += volumes
    if scan_labels_csv is not None:
        items = _join_scan_labels(items, scan_labels_csv, root, strict)
    return items


def _join_scan_labels(
    items: list[dict], labels_csv: str | os.PathLike, root: Path, strict: bool
) -> list[dict]:
    labels = read_scan_labels(labels_csv)
    key = labels.index.name
    if key == "series_instance_uid":
        keys = [item["series_instance_uid"] for item in items]
    else:  # a volume may be named with or without its file ending
        keys = [_volume_key(item["name"], labels.index) for item in items]
    found = np.isin(keys, labels.index)
    example = next((item["name"] for item, f in zip(items, found, strict=True) if not f), "")
    if strict:  # otherwise each unlabelled scan is reported below
        problem = f"scans under {root} have no {key} row"
        labels_mismatch(labels_csv, int((~found).sum()), problem, example, strict)
    unused = labels.index[~labels.index.isin(keys)]
    problem = f"label rows match no scan under {root}"
    labels_mismatch(labels_csv, len(unused), problem, unused[0] if len(unused) else "", strict)

    labelled = []
    for item, k, f in zip(items, keys, found, strict=True):
        if f:
            item["scan_labels"] = labels.loc[k].to_numpy(dtype=np.float32)
            labelled.append(item)
        else:
            logger.warning("skipping %s: no %s row in %s", item["name"], key, labels_csv)
    return labelled


def _volume_key(name: str, known: pd.Index) -> str:
    for suffix in VOLUME_SUFFIXES:
        if name.lower().endswith(suffix) and name not in known:
            return name[: -len(suffix)]
    return name
