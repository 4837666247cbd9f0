"""Header index: columns, relative paths, truncation, problems, resumability, reruns."""

from __future__ import annotations

import pandas as pd
import pytest

from ichbundles.data import index as index_module
from ichbundles.data.index import INDEX_COLUMNS, INDEX_NAME, build_index, get_index, load_index

_REAL_INDEX_FILE = index_module._index_file


class _Interrupted(Exception):
    """Stands in for Ctrl-C or a killed job in the middle of a build."""


def _counting(monkeypatch, fail_after: int | None = None) -> list[str]:
    """Count (and optionally interrupt) header reads; only valid with workers=1."""
    calls: list[str] = []

    def wrapper(root: str, relpath: str) -> dict:
        if fail_after is not None and len(calls) == fail_after:
            raise _Interrupted
        calls.append(relpath)
        return _REAL_INDEX_FILE(root, relpath)

    monkeypatch.setattr(index_module, "_index_file", wrapper)
    return calls


def test_build_index_columns_paths_and_flags(folder_tree) -> None:
    root = folder_tree["root"]
    index = build_index(root, workers=1, progress=False)
    assert tuple(index.columns) == INDEX_COLUMNS
    assert not any("patient" in c.lower() for c in index.columns)
    assert (root / INDEX_NAME).is_file()
    assert not (root / f"{INDEX_NAME}.parts").exists()
    assert list(index["path"]) == sorted(index["path"])
    assert all(not p.startswith("/") and "\\" not in p for p in index["path"])
    assert INDEX_NAME not in set(index["path"])
    by_path = index.set_index("path")
    truncated = folder_tree["broken"]["paths"][2].relative_to(root).as_posix()
    assert list(index.loc[index["truncated"], "path"]) == [truncated]
    assert by_path.loc[truncated, "problem"] == ""
    assert by_path.loc["scanA/empty.dcm", "problem"] == "empty file (0 bytes)"
    assert by_path.loc["scanA/notes.txt", "problem"] == "not a DICOM file"
    assert by_path.loc["scanA/notes.txt", "rows"] == 0
    assert index["has_pixels"].sum() == 5 + 3 + 1 + 4
    pd.testing.assert_frame_equal(load_index(root / INDEX_NAME), index)


def test_patient_name_not_stored(folder_tree, dicom) -> None:
    root = folder_tree["root"]
    index = build_index(root, workers=1, progress=False)
    cells = [str(v) for v in index.to_numpy().ravel()]
    assert not any(dicom.PATIENT_NAME in c or "PID-1" in c for c in cells)


@pytest.mark.parametrize("chunk_size", [2, 3])
def test_interrupted_build_resumes_with_missing_files(folder_tree, monkeypatch, chunk_size) -> None:
    root, out = folder_tree["root"], folder_tree["root"].parent / "idx.parquet"
    expected = build_index(root, out=root.parent / "full.parquet", workers=1, progress=False)
    total = len(expected)

    _counting(monkeypatch, fail_after=5)
    with pytest.raises(_Interrupted):
        build_index(root, out=out, workers=1, chunk_size=chunk_size, progress=False)
    parts = list(out.with_name("idx.parquet.parts").glob("part-*.parquet"))
    assert not out.exists()
    done = (5 // chunk_size) * chunk_size  # only whole chunks were saved
    saved = set(pd.concat(pd.read_parquet(p) for p in parts)["path"])
    assert len(saved) == done

    calls = _counting(monkeypatch)
    index = build_index(root, out=out, workers=1, chunk_size=chunk_size, progress=False)
    assert len(calls) == total - done
    assert set(calls).isdisjoint(saved)
    pd.testing.assert_frame_equal(index, expected)
    assert not out.with_name("idx.parquet.parts").exists()


def test_rerun_reads_only_new_files_and_drops_vanished(folder_tree, dicom, monkeypatch) -> None:
    root = folder_tree["root"]
    first = build_index(root, workers=1, progress=False)
    calls = _counting(monkeypatch)
    again = build_index(root, workers=1, progress=False)
    assert calls == []
    pd.testing.assert_frame_equal(again, first)

    (root / "scanA" / "notes.txt").unlink()
    new = dicom.write_ct(root / "new" / "x.dcm", dicom.new_uid(), "1.2", "1.3", (0, 0, 0), 1)
    index = build_index(root, workers=1, progress=False)
    assert calls == ["new/x.dcm"]
    assert "scanA/notes.txt" not in set(index["path"])
    assert new.relative_to(root).as_posix() in set(index["path"])
    assert len(index) == len(first)


def test_pool_matches_in_process(folder_tree, tmp_path) -> None:
    root = folder_tree["root"]
    serial = build_index(root, out=tmp_path / "a.parquet", workers=1, chunk_size=4, progress=False)
    pooled = build_index(root, out=tmp_path / "b.parquet", workers=2, chunk_size=4, progress=False)
    pd.testing.assert_frame_equal(serial, pooled)


def test_get_index_variants(folder_tree, tmp_path) -> None:
    root = folder_tree["root"]
    built = build_index(root, out=tmp_path / "i.parquet", workers=1, progress=False)
    pd.testing.assert_frame_equal(get_index(root, workers=1), built)
    pd.testing.assert_frame_equal(get_index(root, tmp_path / "i.parquet"), built)
    assert get_index(root, built) is built


def test_load_index_rejects_other_parquet(tmp_path) -> None:
    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "x.parquet")
    with pytest.raises(ValueError, match="not an ichbundles index"):
        load_index(tmp_path / "x.parquet")


def test_build_index_needs_a_folder(tmp_path) -> None:
    with pytest.raises(NotADirectoryError):
        build_index(tmp_path / "absent", progress=False)
