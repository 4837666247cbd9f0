"""Shared by the dataset builders: filter index rows, group them into ordered series, make items."""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from ichbundles.data.labels import LabelError
from ichbundles.io.geometry import order_along_normal, slice_gaps
from ichbundles.io.selection import is_localizer, one_per_position, orientation_key, series_kind

__all__ = [
    "Series",
    "item_of",
    "labels_mismatch",
    "ordered_series",
    "slice_labelled_items",
    "usable_images",
]

logger = logging.getLogger("ichbundles.data")

#: One DICOM series in slice order: UIDs, descriptive tags, relative paths, geometry summary.
Series = dict


def usable_images(index: pd.DataFrame) -> pd.DataFrame:
    """Index rows that are readable images; one warning per dropped file says why."""
    problem = index["problem"].astype(str)
    truncated = index["truncated"].astype(bool)
    pixels = index["has_pixels"].astype(bool)
    keep = (problem == "") & ~truncated & pixels
    for row in index[~keep].itertuples(index=False):
        if row.problem:
            reason = row.problem
        elif row.truncated:
            reason = f"truncated pixel data (SOP {row.sop_instance_uid})"
        else:
            reason = f"no pixel data (SOP {row.sop_instance_uid})"
        logger.warning("skipping %s: %s", row.path, reason)
    return index[keep]


def _orientation(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in str(text).split("\\"))
    except ValueError:
        return ()


def ordered_series(images: pd.DataFrame) -> list[Series]:
    """Group image rows by SeriesInstanceUID and order each series along its slice normal.

    The slices kept are those :func:`ichbundles.io.read_series` keeps (the rules of
    :mod:`ichbundles.io.selection`): files without a series UID, duplicate SOPInstanceUIDs,
    scouts/localizers, files whose orientation differs from the rest of their series and all
    but the lowest InstanceNumber of slices stored twice at one position are dropped with a
    warning; so is a series whose geometry cannot be ordered.

    Returns:
        Series dicts sorted by series UID, with ``kind`` (``"axial"`` for an axial CT series,
        else why not; see :func:`~ichbundles.io.selection.series_kind`), ``paths``,
        ``sop_instance_uids`` and ``z`` in slice order (ascending along the normal).
    """
    images = images.sort_values(["series_instance_uid", "path"], kind="stable")
    for path in images.loc[images["series_instance_uid"] == "", "path"]:
        logger.warning("skipping %s: no SeriesInstanceUID", path)
    images = images[images["series_instance_uid"] != ""]
    duplicate = images.duplicated(["series_instance_uid", "sop_instance_uid"])
    for row in images[duplicate].itertuples(index=False):
        logger.warning("skipping %s: duplicate of SOP %s", row.path, row.sop_instance_uid)
    images = images[~duplicate]

    uids = images["series_instance_uid"].to_numpy()
    positions = images[["ipp_x", "ipp_y", "ipp_z"]].to_numpy(dtype=np.float64)
    iops = images["iop"].to_numpy()
    starts = np.flatnonzero(np.r_[True, uids[1:] != uids[:-1]]) if len(uids) else []
    bounds = zip(starts, [*starts[1:], len(uids)], strict=True)
    result = [_series(images.iloc[a:b], positions[a:b], iops[a:b]) for a, b in bounds]
    return [s for s in result if s is not None]


def _series(rows: pd.DataFrame, positions: np.ndarray, iops: np.ndarray) -> Series | None:
    uid = rows["series_instance_uid"].iloc[0]
    image_types = rows["image_type"].astype(str).to_numpy()
    kind = series_kind(rows["modality"].iloc[0], image_types, [_orientation(text) for text in iops])
    localizer = np.array([is_localizer(t) for t in image_types], dtype=bool)
    if localizer.all():
        logger.warning("skipping series %s: %s", uid, kind)
        return None
    for path in rows["path"].to_numpy()[localizer]:
        logger.warning("skipping %s: scout/localizer image", path)
    rows, positions, iops = rows[~localizer], positions[~localizer], iops[~localizer]
    keys = [orientation_key(_orientation(text)) for text in iops]
    majority = Counter(keys).most_common(1)[0][0]
    same = np.array([key == majority for key in keys], dtype=bool)
    for path in rows["path"].to_numpy()[~same]:
        logger.warning("skipping %s: orientation differs from the rest of series %s", path, uid)
    rows, positions = rows[same], positions[same]
    iop = _orientation(iops[same][0])
    try:
        if not np.isfinite(positions).all():
            raise ValueError("missing ImagePositionPatient")
        order, z = order_along_normal(positions, iop)
    except ValueError as error:
        logger.warning("skipping series %s: %s", uid, str(error).splitlines()[0])
        return None
    rows = rows.iloc[order]
    keep = one_per_position(z, rows["instance_number"].to_numpy(dtype=np.float64))
    if len(keep) < len(rows):
        dropped = np.setdiff1d(np.arange(len(rows)), keep)
        for path in rows["path"].to_numpy()[dropped]:
            logger.warning("skipping %s: duplicate slice at the position of another", path)
        rows, z = rows.iloc[keep], z[keep]
    first = rows.iloc[0]
    thickness = rows["slice_thickness"].to_numpy(dtype=np.float64)
    top = first["path"].split("/")
    return {
        "series_instance_uid": uid,
        "study_instance_uid": first["study_instance_uid"],
        "modality": first["modality"],
        "image_type": first["image_type"],
        "series_description": first["series_description"],
        "convolution_kernel": first["convolution_kernel"],
        "kind": kind,
        "folder": top[0] if len(top) > 1 else "",
        "paths": rows["path"].tolist(),
        "sop_instance_uids": rows["sop_instance_uid"].tolist(),
        "z": z,
        "n_slices": len(rows),
        "spacing": slice_gaps(z)[0],
        "slice_thickness": float(np.nanmedian(thickness)) if np.isfinite(thickness).any() else 0.0,
    }


def item_of(series: Series, root: Path, name: str, keep: np.ndarray | None = None) -> dict:
    """The MONAI item of a series: absolute file paths and UIDs in slice order.

    Args:
        series: from :func:`ordered_series`.
        root: the folder its paths are relative to.
        name: the scan name.
        keep: optional boolean mask of the slices to keep.
    """
    paths, sops = series["paths"], series["sop_instance_uids"]
    if keep is not None:
        paths = [p for p, k in zip(paths, keep, strict=True) if k]
        sops = [s for s, k in zip(sops, keep, strict=True) if k]
    return {
        "image": [str(root / p) for p in paths],
        "sop_instance_uids": sops,
        "series_instance_uid": series["series_instance_uid"],
        "study_instance_uid": series["study_instance_uid"],
        "name": name,
    }


def labels_mismatch(
    labels_csv: str | os.PathLike, count: int, problem: str, example: str, strict: bool
) -> None:
    """Raise (``strict``) or warn about ``count`` labels or images that have no partner."""
    if count:
        message = f"{count} {problem} (e.g. {example})"
        if strict:
            raise LabelError(labels_csv, message)
        logger.warning("%s: dropping %s", labels_csv, message)


def slice_labelled_items(
    index: pd.DataFrame,
    series: list[Series],
    names: list[str],
    root: Path,
    labels: pd.DataFrame,
    labels_csv: str | os.PathLike,
    strict: bool,
) -> list[dict]:
    """Items with per-slice labels (RSNA format) and their max as scan labels.

    Labels of images that are in ``index`` but not in ``series`` (dropped earlier, with a
    warning) go with their files; other labels without an image, and images without labels,
    raise with ``strict`` or are dropped with a warning.
    """
    present = set(index["sop_instance_uid"].astype(str).str.removeprefix("ID_"))
    orphans = labels.index[~labels.index.isin(present)]
    example = f"ID_{orphans[0]}" if len(orphans) else ""
    labels_mismatch(labels_csv, len(orphans), f"labelled images are not in {root}", example, strict)

    keys = pd.Series([u for s in series for u in s["sop_instance_uids"]], dtype=str)
    keys = keys.str.removeprefix("ID_")  # vectorised sop_key
    unlabelled = ~keys.isin(labels.index).to_numpy()
    example = f"ID_{keys[int(np.argmax(unlabelled))]}" if unlabelled.any() else ""
    if strict:
        problem = f"images in {root} have no labels"
        labels_mismatch(labels_csv, int(unlabelled.sum()), problem, example, strict)
    values = labels.reindex(keys).to_numpy(dtype=np.float32)

    items, start = [], 0
    for s, name in zip(series, names, strict=True):
        stop = start + s["n_slices"]
        keep = ~unlabelled[start:stop]
        for path in np.asarray(s["paths"])[~keep]:
            logger.warning("skipping %s: no labels in %s", path, labels_csv)
        if keep.any():
            item = item_of(s, root, name, keep)
            item["slice_labels"] = values[start:stop][keep]
            item["scan_labels"] = item["slice_labels"].max(axis=0)
            items.append(item)
        start = stop
    return items
