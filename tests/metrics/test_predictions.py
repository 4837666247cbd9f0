from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ichbundles.constants import ICH_CLASSES
from ichbundles.metrics.predictions import (
    PredictionError,
    aggregate_to_scans,
    read_predictions,
    read_scan_predictions,
    read_slice_map,
    read_slice_predictions,
)

from .conftest import random_data, write_rsna, write_scans


def test_slice_round_trip_in_any_row_order(tmp_path):
    _, p = random_data(12, 0)
    keys = [f"1.2.{i}".replace(".", "") + "abc" for i in range(12)]
    frame = read_slice_predictions(write_rsna(tmp_path / "p.csv", keys, p, shuffle_seed=3))
    assert list(frame.columns) == list(ICH_CLASSES)
    np.testing.assert_allclose(frame.loc[keys].to_numpy(), p)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.integers(0, 1000), st.integers(1, 5))
def test_row_order_and_exact_duplicates_do_not_matter(tmp_path, seed, copies):
    _, p = random_data(6, seed)
    keys = [f"k{i}" for i in range(6)]
    ids = [f"ID_{k}_{c}" for k in keys for c in ICH_CLASSES]
    rows = pd.DataFrame({"ID": ids * copies, "Label": list(p.ravel()) * copies})
    rows.sample(frac=1.0, random_state=seed).to_csv(tmp_path / "p.csv", index=False)
    frame = read_slice_predictions(tmp_path / "p.csv")
    np.testing.assert_allclose(frame.loc[keys].to_numpy(), p)


BAD_SLICE_FILES = {
    "empty file": "",
    "header must be 'ID,Label'": "Id,Prob\nID_a_any,0.5\n",
    "no data rows": "ID,Label\n",
    "malformed ID 'a_any' at row 2": "ID,Label\na_any,0.5\n",
    "unknown class in 'ID_a_bleed' at row 3": "ID,Label\nID_a_any,0.5\nID_a_bleed,0.5\n",
    "missing or NaN probability for 'ID_a_any' at row 2": "ID,Label\nID_a_any,nan\n",
    "missing or NaN probability for 'ID_a_any' at row 2 ": "ID,Label\nID_a_any,\n",
    "is outside [0, 1]": "ID,Label\nID_a_any,1.5\n",
    "-0.1 for 'ID_a_any' at row 2 is outside": "ID,Label\nID_a_any,-0.1\n",
    "unreadable csv": "ID,Label\nID_a_any,high\n",
    "conflicting duplicate rows for 'ID_a_any'": "ID,Label\nID_a_any,0.5\nID_a_any,0.6\n",
    "image ID_a lacks classes epidural": "ID,Label\nID_a_any,0.5\n",
}


@pytest.mark.parametrize(("problem", "text"), BAD_SLICE_FILES.items())
def test_bad_slice_files_name_file_and_problem(tmp_path, problem, text):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(PredictionError, match=None) as info:
        read_slice_predictions(path)
    message = str(info.value)
    assert message.startswith(str(path)) and problem.strip() in message and "\n" not in message


def test_scan_predictions(tmp_path):
    _, p = random_data(5, 1)
    path = write_scans(tmp_path / "s.csv", [f"s{i}" for i in range(5)], p, key="name")
    kind, frame = read_predictions(path)
    assert kind == "scan" and frame.index.name == "name"
    np.testing.assert_allclose(frame.loc["s3"].to_numpy(), p[3])


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda f: f.drop(columns="subdural"), "missing class columns subdural"),
        (lambda f: f.rename(columns={"series_instance_uid": "uid"}), "needs a key column"),
        (lambda f: f.assign(any=np.nan), "missing or NaN any"),
        (lambda f: f.assign(epidural=2.0), "is outside [0, 1]"),
        (lambda f: f.assign(epidural="x"), "epidural value for 's0' at row 2 is not a number"),
        (lambda f: pd.concat([f, f.assign(any=0.01)]), "conflicting rows for 's0'"),
    ],
)
def test_bad_scan_files(tmp_path, edit, problem):
    _, p = random_data(3, 2)
    path = write_scans(tmp_path / "s.csv", ["s0", "s1", "s2"], p)
    edit(pd.read_csv(path)).to_csv(path, index=False)
    with pytest.raises(PredictionError) as info:
        read_scan_predictions(path)
    assert problem in str(info.value) and str(path) in str(info.value)


def test_aggregation_is_max_over_slices():
    slices = pd.DataFrame(
        [[0.1] * 6, [0.7] * 6, [0.3] * 6], index=["a", "b", "c"], columns=list(ICH_CLASSES)
    )
    mapping = pd.Series(["s1", "s1", "s2"], index=["a", "b", "c"], name="series_instance_uid")
    scans = aggregate_to_scans(slices, mapping)
    assert scans.loc["s1", "any"] == 0.7 and scans.loc["s2", "any"] == 0.3
    with pytest.raises(PredictionError, match="'c' is not in the slice map"):
        aggregate_to_scans(slices, mapping.iloc[:2])


def test_slice_map_from_index_paths(tmp_path):
    frame = pd.DataFrame(
        {
            "sop_instance_uid": ["ID_a", "b", "b"],
            "path": ["CQ500-CT-1/Unknown Study/x.dcm", "CQ500-CT-2/s/y.dcm", "CQ500-CT-2/s/y.dcm"],
        }
    )
    frame.to_parquet(tmp_path / "index.parquet")
    mapping = read_slice_map(tmp_path / "index.parquet", "name")
    assert mapping.to_dict() == {"a": "CQ500-CT-1", "b": "CQ500-CT-2"}


def test_slice_map_rejects_slice_in_two_scans(tmp_path):
    pd.DataFrame({"sop_instance_uid": ["a", "a"], "series_instance_uid": ["s1", "s2"]}).to_csv(
        tmp_path / "m.csv", index=False
    )
    with pytest.raises(PredictionError, match="slice 'a' belongs to two scans"):
        read_slice_map(tmp_path / "m.csv", "series_instance_uid")
