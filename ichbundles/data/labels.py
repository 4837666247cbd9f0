"""Label files: RSNA 2019 ``ID,Label`` csv, CQ500 ``reads.csv`` and plain per-scan csv files."""

from __future__ import annotations

import os
import re
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ichbundles.constants import CQ500_READER_COLUMNS, ICH_CLASSES, NUM_CLASSES

__all__ = [
    "SCAN_KEY_COLUMNS",
    "LabelError",
    "check_probabilities",
    "fail_first",
    "parse_id_label",
    "read_cq500_reads",
    "read_csv_header",
    "read_rsna_labels",
    "read_scan_labels",
    "read_small_csv",
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


def read_small_csv(path: str | os.PathLike, error: type[ValueError] = LabelError) -> pd.DataFrame:
    """Read a small csv (scan labels, reads, scan predictions) as strings, blank cells missing.

    Raises:
        error: (one line naming the file) for an empty file, a file that is not csv, or one
            with no data rows.
    """
    if os.path.getsize(path) == 0:
        raise error(path, "empty file")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError:
        raise error(path, "empty file") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise error(path, f"not a csv file ({type(exc).__name__})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.empty:
        raise error(path, "no data rows")
    return frame


def _binary(
    path: str | os.PathLike,
    values: pd.Series,
    ids: pd.Series,
    what: str,
    error: type[ValueError] = LabelError,
) -> np.ndarray:
    """Values as uint8 after checking each is 0 or 1; the error names the first bad row."""
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isin(numbers, (0.0, 1.0))
    if bad.any():
        row = int(np.argmax(bad))
        raw = values.iloc[row]
        problem = "missing value" if pd.isna(raw) else f"value {raw!r} is not 0 or 1"
        raise error(path, f"{problem} in {what} at row {row + 2} ({ids.iloc[row]})")
    return numbers.astype(np.uint8)


def check_probabilities(
    path: str | os.PathLike,
    values: np.ndarray,
    ids: np.ndarray | pa.Array,
    what: str,
    error: type[ValueError] = LabelError,
) -> None:
    """Raise ``error`` for the first value that is NaN or outside [0, 1] (``ids`` name rows)."""
    fail_first(
        path, np.isnan(values), ids, f"missing or NaN {what} for {{id!r}} at row {{row}}", error
    )
    outside = (values < 0.0) | (values > 1.0)
    if outside.any():
        row = int(np.argmax(outside))
        value = ids[row].as_py() if isinstance(ids, pa.Array | pa.ChunkedArray) else ids[row]
        raise error(
            path,
            f"{what} {float(values[row])!r} for {value!r} at row {row + 2} is outside [0, 1] "
            "(probabilities expected, not logits)",
        )


def read_rsna_labels(path: str | os.PathLike) -> pd.DataFrame:
    """Read an RSNA 2019 label csv (``ID,Label`` with ``ID = ID_<SOPInstanceUID>_<class>``).

    Exact duplicate rows are dropped (the real file has them); everything else that could make a
    label ambiguous is an error. Parsing is vectorised in Arrow (:func:`parse_id_label`): the
    real 4.5 M-row file takes seconds.

    Returns:
        Frame indexed by :func:`sop_key` (index name ``sop_key``) with one uint8 column per class
        in ``ICH_CLASSES`` order.

    Raises:
        LabelError: empty file, wrong header, malformed ID, unknown subtype, value not 0/1 or
            missing, conflicting duplicates, or an image lacking some of the six classes.
    """
    return parse_id_label(path, LabelError, "binary")


#: ``ID_<key>_<class>``; UIDs hold no "_", so key and class split unambiguously and fast.
_ID_PATTERN = r"^ID_(?P<key>[^_]+)_(?P<cls>[^_]+)$"
_MALFORMED = "malformed ID {id!r} at row {row} (expected ID_<SOPInstanceUID>_<class>)"
_READER_COLUMN = re.compile(r"R\d+:\w+")
_MAX_NAMES = 5


def parse_id_label(
    path: str | os.PathLike,
    error: type[ValueError] = LabelError,
    values: Literal["binary", "probability"] = "binary",
) -> pd.DataFrame:
    """Parse an RSNA ``ID,Label`` csv (labels or a submission) into one row per image.

    The one parser behind :func:`read_rsna_labels` and
    :func:`~ichbundles.metrics.predictions.read_slice_predictions`. Exact duplicate rows are
    dropped; rows giving one image and class two values, and images lacking a class, are errors.
    Vectorised in Arrow; every check names the first offending row (csv line number).

    Args:
        path: the csv file.
        error: exception raised as ``error(path, problem)`` with a one-line ``problem``.
        values: ``"binary"``: labels that must be 0 or 1, returned as uint8; ``"probability"``:
            float64 probabilities in [0, 1].

    Returns:
        Frame indexed by :func:`sop_key` (index name ``sop_key``) with the ``ICH_CLASSES``
        columns in order.

    Raises:
        error: empty file, wrong header, unreadable csv, missing or malformed ID, unknown class,
            bad value, conflicting duplicates, or an image lacking some of the six classes.
    """
    if values not in ("binary", "probability"):
        raise ValueError(f"values must be 'binary' or 'probability', got {values!r}")
    binary = values == "binary"
    names = read_csv_header(path, error)
    if names != ["ID", "Label"]:
        problem = f"header must be 'ID,Label', got {_shorten(names, ',')!r}"
        raise error(path, problem + (_kind_hint(names, "labels") if binary else ""))
    table = _read_id_label(path, error, string_fallback=binary)
    ids = table["ID"].combine_chunks()
    fail_first(path, _numpy(pc.is_null(ids)), ids, "missing ID at row {row}", error)
    parts = pc.extract_regex(ids, _ID_PATTERN)
    fail_first(path, _numpy(pc.invert(pc.is_valid(parts))), ids, _MALFORMED, error)
    codes = pc.index_in(pc.struct_field(parts, "cls"), value_set=pa.array(ICH_CLASSES))
    noun = "subtype" if binary else "class"
    fail_first(
        path, _numpy(pc.is_null(codes)), ids, f"unknown {noun} in {{id!r}} at row {{row}}", error
    )
    if binary:
        label = _arrow_binary(path, table["Label"], ids, error)
    else:
        label = _numpy(pc.fill_null(table["Label"], np.nan)).astype(np.float64, copy=False)
        check_probabilities(path, label, ids, "probability", error)

    encoded = pc.dictionary_encode(pc.struct_field(parts, "key"))
    keys = encoded.dictionary.to_numpy(zero_copy_only=False)
    cell = encoded.indices.to_numpy().astype(np.int64) * NUM_CLASSES + _numpy(codes)
    size = len(keys) * NUM_CLASSES
    counts = np.bincount(cell, minlength=size)
    grid = np.full(size, np.nan)
    grid[cell] = label  # with duplicates one of them wins; the check below makes that safe
    conflict = grid[cell] != label
    fail_first(path, conflict, ids, "conflicting duplicate rows for {id!r} at row {row}", error)
    missing = (counts == 0).reshape(-1, NUM_CLASSES)
    if missing.any():
        image = int(np.argmax(missing.any(axis=1)))
        absent = ", ".join(c for c, m in zip(ICH_CLASSES, missing[image], strict=True) if m)
        raise error(path, f"image ID_{keys[image]} lacks classes {absent}")
    grid = grid.reshape(-1, NUM_CLASSES)
    return pd.DataFrame(
        grid.astype(np.uint8) if binary else grid,
        # labels keep pandas' default string index, predictions an object one (as before)
        index=pd.Index(
            keys.tolist() if binary else keys, name="sop_key", dtype=None if binary else object
        ),
        columns=list(ICH_CLASSES),
    )


def read_csv_header(path: str | os.PathLike, error: type[ValueError] = LabelError) -> list[str]:
    """Column names of a csv's first line (stripped, unquoted), without reading the rest.

    Raises:
        error: empty or unreadable file, or not UTF-8 text.
    """
    try:
        if os.path.getsize(path) == 0:
            raise error(path, "empty file")
        with open(path, encoding="utf-8-sig") as f:
            line = f.readline()
    except OSError as problem:
        raise error(path, f"cannot read ({problem.strerror})") from None
    except UnicodeDecodeError:
        raise error(path, "not a text csv file") from None
    return [c.strip().strip('"').strip() for c in line.rstrip("\r\n").split(",")]


def _shorten(names: list[str], sep: str = ", ") -> str:
    """``names`` joined, the first few only when there are many (messages stay one short line)."""
    if len(names) <= _MAX_NAMES:
        return sep.join(names)
    return sep.join(names[: _MAX_NAMES - 2]) + f"{sep}... ({len(names)} in all)"


def _kind_hint(names: list[str], expected: str) -> str:
    """``"; this looks like ...: use --X"`` when the header is that of another label file kind."""
    if names == ["ID", "Label"]:
        kind, option = "an RSNA ID,Label labels file", "labels"
    elif any(_READER_COLUMN.fullmatch(n) for n in names):
        kind, option = "a CQ500 reads file", "reads"
    elif any(n in SCAN_KEY_COLUMNS for n in names) or set(ICH_CLASSES) <= set(names):
        kind, option = "a scan-level labels file", "scan-labels"
    else:
        return ""
    return "" if option == expected else f"; this looks like {kind}: use --{option}"


def _numpy(array: pa.ChunkedArray | pa.Array) -> np.ndarray:
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return array.to_numpy(zero_copy_only=False)


def _read_id_label(
    path: str | os.PathLike, error: type[ValueError], string_fallback: bool
) -> pa.Table:
    """Read the rows of an ``ID,Label`` csv (header already checked) with Arrow.

    ``Label`` is float64; with ``string_fallback`` a column that does not parse as numbers is
    read as text so that the value check can name the offending row.
    """
    read = pacsv.ReadOptions(column_names=["ID", "Label"], skip_rows=1)
    types = (pa.float64(), pa.string()) if string_fallback else (pa.float64(),)
    for label_type in types:
        options = pacsv.ConvertOptions(column_types={"ID": pa.string(), "Label": label_type})
        try:
            table = pacsv.read_csv(path, read_options=read, convert_options=options)
            break
        except pa.ArrowInvalid as problem:
            reason = str(problem).splitlines()[0]
    else:
        raise error(path, f"unreadable csv ({reason})")
    if table.num_rows == 0:
        raise error(path, "no data rows")
    return table


def _arrow_binary(
    path: str | os.PathLike, label: pa.ChunkedArray, ids: pa.Array, error: type[ValueError]
) -> np.ndarray:
    """Labels as float64 0.0/1.0 after checking each is 0 or 1."""
    if not pa.types.is_floating(label.type):
        raw = pd.Series(_numpy(label))
        return _binary(path, raw, pd.Series(_numpy(ids)), "Label", error).astype(np.float64)
    values = _numpy(pc.fill_null(label, np.nan))
    if not np.isin(values, (0.0, 1.0)).all():
        raw = pd.Series(values, dtype=object).where(~np.isnan(values), None)
        _binary(path, raw, pd.Series(_numpy(ids)), "Label", error)
    return values


def fail_first(
    path: str | os.PathLike,
    bad: pd.Series | pa.Array | pa.ChunkedArray | np.ndarray,
    ids: pd.Series | pa.Array | pa.ChunkedArray | np.ndarray,
    message: str,
    error: type[ValueError] = LabelError,
) -> None:
    """Raise ``error(path, ...)`` for the first True in ``bad`` (aligned with ``ids``).

    ``message`` may use ``{id}`` (the offending key) and ``{row}`` (its csv line number: from
    the index of a pandas ``ids``, which survives filtering, else the position).
    """
    if isinstance(bad, pd.Series):
        flags = bad.to_numpy(dtype=bool)
    else:
        flags = np.asarray(bad if isinstance(bad, np.ndarray) else _numpy(bad), dtype=bool)
    if flags.any():
        row = int(np.argmax(flags))
        if isinstance(ids, pd.Series):
            line, value = int(ids.index[row]) + 2, ids.iloc[row]
        elif isinstance(ids, pa.Array | pa.ChunkedArray):
            line, value = row + 2, ids[row].as_py()
        else:
            line, value = row + 2, ids[row]
        raise error(path, message.format(id=value, row=line))


def _unique_index(path: str | os.PathLike, frame: pd.DataFrame, key: str) -> pd.DataFrame:
    """Drop exact duplicate rows, reject conflicting ones and index the frame by ``key``."""
    frame = frame[~frame.duplicated()]
    names = frame[key].astype(str)
    fail_first(path, names.duplicated(), names, "conflicting rows for {id!r} at row {row}")
    return frame.set_index(key)


def read_cq500_reads(path: str | os.PathLike) -> pd.DataFrame:
    """Read CQ500 ``reads.csv``: the majority of readers R1, R2 and R3 for each class.

    Returns:
        Frame indexed by ``name`` (``CQ500-CT-<n>``) with one uint8 column per class.

    Raises:
        LabelError: missing ``name`` or reader columns, values not 0/1, conflicting rows.
    """
    frame = read_small_csv(path)
    needed = ["name"] + [f"{r}:{c}" for c in CQ500_READER_COLUMNS.values() for r in _READERS]
    absent = [c for c in needed if c not in frame.columns]
    if absent:
        hint = _kind_hint(list(frame.columns), "reads")
        raise LabelError(path, f"missing columns {_shorten(absent)}{hint}")
    fail_first(path, frame["name"].isna(), frame["name"].astype(str), "missing name at row {row}")
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
    frame = read_small_csv(path)
    key = next((c for c in SCAN_KEY_COLUMNS if c in frame.columns), None)
    if key is None:
        hint = _kind_hint(list(frame.columns), "scan-labels")
        raise LabelError(path, f"needs a key column, one of {', '.join(SCAN_KEY_COLUMNS)}{hint}")
    absent = [c for c in ICH_CLASSES if c not in frame.columns]
    if absent:
        hint = _kind_hint(list(frame.columns), "scan-labels")
        raise LabelError(path, f"missing columns {', '.join(absent)}{hint}")
    keys = frame[key].astype(str).str.strip()
    fail_first(path, frame[key].isna(), keys, f"missing {key} at row {{row}}")
    result = pd.DataFrame({key: keys.str.rstrip("/")})
    for cls in ICH_CLASSES:
        result[cls] = _binary(path, frame[cls], keys, cls)
    return _unique_index(path, result, key)
