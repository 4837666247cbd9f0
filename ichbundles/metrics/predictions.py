"""Prediction files: RSNA ``ID,Label`` slice csv, per-scan csv, slice-to-scan maps, aggregation.

The slice reader is the label files' Arrow parser (an RSNA-sized file has 4.5 M rows); every
check names the first offending row so a bad file is fixed in one go.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from ichbundles.constants import ICH_CLASSES
from ichbundles.data.labels import (
    SCAN_KEY_COLUMNS,
    check_probabilities,
    fail_first,
    parse_id_label,
    read_csv_header,
    read_small_csv,
)

__all__ = [
    "PredictionError",
    "aggregate_to_scans",
    "read_predictions",
    "read_scan_predictions",
    "read_slice_map",
    "read_slice_predictions",
]


class PredictionError(ValueError):
    """A prediction file is malformed or does not match the labels; the message is one line."""

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        super().__init__(f"{path}: {problem}")


def _header(path: str | os.PathLike) -> list[str]:
    return read_csv_header(path, PredictionError)


def _first(path: str | os.PathLike, bad: np.ndarray, ids: np.ndarray | pa.Array, message: str):
    """Raise for the first True of ``bad``; ``message`` may use ``{id}`` and ``{row}``."""
    fail_first(path, bad, ids, message, PredictionError)


def read_slice_predictions(path: str | os.PathLike) -> pd.DataFrame:
    """Read slice predictions in the RSNA submission format ``ID,Label``.

    ``ID`` is ``ID_<SOPInstanceUID>_<class>``. Exact duplicate rows are dropped; rows that give
    one image and class two different probabilities are an error. The parser is the one of the
    label files, :func:`~ichbundles.data.labels.parse_id_label`.

    Returns:
        Frame indexed by :func:`~ichbundles.data.labels.sop_key` (index name ``sop_key``) with one
        float64 column per class in ``ICH_CLASSES`` order.

    Raises:
        PredictionError: empty file, wrong header, malformed ID, unknown class, a probability
            that is missing, NaN, not a number or outside [0, 1], conflicting duplicates, or an
            image lacking some of the six classes.
    """
    return parse_id_label(path, PredictionError, "probability")


def read_scan_predictions(path: str | os.PathLike) -> pd.DataFrame:
    """Read per-scan predictions: a key column and one probability column per class.

    The key is the first of ``series_instance_uid``, ``scan_id`` or ``name`` present, as in
    :func:`~ichbundles.data.labels.read_scan_labels`; other columns are ignored.

    Returns:
        Frame indexed by the key column (its name kept) with float64 columns in class order.

    Raises:
        PredictionError: no key column, a missing class column, a probability that is missing,
            NaN, not a number or outside [0, 1], or conflicting rows for one scan.
    """
    _header(path)
    frame = read_small_csv(path, PredictionError)
    key = next((c for c in SCAN_KEY_COLUMNS if c in frame.columns), None)
    if key is None:
        raise PredictionError(path, f"needs a key column, one of {', '.join(SCAN_KEY_COLUMNS)}")
    absent = [c for c in ICH_CLASSES if c not in frame.columns]
    if absent:
        raise PredictionError(path, f"missing class columns {', '.join(absent)}")
    keys = frame[key].fillna("").astype(str).str.strip().str.rstrip("/").to_numpy(dtype=object)
    _first(path, keys == "", keys, f"missing {key} at row {{row}}")
    result = pd.DataFrame(index=pd.Index(keys, name=key, dtype=object))
    for cls in ICH_CLASSES:
        raw = frame[cls]
        values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.isnan(values) & raw.notna().to_numpy()
        _first(path, bad, keys, f"{cls} value for {{id!r}} at row {{row}} is not a number")
        check_probabilities(path, values, keys, cls, PredictionError)
        result[cls] = values
    duplicated = result.index.duplicated(keep=False)
    if duplicated.any():
        exact = result.reset_index().duplicated().to_numpy()
        result = result[~exact]
        _first(
            path,
            result.index.duplicated(),
            result.index.to_numpy(),
            "conflicting rows for {id!r}",
        )
    return result


def read_predictions(path: str | os.PathLike) -> tuple[str, pd.DataFrame]:
    """Read a prediction file of either layout, told apart by its header.

    Returns:
        ``("slice", frame)`` for an ``ID,Label`` file, ``("scan", frame)`` for a per-scan file.
    """
    if _header(path) == ["ID", "Label"]:
        return "slice", read_slice_predictions(path)
    return "scan", read_scan_predictions(path)


def read_slice_map(path: str | os.PathLike, key: str) -> pd.Series:
    """Read which scan each slice belongs to.

    Accepts a csv or parquet (such as the ``ichbundles index`` table) with a
    ``sop_instance_uid`` column and either the scan key column ``key`` or a ``path`` column
    whose first component names the scan (the CQ500 and synthetic folder layouts).

    Returns:
        Series from slice :func:`~ichbundles.data.labels.sop_key` to scan key.

    Raises:
        PredictionError: unreadable file, missing columns, or a slice in two scans.
    """
    path = Path(path)
    try:
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path).astype(str)
        else:
            # Arrow parses a 750 k-row map several times faster than pandas with dtype=str;
            # every column stays text so UIDs keep leading zeros.
            types = {name: pa.string() for name in _header(path)}
            options = pacsv.ConvertOptions(column_types=types, strings_can_be_null=False)
            frame = pacsv.read_csv(path, convert_options=options).to_pandas()
            frame.columns = [str(c).strip() for c in frame.columns]
    except (OSError, ValueError, pa.ArrowInvalid) as error:
        if isinstance(error, PredictionError):
            raise
        raise PredictionError(path, f"unreadable slice map ({type(error).__name__})") from None
    if "sop_instance_uid" not in frame.columns:
        raise PredictionError(path, "slice map needs a sop_instance_uid column")
    if key in frame.columns:
        scans = frame[key].astype(str).str.strip().str.rstrip("/")
    elif "path" in frame.columns:
        scans = frame["path"].astype(str).str.replace("\\", "/").str.split("/").str[0]
    else:
        raise PredictionError(path, f"slice map needs a {key} or path column")
    keys = frame["sop_instance_uid"].astype(str).str.strip().str.replace(r"^ID_", "", regex=True)
    # An index lists a slice once per file; the same pair twice is harmless.
    pairs = pd.DataFrame({"k": keys.to_numpy(), "s": scans.to_numpy()}).drop_duplicates()
    _first(
        path,
        pairs["k"].duplicated().to_numpy(),
        pairs["k"].to_numpy(),
        "slice {id!r} belongs to two scans",
    )
    index = pd.Index(pairs["k"].to_numpy(), name="sop_key")
    return pd.Series(pairs["s"].to_numpy(), index=index, name=key)


def aggregate_to_scans(
    slices: pd.DataFrame, slice_map: pd.Series, source: str | os.PathLike = "predictions"
) -> pd.DataFrame:
    """Scan probabilities as the maximum over each scan's slices (papers 001, 002 and 004).

    Works for labels too (a scan is positive when any slice is).

    Raises:
        PredictionError: a slice that the map does not place in a scan.
    """
    scans = slice_map.reindex(slices.index)
    unknown = scans.isna().to_numpy()
    _first(
        source,
        unknown,
        slices.index.to_numpy(),
        "slice {id!r} is not in the slice map (no scan to aggregate it to)",
    )
    result = slices.groupby(scans.to_numpy(), sort=True).max()
    result.index.name = slice_map.name or "scan"
    return result
