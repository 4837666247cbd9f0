"""Label files: RSNA 2019 ``ID,Label`` csv, CQ500 ``reads.csv`` and plain per-scan csv files."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ichbundles.constants import CQ500_READER_COLUMNS, ICH_CLASSES, NUM_CLASSES

__all__ = [
    "SCAN_KEY_COLUMNS",
    "LabelError",
    "read_cq500_reads",
    "read_rsna_labels",
    "read_scan_labels",
    "rsna_id",
    "sop_key",
]

#: Key columns a plain scan-label csv may use, in order of preference.
SCAN_KEY_COLUMNS: tuple[str, ...] = ("series_instance_uid", "scan_id", "name")
_READERS = ("R1", "R2", "R3")


class LabelError(ValueError):
    """A label file is malformed or does not match the images; the message is one line."""

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        super().__init__(f"{path}: {problem}")


def sop_key(uid: str) -> str:
    """Key that matches a SOPInstanceUID to RSNA label IDs.

    The RSNA files' SOPInstanceUID is itself ``ID_63eb1e259`` while real DICOM UIDs are
    ``1.2.3``; stripping one leading ``ID_`` lets both match ``ID_<key>_<class>``.
    """
    return uid[3:] if uid.startswith("ID_") else uid


def rsna_id(sop_instance_uid: str, cls: str) -> str:
    """RSNA label ID ``ID_<key>_<cls>`` of one image and class."""
    return f"ID_{sop_key(sop_instance_uid)}_{cls}"


def _read_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Read a small label csv as strings (blank cells missing), with one-line errors."""
    if os.path.getsize(path) == 0:
        raise LabelError(path, "empty file")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError:
        raise LabelError(path, "empty file") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise LabelError(path, f"not a csv file ({type(error).__name__})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.empty:
        raise LabelError(path, "no data rows")
    return frame


def _binary(path: str | os.PathLike, values: pd.Series, ids: pd.Series, what: str) -> np.ndarray:
    """Values as uint8 after checking each is 0 or 1; the error names the first bad row."""
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isin(numbers, (0.0, 1.0))
    if bad.any():
        row = int(np.argmax(bad))
        raw = values.iloc[row]
        problem = "missing value" if pd.isna(raw) else f"value {raw!r} is not 0 or 1"
        raise LabelError(path, f"{problem} in {what} at row {row + 2} ({ids.iloc[row]})")
    return numbers.astype(np.uint8)


def read_rsna_labels(path: str | os.PathLike) -> pd.DataFrame:
    """Read an RSNA 2019 label csv (``ID,Label`` with ``ID = ID_<SOPInstanceUID>_<class>``).

    Exact duplicate rows are dropped (the real file has them); everything else that could make a
    label ambiguous is an error. Parsing is vectorised in Arrow: the real 4.5 M-row file takes
    seconds.

    Returns:
        Frame indexed by :func:`sop_key` (index name ``sop_key``) with one uint8 column per class
        in ``ICH_CLASSES`` order.

    Raises:
        LabelError: empty file, wrong header, malformed ID, unknown subtype, value not 0/1 or
            missing, conflicting duplicates, or an image lacking some of the six classes.
    """
    table = _read_arrow(path)
    ids = table["ID"]
    if ids.null_count:
        _fail_first(path, pc.is_null(ids), ids, "missing ID at row {row}")
    # UIDs hold no "_", so a greedy-free pattern splits key and class unambiguously and fast.
    parts = pc.extract_regex(ids, r"^ID_(?P<key>[^_]+)_(?P<cls>[^_]+)$")
    _fail_first(path, pc.invert(pc.is_valid(parts)), ids, _MALFORMED)
    cls_codes = pc.index_in(pc.struct_field(parts, "cls"), value_set=pa.array(ICH_CLASSES))
    _fail_first(path, pc.is_null(cls_codes), ids, "unknown subtype in {id!r} at row {row}")
    values = _arrow_binary(path, table, ids)

    encoded = pc.dictionary_encode(pc.struct_field(parts, "key")).combine_chunks()
    keys = encoded.dictionary.to_pylist()
    cell = encoded.indices.to_numpy() * NUM_CLASSES + _numpy(cls_codes)
    # Per (image, class) cell: how many rows and how many of them say 1; exact duplicates agree.
    counts = np.bincount(cell, minlength=len(keys) * NUM_CLASSES)
    ones = np.bincount(cell, weights=values, minlength=len(keys) * NUM_CLASSES)
    conflict = (ones > 0) & (ones < counts)
    _fail_first(path, conflict[cell], ids, "conflicting duplicate rows for {id!r} at row {row}")
    missing = (counts == 0).reshape(-1, NUM_CLASSES)
    if missing.any():
        image = int(np.argmax(missing.any(axis=1)))
        absent = ", ".join(c for c, m in zip(ICH_CLASSES, missing[image], strict=True) if m)
        raise LabelError(path, f"image ID_{keys[image]} lacks classes {absent}")
    grid = (ones > 0).astype(np.uint8).reshape(-1, NUM_CLASSES)
    return pd.DataFrame(grid, index=pd.Index(keys, name="sop_key"), columns=list(ICH_CLASSES))


_MALFORMED = "malformed ID {id!r} at row {row} (expected ID_<SOPInstanceUID>_<class>)"


def _numpy(array: pa.ChunkedArray | pa.Array) -> np.ndarray:
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return array.to_numpy(zero_copy_only=False)


def _read_arrow(path: str | os.PathLike) -> pa.Table:
    """Read an ``ID,Label`` csv with Arrow, Label as float when every value parses."""
    if os.path.getsize(path) == 0:
        raise LabelError(path, "empty file")
    for label_type in (pa.float64(), pa.string()):
        options = pacsv.ConvertOptions(column_types={"ID": pa.string(), "Label": label_type})
        try:
            table = pacsv.read_csv(path, convert_options=options)
            break
        except pa.ArrowInvalid as error:
            reason = str(error).splitlines()[0]
    else:
        raise LabelError(path, f"unreadable csv ({reason})")
    names = [c.strip() for c in table.column_names]
    if names != ["ID", "Label"]:
        raise LabelError(path, f"header must be 'ID,Label', got {','.join(names)!r}")
    table = table.rename_columns(names)
    if table.num_rows == 0:
        raise LabelError(path, "no data rows")
    return table


def _arrow_binary(path: str | os.PathLike, table: pa.Table, ids: pa.ChunkedArray) -> np.ndarray:
    label = table["Label"]
    if not pa.types.is_floating(label.type):
        return _binary(path, pd.Series(_numpy(label)), pd.Series(_numpy(ids)), "Label")
    values = _numpy(pc.fill_null(label, np.nan))
    if not np.isin(values, (0.0, 1.0)).all():
        raw = pd.Series(values, dtype=object).where(~np.isnan(values), None)
        return _binary(path, raw, pd.Series(_numpy(ids)), "Label")
    return values


def _fail_first(
    path: str | os.PathLike,
    bad: pd.Series | pa.ChunkedArray | np.ndarray,
    ids: pd.Series | pa.ChunkedArray,
    message: str,
) -> None:
    """Raise for the first True in ``bad`` (pandas, Arrow or numpy, aligned with ``ids``).

    ``message`` may use ``{id}`` (the offending key) and ``{row}`` (its csv line number).
    """
    if isinstance(bad, pd.Series):
        flags = bad.to_numpy(dtype=bool)
    else:
        flags = np.asarray(bad if isinstance(bad, np.ndarray) else _numpy(bad), dtype=bool)
    if flags.any():
        row = int(np.argmax(flags))
        line = int(ids.index[row]) + 2 if isinstance(ids, pd.Series) else row + 2
        value = ids.iloc[row] if isinstance(ids, pd.Series) else ids[row].as_py()
        raise LabelError(path, message.format(id=value, row=line))


def _unique_index(path: str | os.PathLike, frame: pd.DataFrame, key: str) -> pd.DataFrame:
    """Drop exact duplicate rows, reject conflicting ones and index the frame by ``key``."""
    frame = frame[~frame.duplicated()]
    names = frame[key].astype(str)
    _fail_first(path, names.duplicated(), names, "conflicting rows for {id!r} at row {row}")
    return frame.set_index(key)


def read_cq500_reads(path: str | os.PathLike) -> pd.DataFrame:
    """Read CQ500 ``reads.csv``: the majority of readers R1, R2 and R3 for each class.

    Returns:
        Frame indexed by ``name`` (``CQ500-CT-<n>``) with one uint8 column per class.

    Raises:
        LabelError: missing ``name`` or reader columns, values not 0/1, conflicting rows.
    """
    frame = _read_csv(path)
    needed = ["name"] + [f"{r}:{c}" for c in CQ500_READER_COLUMNS.values() for r in _READERS]
    absent = [c for c in needed if c not in frame.columns]
    if absent:
        raise LabelError(path, f"missing columns {', '.join(absent)}")
    _fail_first(path, frame["name"].isna(), frame["name"].astype(str), "missing name at row {row}")
    result = pd.DataFrame({"name": frame["name"].str.strip()})
    for cls, column in CQ500_READER_COLUMNS.items():
        votes = sum(
            _binary(path, frame[f"{r}:{column}"], result["name"], f"{r}:{column}").astype(int)
            for r in _READERS
        )
        result[cls] = (votes >= 2).astype(np.uint8)
    return _unique_index(path, result, "name")


def read_scan_labels(path: str | os.PathLike) -> pd.DataFrame:
    """Read a plain per-scan label csv: a key column and the six class columns.

    The key is the first of ``series_instance_uid``, ``scan_id`` or ``name`` present; ``scan_id``
    and ``name`` name a sub-folder or file of the data root.

    Returns:
        Frame indexed by the key column (its name kept) with one uint8 column per class.

    Raises:
        LabelError: no key column, missing class columns, values not 0/1, conflicting rows.
    """
    frame = _read_csv(path)
    key = next((c for c in SCAN_KEY_COLUMNS if c in frame.columns), None)
    if key is None:
        raise LabelError(path, f"needs a key column, one of {', '.join(SCAN_KEY_COLUMNS)}")
    absent = [c for c in ICH_CLASSES if c not in frame.columns]
    if absent:
        raise LabelError(path, f"missing columns {', '.join(absent)}")
    keys = frame[key].astype(str).str.strip()
    _fail_first(path, frame[key].isna(), keys, f"missing {key} at row {{row}}")
    result = pd.DataFrame({key: keys.str.rstrip("/")})
    for cls in ICH_CLASSES:
        result[cls] = _binary(path, frame[cls], keys, cls)
    return _unique_index(path, result, key)
