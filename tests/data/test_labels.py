"""Label files: RSNA ID normalisation, parsing, validation errors, CQ500 majority, scan labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ichbundles.constants import ICH_CLASSES
from ichbundles.data.labels import (
    LabelError,
    parse_id_label,
    read_cq500_reads,
    read_rsna_labels,
    read_scan_labels,
    rsna_id,
    sop_key,
)

HEADER = "ID,Label\n"


def _rows(key: str, values: tuple[int, ...] = (0, 1, 0, 0, 0, 1)) -> str:
    return "".join(f"ID_{key}_{c},{v}\n" for c, v in zip(ICH_CLASSES, values, strict=True))


@pytest.mark.parametrize(
    ("uid", "cls", "expected"),
    [
        ("ID_63eb1e259", "epidural", "ID_63eb1e259_epidural"),
        ("1.2.3", "epidural", "ID_1.2.3_epidural"),
        ("1.2.840.10008.5", "any", "ID_1.2.840.10008.5_any"),
    ],
)
def test_rsna_id(uid: str, cls: str, expected: str) -> None:
    assert rsna_id(uid, cls) == expected


@pytest.mark.parametrize(
    ("uid", "key"), [("ID_63eb1e259", "63eb1e259"), ("1.2.3", "1.2.3"), ("ID_ID_x", "ID_x")]
)
def test_sop_key_strips_one_prefix(uid: str, key: str) -> None:
    assert sop_key(uid) == key


def test_read_rsna_labels_drops_exact_duplicates(tmp_path) -> None:
    text = (
        HEADER
        + _rows("aaa", (1, 0, 0, 0, 0, 1))
        + _rows("1.2.3")
        + _rows("aaa", (1,) + (0,) * 4 + (1,))
    )
    path = tmp_path / "train.csv"
    path.write_text(text)
    labels = read_rsna_labels(path)
    assert list(labels.columns) == list(ICH_CLASSES)
    assert list(labels.index) == ["aaa", "1.2.3"]
    assert labels.index.name == "sop_key"
    assert (labels.dtypes == np.uint8).all()
    np.testing.assert_array_equal(labels.loc["aaa"], [1, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(labels.loc["1.2.3"], [0, 1, 0, 0, 0, 1])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty file"),
        (HEADER, "no data rows"),
        ("Id,Label\n" + _rows("a"), "header must be 'ID,Label'"),
        ("ID,Label,Extra\nID_a_any,1,2\n", "header must be 'ID,Label'"),
        (HEADER + _rows("a") + "ID_a_any,0\n", "conflicting duplicate rows for 'ID_a_any'"),
        (HEADER + _rows("a") + "a_epidural,0\n", "malformed ID 'a_epidural' at row 8"),
        (HEADER + "ID_epidural,0\n", "malformed ID 'ID_epidural'"),
        (HEADER + _rows("a") + "ID_a_b_epidural,0\n", "malformed ID"),
        (HEADER + _rows("a") + "ID_b_hematoma,0\n", "unknown subtype in 'ID_b_hematoma'"),
        (HEADER + _rows("a").replace("ID_a_subdural,0\n", ""), "image ID_a lacks classes subdural"),
        (
            HEADER + _rows("a").replace("any,1", "any,2"),
            "value 2.0 is not 0 or 1 in Label at row 7",
        ),
        (HEADER + _rows("a").replace("any,1", "any,0.5"), "is not 0 or 1 in Label"),
        (HEADER + _rows("a").replace("any,1", "any,yes"), "value 'yes' is not 0 or 1"),
        (HEADER + _rows("a").replace("any,1", "any,"), "missing value in Label at row 7"),
        (HEADER + _rows("a").replace("any,1", "any,nan"), "missing value in Label"),
    ],
)
def test_read_rsna_labels_errors(tmp_path, text: str, message: str) -> None:
    path = tmp_path / "bad_labels.csv"
    path.write_text(text)
    with pytest.raises(LabelError, match=r"bad_labels\.csv") as error:
        read_rsna_labels(path)
    assert message in str(error.value)
    assert "\n" not in str(error.value)
    assert isinstance(error.value, ValueError)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    table=st.dictionaries(
        st.from_regex(r"[0-9a-f]{1,9}", fullmatch=True),
        st.tuples(*[st.integers(0, 1)] * 6),
        min_size=1,
        max_size=8,
    ),
    data=st.data(),
)
def test_read_rsna_labels_matches_naive_parse(tmp_path, table, data) -> None:
    rows = [
        f"ID_{k}_{c},{v}" for k, vs in table.items() for c, v in zip(ICH_CLASSES, vs, strict=True)
    ]
    rows += data.draw(st.lists(st.sampled_from(rows), max_size=6))  # exact duplicates
    rows = data.draw(st.permutations(rows))
    path = tmp_path / "prop.csv"
    path.write_text("ID,Label\n" + "\n".join(rows) + "\n")
    labels = read_rsna_labels(path)
    assert set(labels.index) == set(table)
    for key, values in table.items():
        assert tuple(labels.loc[key]) == values


def _reads(rows: list[tuple[str, list[int]]], drop: str | None = None) -> str:
    """A CQ500 reads.csv: ``rows`` of (name, 18 votes in reader-major order R1..R3 x classes)."""
    suffixes = ["ICH", "IPH", "IVH", "SDH", "EDH", "SAH"]
    columns = [f"R{r}:{s}" for r in (1, 2, 3) for s in suffixes]
    frame = pd.DataFrame([[n, "B1", *v] for n, v in rows], columns=["name", "Category", *columns])
    return frame.drop(columns=[drop] if drop else []).to_csv(index=False)


def test_read_cq500_reads_majority(tmp_path) -> None:
    # CQ500-CT-1: ICH by R1 and R3 (2 of 3), SDH only by R2 (1 of 3), IPH by all three.
    r1, r2, r3 = [1, 1, 0, 0, 0, 0], [0, 1, 0, 1, 0, 0], [1, 1, 0, 0, 0, 0]
    votes = [*r1, *r2, *r3]
    path = tmp_path / "reads.csv"
    path.write_text(_reads([("CQ500-CT-1", votes), ("CQ500-CT-2", [0] * 18)]))
    reads = read_cq500_reads(path)
    assert list(reads.columns) == list(ICH_CLASSES)
    assert list(reads.index) == ["CQ500-CT-1", "CQ500-CT-2"]
    expected = dict.fromkeys(ICH_CLASSES, 0) | {"any": 1, "intraparenchymal": 1}
    assert reads.loc["CQ500-CT-1"].to_dict() == expected
    assert reads.loc["CQ500-CT-2"].sum() == 0


@pytest.mark.parametrize(
    ("drop", "change", "message"),
    [
        ("R2:EDH", None, "missing columns R2:EDH"),
        (None, 2, "value '2' is not 0 or 1 in R1:ICH at row 2 (CQ500-CT-1)"),
    ],
)
def test_read_cq500_reads_errors(tmp_path, drop, change, message) -> None:
    votes = [0] * 18
    if change is not None:
        votes[0] = change
    path = tmp_path / "reads.csv"
    path.write_text(_reads([("CQ500-CT-1", votes)], drop=drop))
    with pytest.raises(LabelError, match=r"reads\.csv") as error:
        read_cq500_reads(path)
    assert message in str(error.value)


@pytest.mark.parametrize("key", ["series_instance_uid", "scan_id", "name"])
def test_read_scan_labels_keys(tmp_path, key: str) -> None:
    header = ",".join([key, *reversed(ICH_CLASSES)])  # column order does not matter
    path = tmp_path / "scans.csv"
    path.write_text(f"{header}\nscan1,1,0,0,0,0,1\nscan2,0,0,0,0,0,0\nscan1,1,0,0,0,0,1\n")
    labels = read_scan_labels(path)
    assert labels.index.name == key
    assert list(labels.index) == ["scan1", "scan2"]
    assert list(labels.columns) == list(ICH_CLASSES)
    np.testing.assert_array_equal(labels.loc["scan1"], [1, 0, 0, 0, 0, 1])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id,epidural\n1,0\n", "needs a key column"),
        ("scan_id,epidural,any\n1,0,0\n", "missing columns intraparenchymal"),
        (
            "scan_id," + ",".join(ICH_CLASSES) + "\ns,0,0,0,0,0,3\n",
            "value '3' is not 0 or 1 in any",
        ),
        (
            "scan_id," + ",".join(ICH_CLASSES) + "\ns,0,0,0,0,0,1\ns,0,0,0,0,0,0\n",
            "conflicting rows for 's' at row 3",
        ),
    ],
)
def test_read_scan_labels_errors(tmp_path, text: str, message: str) -> None:
    path = tmp_path / "scans.csv"
    path.write_text(text)
    with pytest.raises(LabelError, match=r"scans\.csv") as error:
        read_scan_labels(path)
    assert message in str(error.value)


def test_wrong_kinds_of_label_file_get_short_messages_with_a_hint(tmp_path) -> None:
    reads = tmp_path / "reads.csv"
    reads.write_text(_reads([("CQ500-CT-1", [0] * 18)]))
    with pytest.raises(LabelError) as error:
        read_rsna_labels(reads)
    message = str(error.value)
    assert "header must be 'ID,Label', got 'name,Category,R1:ICH,... (20 in all)'" in message
    assert message.endswith("; this looks like a CQ500 reads file: use --reads")

    scans = tmp_path / "scans.csv"
    scans.write_text("scan_id," + ",".join(ICH_CLASSES) + "\ns,0,0,0,0,0,1\n")
    with pytest.raises(LabelError, match="this looks like a scan-level labels file: use --scan-"):
        read_rsna_labels(scans)

    rsna = tmp_path / "train.csv"
    rsna.write_text(HEADER + _rows("a"))
    for reader in (read_cq500_reads, read_scan_labels):
        with pytest.raises(LabelError) as error:
            reader(rsna)
        assert str(error.value).endswith(
            "this looks like an RSNA ID,Label labels file: use --labels"
        )
        assert "..." in str(error.value) or "needs a key column" in str(error.value)
    # a CQ500 file given as scan labels has a "name" key but reader columns
    with pytest.raises(LabelError, match=r"missing columns epidural.*use --reads"):
        read_scan_labels(reads)


def test_other_header_problems_have_no_hint(tmp_path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("Id,Label\n" + _rows("a"))
    with pytest.raises(LabelError) as error:
        read_rsna_labels(path)
    assert str(error.value) == f"{path}: header must be 'ID,Label', got 'Id,Label'"


@pytest.mark.parametrize("values", ["binary", "probability"])
def test_parse_id_label_is_the_one_parser(tmp_path, values) -> None:
    class Custom(ValueError):
        def __init__(self, path, problem) -> None:
            super().__init__(f"{path}: {problem}")

    path = tmp_path / "f.csv"
    path.write_text(HEADER + _rows("a") + _rows("b", (0,) * 6) + _rows("a"))
    frame = parse_id_label(path, Custom, values)
    assert list(frame.columns) == list(ICH_CLASSES) and list(frame.index) == ["a", "b"]
    assert frame.index.name == "sop_key"
    assert frame.dtypes.unique().tolist() == [np.uint8 if values == "binary" else np.float64]
    np.testing.assert_array_equal(frame.loc["a"], [0, 1, 0, 0, 0, 1])
    path.write_text(HEADER + _rows("a").replace("any,1", "any,0.5"))
    if values == "binary":
        with pytest.raises(Custom, match=r"value 0\.5 is not 0 or 1 in Label at row 7"):
            parse_id_label(path, Custom, values)
    else:
        assert parse_id_label(path, Custom, values).loc["a", "any"] == 0.5
    with pytest.raises(ValueError, match="values must be"):
        parse_id_label(path, Custom, "logit")  # type: ignore[arg-type]
