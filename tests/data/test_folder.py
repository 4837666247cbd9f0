"""Plain folders: series grouping and filtering, volumes, scan and slice label joins."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from ichbundles.constants import ICH_CLASSES
from ichbundles.data import LabelError, build_index, folder_items
from ichbundles.io.volume import volume_series_uid


@pytest.fixture
def tree(folder_tree, dicom) -> dict:
    """The conftest folder plus a series directly in the root and two NIfTI files."""
    root = folder_tree["root"]
    folder_tree["loose"] = dicom.write_series(root, 2, prefix="loose")
    (root / "vols").mkdir()
    (root / "vols" / "1.2.3.4.nii.gz").write_bytes(b"\0" * 352)
    (root / "vols" / "brain.nii").write_bytes(b"\0" * 352)
    folder_tree["index"] = build_index(root, workers=1, progress=False)
    return folder_tree


def _scan_csv(path, key: str, rows: dict[str, tuple[int, ...]]):
    lines = [",".join([key, *ICH_CLASSES])]
    lines += [",".join([k, *map(str, v)]) for k, v in rows.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_items_and_skips(tree, caplog) -> None:
    root = tree["root"]
    with caplog.at_level(logging.WARNING):
        items = folder_items(root, index=tree["index"])
    by_uid = {i["series_instance_uid"]: i for i in items if i["sop_instance_uids"]}
    # scanA holds series a (5 slices), b (3) and a scout: like read_series, one item, series a
    assert set(by_uid) == {tree[k]["series"] for k in ("a", "broken", "loose")}
    for key, name in (("a", "scanA"), ("loose", tree["loose"]["series"])):
        item = by_uid[tree[key]["series"]]
        assert item["sop_instance_uids"] == tree[key]["sops"]
        assert item["image"] == [str(p) for p in tree[key]["paths"]]
        assert item["name"] == name
        assert "scan_labels" not in item
    broken = by_uid[tree["broken"]["series"]]  # truncated slice dropped, order kept
    sops = tree["broken"]["sops"]
    assert broken["sop_instance_uids"] == sops[:2] + sops[3:]
    volumes = [i for i in items if not i["sop_instance_uids"]]
    assert [v["name"] for v in volumes] == ["vols/1.2.3.4.nii.gz", "vols/brain.nii"]
    assert volumes[0]["series_instance_uid"] == "1.2.3.4"  # the stem is a UID
    # else the UID read_series gives the volume: derived from its bytes, not its name
    assert volumes[1]["series_instance_uid"] == volume_series_uid(root / "vols" / "brain.nii")
    assert "brain" not in volumes[1]["series_instance_uid"]
    assert volumes[0]["image"] == str(root / "vols" / "1.2.3.4.nii.gz")
    assert f"skipping series {tree['scout']['series']}: scout/localizer" in caplog.text
    larger = "its folder holds a larger axial CT series"
    assert f"skipping series {tree['b']['series']}: {larger}" in caplog.text
    for path in ("scanA/empty.dcm", "scanA/notes.txt"):
        assert f"skipping {path}" in caplog.text
    assert "nii" not in caplog.text


@pytest.mark.parametrize("key", ["series_instance_uid", "scan_id", "name"])
def test_scan_labels_join(tree, tmp_path, key) -> None:
    ones, zeros = (1,) * 6, (0,) * 6
    if key == "series_instance_uid":
        rows = {tree[k]["series"]: ones for k in ("a", "b", "broken", "loose")}
        rows["1.2.3.4"] = zeros
        expected = 4  # a, broken, loose and one volume; b is not an item (its row is dropped)
    else:
        rows = {"scanA": ones, "scanC": zeros, tree["loose"]["series"]: ones, "vols/brain": zeros}
        rows["vols/1.2.3.4.nii.gz"] = ones
        expected = 5
    csv = _scan_csv(tmp_path / "scans.csv", key, rows)
    items = folder_items(tree["root"], scan_labels_csv=csv, index=tree["index"], strict=False)
    assert len(items) == expected
    assert all(i["scan_labels"].dtype == np.float32 for i in items)
    if key != "series_instance_uid":
        labels = {i["name"]: i["scan_labels"].sum() for i in items}
        assert labels == {
            "scanA": 6,
            "scanC": 0,
            tree["loose"]["series"]: 6,
            "vols/brain.nii": 0,
            "vols/1.2.3.4.nii.gz": 6,
        }


def test_scan_labels_strict(tree, tmp_path, caplog) -> None:
    csv = _scan_csv(tmp_path / "scans.csv", "scan_id", {"scanA": (1,) * 6, "ghost": (0,) * 6})
    with pytest.raises(LabelError, match=r"scans\.csv: .* have no scan_id row"):
        folder_items(tree["root"], scan_labels_csv=csv, index=tree["index"])
    with caplog.at_level(logging.WARNING):
        items = folder_items(tree["root"], scan_labels_csv=csv, index=tree["index"], strict=False)
    assert {i["name"] for i in items} == {"scanA"}
    assert "1 label rows match no scan" in caplog.text and "ghost" in caplog.text


def test_slice_labels(tree, tmp_path, dicom) -> None:
    sops = tree["a"]["sops"]
    labels = {s: (0, 0, 0, 0, 1, 1) if i == 3 else (0,) * 6 for i, s in enumerate(sops)}
    csv = dicom.rsna_csv(tmp_path / "slices.csv", labels, duplicate=6)
    with pytest.raises(LabelError, match=r"slices\.csv: \d+ images in"):
        folder_items(tree["root"], slice_labels_csv=csv, index=tree["index"])
    items = folder_items(tree["root"], slice_labels_csv=csv, index=tree["index"], strict=False)
    assert [i["series_instance_uid"] for i in items] == [tree["a"]["series"]]
    np.testing.assert_array_equal(items[0]["slice_labels"][:, 4], [0, 0, 0, 1, 0])
    np.testing.assert_array_equal(items[0]["scan_labels"], [0, 0, 0, 0, 1, 1])
