"""The dataset builders on synthetic data written in the real RSNA 2019 and CQ500 layouts, and in
the plain folder layout with every archive quirk: items, labels and read_series must agree."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ichbundles.cli import main
from ichbundles.constants import ICH_CLASSES
from ichbundles.data import cq500_items, folder_items, load_index, read_rsna_labels, rsna_items
from ichbundles.data.synthetic import generate_dataset
from ichbundles.io import read_series

SIZE = 64


def _manifest(out):
    return {
        s["series_instance_uid"]: s
        for s in json.loads((out / "manifest.json").read_text())["scans"]
    }


@pytest.fixture(scope="module")
def rsna_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("rsna")
    generate_dataset(
        out, 3, size=SIZE, seed=5, layout="rsna", quirks=("instance_numbers",), progress=False
    )
    return out


def test_rsna_layout_through_the_index_command(rsna_set, capsys):
    image_dir = rsna_set / "stage_2_train"
    assert main(["index", str(image_dir), "--workers", "2", "--quiet"]) == 0
    assert "indexed" in capsys.readouterr().out
    index = load_index(image_dir / "ichbundles_index.parquet")
    assert "patient_name" not in {c.lower() for c in index.columns}

    items = rsna_items(image_dir, rsna_set / "stage_2_train.csv", index=index)
    manifest = _manifest(rsna_set)
    assert {item["series_instance_uid"] for item in items} == set(manifest)
    labels = read_rsna_labels(rsna_set / "stage_2_train.csv")
    for item in items:
        series = read_series(item["image"])
        assert list(series.sop_instance_uids) == list(item["sop_instance_uids"])
        assert item["sop_instance_uids"][0].startswith("ID_")
        expected = labels.loc[[uid[3:] for uid in item["sop_instance_uids"]], list(ICH_CLASSES)]
        np.testing.assert_array_equal(item["slice_labels"], expected.to_numpy(np.float32))
        np.testing.assert_array_equal(
            item["scan_labels"], np.asarray(manifest[item["series_instance_uid"]]["scan_labels"])
        )


def test_cq500_layout(tmp_path):
    generate_dataset(tmp_path, 3, size=SIZE, seed=6, layout="cq500", progress=False)
    items = cq500_items(tmp_path, tmp_path / "reads.csv")
    manifest = _manifest(tmp_path)
    assert sorted(item["name"] for item in items) == ["CQ500-CT-0", "CQ500-CT-1", "CQ500-CT-2"]
    for item in items:
        assert "slice_labels" not in item
        series = read_series(item["image"])
        assert series.series_instance_uid == item["series_instance_uid"]
        assert item["series_instance_uid"] in manifest
        assert list(series.sop_instance_uids) == list(item["sop_instance_uids"])


def test_folder_layout_with_every_quirk_agrees_with_read_series(tmp_path):
    generate_dataset(tmp_path, 4, size=SIZE, seed=7, quirks=("all",), progress=False)
    items = folder_items(
        tmp_path / "dicom",
        scan_labels_csv=tmp_path / "scan_labels.csv",
        slice_labels_csv=tmp_path / "labels.csv",
    )
    manifest = _manifest(tmp_path)
    assert {item["series_instance_uid"] for item in items} == set(manifest)
    for item in items:
        from_folder = read_series(tmp_path / "dicom" / item["name"])
        from_item = read_series(item["image"])
        assert list(from_item.sop_instance_uids) == list(item["sop_instance_uids"])
        assert from_folder.sop_instance_uids == from_item.sop_instance_uids
        np.testing.assert_array_equal(from_folder.hu, from_item.hu)
        assert item["slice_labels"].shape == (from_item.n_slices, len(ICH_CLASSES))
        np.testing.assert_array_equal(item["slice_labels"].max(axis=0), item["scan_labels"])


def test_rsna_style_uids_raise_no_pydicom_warnings(rsna_set, tmp_path):
    """RSNA's ``ID_...`` UIDs are not valid DICOM UIDs; 750,000 of them must not flood the log."""
    import warnings

    from ichbundles.data import build_index

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        index = build_index(
            rsna_set / "stage_2_train", tmp_path / "i.parquet", workers=1, progress=False
        )
        items = rsna_items(rsna_set / "stage_2_train", rsna_set / "stage_2_train.csv", index=index)
        read_series(items[0]["image"])
    assert len(items) == 3
