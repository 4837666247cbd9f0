"""CQ500 items: folder-name number mapping, reader majority, series choice, exclusions."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from ichbundles.data import LabelError, build_index, cq500_items

SUFFIXES = ["ICH", "IPH", "IVH", "SDH", "EDH", "SAH"]


def _reads(path, rows: dict[str, list[list[int]]]):
    """reads.csv from ``{name: [R1 votes, R2 votes, R3 votes]}`` in ``SUFFIXES`` order."""
    columns = [f"R{r}:{s}" for r in (1, 2, 3) for s in SUFFIXES]
    frame = pd.DataFrame(
        [[name, "B1", *(v for reader in votes for v in reader)] for name, votes in rows.items()],
        columns=["name", "Category", *columns],
    )
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def cq500(tmp_path_factory, dicom) -> dict:
    """Study 0 as downloaded (thin, thick, bone thin with more slices, scout); study 1 by name."""
    root = tmp_path_factory.mktemp("cq500") / "qct"
    study0 = root / "CQ500CT0 CQ500CT0" / "Unknown Study"

    def write(folder: str, n: int, **tags):
        return dicom.write_series(study0 / folder, n, SeriesDescription=folder, **tags)

    series = {
        "thin": write("CT PLAIN THIN", 6, spacing=0.625),
        "thick": write("CT 5mm", 3, spacing=5.0),
        "bone": write("CT BONE THIN", 8, spacing=0.625),
        "scout": write("Topogram", 1, iop=dicom.CORONAL),
        "other": dicom.write_series(root / "CQ500-CT-1" / "Unknown Study" / "CT 4cc", 4),
        "unknown": dicom.write_series(root / "CQ500CT7 CQ500CT7" / "Unknown Study" / "CT Plain", 2),
    }
    votes = {
        "CQ500-CT-0": [[1, 0, 0, 1, 0, 0], [1, 0, 0, 0, 0, 1], [0, 0, 0, 1, 0, 0]],
        "CQ500-CT-1": [[0] * 6, [1, 1, 1, 1, 1, 1], [0] * 6],
    }
    reads = _reads(root.parent / "reads.csv", votes)
    index = build_index(root, out=root.parent / "i.parquet", workers=1, progress=False)
    return {"root": root, "series": series, "reads": reads, "index": index}


@pytest.mark.parametrize(
    ("choice", "expected"), [("thin", "thin"), ("thick", "thick"), ("most_slices", "thin")]
)
def test_series_choice(cq500, choice: str, expected: str) -> None:
    items = cq500_items(cq500["root"], cq500["reads"], index=cq500["index"], series_choice=choice)
    assert [i["name"] for i in items] == ["CQ500-CT-0", "CQ500-CT-1"]
    chosen = cq500["series"][expected]
    assert items[0]["series_instance_uid"] == chosen["series"]
    assert items[0]["sop_instance_uids"] == chosen["sops"]
    assert items[0]["image"] == [str(p) for p in chosen["paths"]]
    assert items[1]["series_instance_uid"] == cq500["series"]["other"]["series"]
    assert "slice_labels" not in items[0]


def test_bone_series_chosen_when_not_excluded(cq500) -> None:
    items = cq500_items(
        cq500["root"],
        cq500["reads"],
        index=cq500["index"],
        series_choice="most_slices",
        exclude_description=r"(?i)scout",
    )
    assert items[0]["series_instance_uid"] == cq500["series"]["bone"]["series"]


def test_callable_choice(cq500) -> None:
    def fewest(candidates: list[dict]) -> dict:
        return min(candidates, key=lambda s: s["n_slices"])

    items = cq500_items(cq500["root"], cq500["reads"], index=cq500["index"], series_choice=fewest)
    assert items[0]["series_instance_uid"] == cq500["series"]["thick"]["series"]


def test_majority_labels(cq500) -> None:
    items = cq500_items(cq500["root"], cq500["reads"], index=cq500["index"])
    # study 0: ICH by R1 and R2, SDH by R1 and R3, SAH by R2 only
    np.testing.assert_array_equal(items[0]["scan_labels"], [0, 0, 0, 0, 1, 1])
    assert items[0]["scan_labels"].dtype == np.float32
    np.testing.assert_array_equal(items[1]["scan_labels"], np.zeros(6))


def test_unknown_folder_warns(cq500, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        cq500_items(cq500["root"], cq500["reads"], index=cq500["index"])
    assert "skipping folder CQ500CT7 CQ500CT7: its study is not in" in caplog.text


def test_missing_study_strict_and_lenient(cq500, tmp_path, caplog) -> None:
    votes = [[0] * 6] * 3
    reads = _reads(tmp_path / "reads_more.csv", {"CQ500-CT-0": votes, "CQ500-CT-42": votes})
    with pytest.raises(LabelError, match=r"reads_more\.csv: 1 studies .*CQ500-CT-42"):
        cq500_items(cq500["root"], reads, index=cq500["index"])
    with caplog.at_level(logging.WARNING):
        items = cq500_items(cq500["root"], reads, index=cq500["index"], strict=False)
    assert [i["name"] for i in items] == ["CQ500-CT-0"]
    assert "skipping CQ500-CT-42" in caplog.text


def test_bad_series_choice(cq500) -> None:
    with pytest.raises(ValueError, match="series_choice"):
        cq500_items(cq500["root"], cq500["reads"], index=cq500["index"], series_choice="best")
