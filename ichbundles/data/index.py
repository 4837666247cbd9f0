"""Resumable, parallel header index of a DICOM tree, saved as parquet.

Scanning the 750k RSNA headers takes a long while, so each finished chunk of files is saved as a
part file in ``<out>.parts/``; an interrupted run resumes with the files not yet indexed, and a
rerun on a finished index reads only new or changed files.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import pandas as pd
import pydicom
from tqdm.auto import tqdm

from ichbundles.io.headers import HEADER_FIELDS, header_record, quiet_pydicom, read_header

__all__ = ["INDEX_COLUMNS", "INDEX_NAME", "build_index", "get_index", "load_index"]

logger = logging.getLogger(__name__)

#: Default file name of the index, written at the root of the indexed tree.
INDEX_NAME = "ichbundles_index.parquet"
#: Columns of the index: the PHI-free header record (path relative to the root) + ``truncated``.
INDEX_COLUMNS: tuple[str, ...] = (*HEADER_FIELDS, "truncated")

_INTEGER = ("file_size", "rows", "columns", "number_of_frames")
_FLOAT = (
    "instance_number",
    "ipp_x",
    "ipp_y",
    "ipp_z",
    "pixel_spacing_row",
    "pixel_spacing_col",
    "slice_thickness",
)
_BOOL = ("has_pixels", "truncated")
# (FFFE,E0DD) with length 0, little endian: closes encapsulated pixel data.
_SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


def _index_file(root: str, relpath: str) -> dict:
    """Header record of one file plus whether its pixel data is cut short."""
    path = os.path.join(root, relpath)
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f, quiet_pydicom():
            ds = pydicom.dcmread(f, stop_before_pixels=True)
            # pydicom rewinds to the start of the PixelData element (or stops at the end).
            truncated = _is_truncated(ds, size, f.tell(), f)
            record = header_record(ds, path, size)  # values are converted (and checked) here
    except Exception:  # read_header turns every failure into its problem text
        record = read_header(path)
        truncated = False
    record["truncated"] = truncated
    record["path"] = relpath
    return record


def _is_truncated(ds: pydicom.Dataset, size: int, pixel_offset: int, f: BinaryIO) -> bool:
    """Whether the file ends before the end of its pixel data.

    Uncompressed pixel data has a known length; encapsulated (compressed) pixel data must end
    with a Sequence Delimitation Item, the last 8 bytes of a complete file.
    """
    syntax = getattr(ds, "file_meta", pydicom.Dataset()).get("TransferSyntaxUID")
    rows, columns = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if syntax is None or syntax.is_deflated or not rows * columns or size <= pixel_offset:
        return False  # deflated data has no fixed length; no pixel data, nothing to cut
    if syntax.is_encapsulated:
        f.seek(size - len(_SEQUENCE_DELIMITER))
        return f.read(len(_SEQUENCE_DELIMITER)) != _SEQUENCE_DELIMITER
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    bits = int(ds.get("BitsAllocated", 16) or 16) * int(ds.get("SamplesPerPixel", 1) or 1)
    expected = (rows * columns * frames * bits + 7) // 8
    header = 8 if syntax.is_implicit_VR else 12  # tag + length (+ VR and reserved bytes)
    return size < pixel_offset + header + expected


def _index_chunk(task: tuple[str, Sequence[str]]) -> list[dict]:
    root, relpaths = task
    return [_index_file(root, relpath) for relpath in relpaths]


def _frame(records: list[dict] | pd.DataFrame) -> pd.DataFrame:
    """Records as a frame with the index columns and stable dtypes (problem rows hold blanks)."""
    frame = pd.DataFrame(records, columns=list(INDEX_COLUMNS))
    for column in _INTEGER:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").fillna(0).astype("int64")
    for column in _FLOAT:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    for column in _BOOL:
        frame[column] = frame[column].map(lambda v: v is True or v == 1).astype(bool)
    for column in set(INDEX_COLUMNS) - set(_INTEGER + _FLOAT + _BOOL):
        frame[column] = frame[column].fillna("").astype(str)
    return frame


def _list_files(root: Path, out: Path) -> dict[str, int]:
    """Every regular file under ``root`` (relative posix path -> size), except the index's own."""
    parts_dir = os.path.abspath(_parts_dir(out))
    own = os.path.abspath(out)
    files: dict[str, int] = {}
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if os.path.abspath(os.path.join(folder, d)) != parts_dir)
        for name in names:
            path = os.path.join(folder, name)
            # the index, and temp files of an interrupted write of it
            if os.path.abspath(path) == own or name.startswith(f".{out.name}."):
                continue
            if os.path.isfile(path):
                files[Path(os.path.relpath(path, root)).as_posix()] = os.path.getsize(path)
    return files


def _parts_dir(out: Path) -> Path:
    return out.with_name(out.name + ".parts")


def _scan(
    root: Path, relpaths: list[str], workers: int, chunk_size: int, progress: bool
) -> Iterator[list[dict]]:
    """Yield the records of each chunk of files as it finishes, in a pool when ``workers > 1``."""
    # Small jobs get smaller chunks so that every worker has some (4 chunks each at least).
    chunk_size = max(1, min(chunk_size, math.ceil(len(relpaths) / (4 * workers))))
    tasks = [(str(root), relpaths[i : i + chunk_size]) for i in range(0, len(relpaths), chunk_size)]
    with tqdm(total=len(relpaths), unit="file", desc="index", disable=not progress) as bar:
        if workers <= 1 or len(tasks) <= 1:
            for task in tasks:
                records = _index_chunk(task)
                bar.update(len(records))
                yield records
            return
        # The platform's start method: with spawn/forkserver, callers need the __main__ guard.
        with multiprocessing.Pool(min(workers, len(tasks))) as pool:
            for records in pool.imap_unordered(_index_chunk, tasks):
                bar.update(len(records))
                yield records


def _atomic_parquet(frame: pd.DataFrame, path: Path) -> None:
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    frame.to_parquet(temp, index=False)
    os.replace(temp, path)


def build_index(
    root: str | os.PathLike,
    out: str | os.PathLike | None = None,
    workers: int = 2,
    chunk_size: int = 2000,
    progress: bool = True,
) -> pd.DataFrame:
    """Index the DICOM headers of every file under ``root`` (resumable).

    Each finished chunk is saved atomically as ``<out>.parts/part-*.parquet``; at the end the
    parts and any previous index are combined into ``out`` (atomic rename) and the parts removed.
    Rerunning reads only files that are new or whose size changed, and drops rows of files that
    vanished. Files that are not images stay in the index with their ``problem`` text.

    Args:
        root: the folder to index.
        out: the parquet file to write; ``<root>/ichbundles_index.parquet`` when None.
        workers: processes reading headers (1 reads in this process). Where the start method
            is spawn or forkserver, call from under ``if __name__ == "__main__":``.
        chunk_size: files per task and per part file at most (smaller when there are few
            files, so that every worker gets some).
        progress: show a tqdm progress bar.

    Returns:
        The index: one row per file, columns ``INDEX_COLUMNS``, paths relative to ``root``.
    """
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"not a folder: {root}")
    out = root / INDEX_NAME if out is None else Path(out)
    parts_dir = _parts_dir(out)
    files = _list_files(root, out)

    known = [load_index(out)] if out.is_file() else []
    had_parts = parts_dir.is_dir()
    if had_parts:
        known += [pd.read_parquet(p) for p in sorted(parts_dir.glob("part-*.parquet"))]
    done = _frame(pd.concat(known, ignore_index=True)) if known else _frame([])
    done = done.drop_duplicates("path", keep="last")  # parts are newer than the old index
    current = done["path"].map(files).eq(done["file_size"])
    stale = len(done) - int(current.sum())
    done = done[current]
    todo = sorted(set(files) - set(done["path"]))
    if known and (todo or stale):
        logger.info("index %s: %d files to read, %d rows dropped", out, len(todo), stale)

    parts_dir.mkdir(parents=True, exist_ok=True)
    for records in _scan(root, todo, max(1, workers), max(1, chunk_size), progress):
        _atomic_parquet(_frame(records), parts_dir / f"part-{uuid.uuid4().hex}.parquet")

    new_parts = [pd.read_parquet(p) for p in sorted(parts_dir.glob("part-*.parquet"))]
    index = _frame(pd.concat([done, *new_parts], ignore_index=True))
    index = index.drop_duplicates("path", keep="last").sort_values("path", ignore_index=True)
    if todo or stale or had_parts or not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        _atomic_parquet(index, out)
    shutil.rmtree(parts_dir, ignore_errors=True)
    return index


def load_index(path: str | os.PathLike) -> pd.DataFrame:
    """Read an index written by :func:`build_index`.

    Raises:
        ValueError: the file lacks index columns.
    """
    frame = pd.read_parquet(path)
    absent = [c for c in INDEX_COLUMNS if c not in frame.columns]
    if absent:
        raise ValueError(f"{path}: not an ichbundles index (missing {', '.join(absent)})")
    return frame


def get_index(
    root: str | os.PathLike,
    index: str | os.PathLike | pd.DataFrame | None = None,
    workers: int = 2,
) -> pd.DataFrame:
    """The index of ``root``: ``index`` itself, the file it names, or a fresh in-memory scan."""
    if isinstance(index, pd.DataFrame):
        return index
    if index is not None:
        return load_index(index)
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"not a folder: {root}")
    todo = sorted(_list_files(root, root / INDEX_NAME))
    records = [r for chunk in _scan(root, todo, workers, 2000, progress=False) for r in chunk]
    return _frame(records).sort_values("path", ignore_index=True)
