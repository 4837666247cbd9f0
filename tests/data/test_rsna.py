"""RSNA items: ordering along the normal, label join by SOP key, strictness, truncated files."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ichbundles.constants import ICH_CLASSES
from ichbundles.data import LabelError, build_index, rsna_id, rsna_items


def _onehot(i: int) -> tuple[int, ...]:
    """Distinct labels per slice: subtype ``i % 5`` and "any"."""
    values = [0] * 6
    values[i % 5] = values[5] = 1
    return tuple(values)


@pytest.fixture(scope="module")
def rsna(tmp_path_factory, dicom) -> dict:
    """A flat RSNA-like folder: ``ID_<hex>.dcm`` files of two series plus a truncated image."""
    new_uid, write_ct = dicom.new_uid, dicom.write_ct
    root = tmp_path_factory.mktemp("rsna") / "stage_2_train"
    rng = np.random.default_rng(7)
    series = {}
    for iop, n in ((dicom.AXIAL, 4), (dicom.AXIAL_FLIPPED, 3)):
        uid, study = new_uid(), new_uid()
        sops = [f"ID_{v:09x}" for v in rng.integers(0, 16**8, n)]
        normal = np.cross(iop[:3], iop[3:])
        for i, sop in enumerate(sops):  # instance numbers reversed against position
            write_ct(root / f"{sop}.dcm", sop, uid, study, i * 5.0 * normal, n - i, iop)
        series[uid] = sops
    first = next(iter(series))
    bad = "ID_6431af929"
    dicom.truncate(write_ct(root / f"{bad}.dcm", bad, first, "1.9", (0, 0, 99.0), 99))
    labels = {sop: _onehot(i) for sops in series.values() for i, sop in enumerate(sops)}
    labels[bad] = (1,) * 6
    return {
        "root": root,
        "series": series,
        "labels": labels,
        "index": build_index(root, out=root.parent / "i.parquet", workers=1, progress=False),
    }


def _csv(path, labels: dict, duplicate: int = 0, order: list[int] | None = None):
    rows = [
        rsna_id(sop, c) + f",{v}"
        for sop, vs in labels.items()
        for c, v in zip(ICH_CLASSES, vs, strict=True)
    ]
    rows += rows[:duplicate]
    if order is not None:
        rows = [rows[i] for i in order]
    path.write_text("ID,Label\n" + "\n".join(rows) + "\n")
    return path


def test_items_ordered_along_normal_with_labels(rsna, tmp_path, caplog) -> None:
    csv = _csv(tmp_path / "train.csv", rsna["labels"], duplicate=9)
    with caplog.at_level(logging.WARNING):
        items = rsna_items(rsna["root"], csv, index=rsna["index"])
    assert "ID_6431af929.dcm: truncated pixel data" in caplog.text
    assert [i["series_instance_uid"] for i in items] == sorted(rsna["series"])
    for item in items:
        sops = rsna["series"][item["series_instance_uid"]]
        assert item["sop_instance_uids"] == sops  # by position, not InstanceNumber or file name
        assert item["image"] == [str(rsna["root"] / f"{s}.dcm") for s in sops]
        assert item["name"] == item["series_instance_uid"]
        assert item["slice_labels"].dtype == np.float32
        np.testing.assert_array_equal(item["slice_labels"], [_onehot(i) for i in range(len(sops))])
        np.testing.assert_array_equal(item["scan_labels"], item["slice_labels"].max(axis=0))
        assert item["scan_labels"].shape == (6,)


@pytest.mark.parametrize("source", ["none", "path", "frame"])
def test_index_sources_agree(rsna, tmp_path, source) -> None:
    csv = _csv(tmp_path / "train.csv", rsna["labels"])
    index = {"none": None, "path": rsna["root"].parent / "i.parquet", "frame": rsna["index"]}
    items = rsna_items(rsna["root"], csv, index=index[source])
    assert [i["sop_instance_uids"] for i in items] == [
        rsna["series"][u] for u in sorted(rsna["series"])
    ]


@pytest.mark.parametrize("case", ["extra_label", "missing_label"])
def test_strict_and_lenient_mismatch(rsna, tmp_path, caplog, case) -> None:
    labels = dict(rsna["labels"])
    if case == "extra_label":
        labels["ID_deadbeef0"] = (0,) * 6
        message = "1 labelled images are not in"
        example = "ID_deadbeef0"
    else:
        example = next(iter(labels))
        del labels[example]
        message = "1 images in"
    csv = _csv(tmp_path / "labels_x.csv", labels)
    with pytest.raises(LabelError, match=r"labels_x\.csv") as error:
        rsna_items(rsna["root"], csv, index=rsna["index"])
    assert message in str(error.value) and example in str(error.value)

    with caplog.at_level(logging.WARNING):
        items = rsna_items(rsna["root"], csv, index=rsna["index"], strict=False)
    n_slices = sum(len(i["image"]) for i in items)
    assert n_slices == 7 - (case == "missing_label")
    assert example.removeprefix("ID_") in caplog.text
    assert all(len(i["image"]) == len(i["slice_labels"]) for i in items)


@pytest.fixture(scope="module")
def shuffled_csv(tmp_path_factory):
    return tmp_path_factory.mktemp("csv") / "shuffled.csv"


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_items_invariant_to_csv_row_order(rsna, shuffled_csv, data) -> None:
    reference = rsna_items(rsna["root"], _csv(shuffled_csv, rsna["labels"]), index=rsna["index"])
    order = data.draw(st.permutations(range(len(rsna["labels"]) * 6)))
    items = rsna_items(
        rsna["root"], _csv(shuffled_csv, rsna["labels"], order=order), index=rsna["index"]
    )
    assert len(items) == len(reference)
    for a, b in zip(items, reference, strict=True):
        assert a["sop_instance_uids"] == b["sop_instance_uids"]
        np.testing.assert_array_equal(a["slice_labels"], b["slice_labels"])


def test_problem_rows_are_kept_in_index(rsna) -> None:
    index: pd.DataFrame = rsna["index"]
    row = index.loc[index["path"] == "ID_6431af929.dcm"].iloc[0]
    assert bool(row["truncated"]) and row["sop_instance_uid"] == "ID_6431af929"
