"""read_series on real DICOM files that nobody in this project wrote (pydicom, pydicom-data)."""

from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest

from ichbundles.constants import AIR_HU
from ichbundles.io import CTSeries, SeriesReadError, read_series


def _expected_hu(ds: pydicom.Dataset) -> np.ndarray:
    """Independent HU: pydicom's decoded values times slope plus intercept, floored at air."""
    hu = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    if "PixelPaddingValue" in ds:
        hu[ds.pixel_array == ds.PixelPaddingValue] = AIR_HU
    return np.maximum(hu, AIR_HU).astype(np.float32)


@pytest.mark.parametrize(
    "name", ["CT_small.dcm", "693_UNCR.dcm", "693_J2KR.dcm", "bad_sequence.dcm", "693_J2KI.dcm"]
)
def test_single_ct_file_matches_pydicom_rescale(pydicom_file, name):
    path = pydicom_file(name)
    ds = pydicom.dcmread(path)
    series = read_series(path)
    assert isinstance(series, CTSeries)
    assert series.hu.dtype == np.float32
    assert series.hu.shape == (1, ds.Rows, ds.Columns)
    np.testing.assert_array_equal(series.hu[0], _expected_hu(ds))
    assert series.sop_instance_uids == (ds.SOPInstanceUID,)
    assert series.series_instance_uid == ds.SeriesInstanceUID
    assert series.study_instance_uid == ds.StudyInstanceUID
    assert series.spacing[1:] == tuple(float(v) for v in ds.PixelSpacing)
    np.testing.assert_allclose(series.positions[0], [float(v) for v in ds.ImagePositionPatient])
    assert series.plane == "axial"


def test_lossless_jpeg2000_equals_uncompressed(pydicom_file):
    uncompressed = read_series(pydicom_file("693_UNCR.dcm"))
    jpeg2000 = read_series(pydicom_file("693_J2KR.dcm"))
    np.testing.assert_array_equal(uncompressed.hu, jpeg2000.hu)


@pytest.mark.parametrize(
    "name",
    ["MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm"],
)
def test_compressed_transfer_syntaxes_decode_like_uncompressed(pydicom_file, tmp_path, name):
    """RLE, JPEG-LS and JPEG 2000 files relabelled as CT (pixel data untouched) read like the
    uncompressed original."""

    def as_ct(source, target):
        ds = pydicom.dcmread(source)
        ds.Modality = "CT"
        ds.save_as(target)
        return target

    reference = read_series(as_ct(pydicom_file("MR_small.dcm"), tmp_path / "ref.dcm"))
    compressed_path = as_ct(pydicom_file(name), tmp_path / "compressed.dcm")
    assert pydicom.dcmread(compressed_path).file_meta.TransferSyntaxUID.is_compressed
    np.testing.assert_array_equal(read_series(compressed_path).hu, reference.hu)


def test_enhanced_multiframe_ct(pydicom_file):
    path = pydicom_file("eCT_Supplemental.dcm")
    ds = pydicom.dcmread(path)
    series = read_series(path)
    frames = ds.pixel_array.astype(np.float32)
    transform = ds.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence[0]
    expected = frames * float(transform.RescaleSlope) + float(transform.RescaleIntercept)
    iop = [
        float(v)
        for v in ds.SharedFunctionalGroupsSequence[0]
        .PlaneOrientationSequence[0]
        .ImageOrientationPatient
    ]
    normal = np.cross(iop[:3], iop[3:])  # (0, 0, -1) here: ascending along it is descending z
    z = [
        np.dot([float(v) for v in f.PlanePositionSequence[0].ImagePositionPatient], normal)
        for f in ds.PerFrameFunctionalGroupsSequence
    ]
    order = np.argsort(z)
    assert list(order) == [1, 0]
    assert series.hu.shape == (2, 512, 512)
    np.testing.assert_array_equal(series.hu, np.maximum(expected[order], AIR_HU))
    assert series.spacing[0] == pytest.approx(10.0)
    assert np.all(np.diff(series.z_mm) > 0)


def test_folder_with_many_series_picks_the_largest_axial_ct(pydicom_file):
    series = read_series(pydicom_file("dicomdirtests"))
    assert series.n_slices == 5
    assert np.all(np.diff(series.z_mm) > 0)
    joined = "\n".join(series.warnings)
    assert "scout/localizer" in joined  # the 98892001/CT2N localizers
    assert "DICOMDIR: not an image" in joined
    assert "not CT (MR)" in joined


def test_series_uid_selects_another_series(pydicom_file):
    folder = pydicom_file("dicomdirtests")
    uid = pydicom.dcmread(folder / "77654033" / "CT2" / "17106").SeriesInstanceUID
    series = read_series(folder, series_uid=uid)
    assert series.series_instance_uid == uid
    assert series.n_slices == 4
    with pytest.raises(SeriesReadError, match=r"series 1\.2\.3 not found"):
        read_series(folder, series_uid="1.2.3")


@pytest.fixture
def ct5n(pydicom_file, tmp_path):
    """The 5-slice CT series of dicomdirtests copied under names that reverse their order."""
    source = sorted((pydicom_file("dicomdirtests") / "98892001" / "CT5N").iterdir())
    target = tmp_path / "series"
    target.mkdir()
    datasets = [pydicom.dcmread(p) for p in source]
    datasets.sort(key=lambda ds: -float(ds.ImagePositionPatient[2]))
    for index, ds in enumerate(datasets):
        ds.InstanceNumber = index + 1  # instance order opposite to the spatial order
        ds.save_as(target / f"a{index:02d}")
    return target


def test_order_follows_position_not_names_or_instance_numbers(ct5n):
    series = read_series(ct5n)
    by_uid = {}
    for path in ct5n.iterdir():
        ds = pydicom.dcmread(path)
        by_uid[ds.SOPInstanceUID] = (float(ds.ImagePositionPatient[2]), _expected_hu(ds))
    z = [by_uid[uid][0] for uid in series.sop_instance_uids]
    assert z == sorted(z)
    for index, uid in enumerate(series.sop_instance_uids):
        np.testing.assert_array_equal(series.hu[index], by_uid[uid][1])
    np.testing.assert_allclose(series.z_mm, z)


def test_list_of_files_reads_like_the_folder(ct5n):
    from_folder = read_series(ct5n)
    from_list = read_series(sorted(ct5n.iterdir()))
    np.testing.assert_array_equal(from_folder.hu, from_list.hu)
    assert from_folder.sop_instance_uids == from_list.sop_instance_uids


def test_junk_files_are_skipped_with_warnings(ct5n):
    (ct5n / "empty.dcm").write_bytes(b"")
    (ct5n / "notes.txt").write_text("not dicom")
    first = sorted(ct5n.iterdir())[0].read_bytes()
    (ct5n / "truncated").write_bytes(first[: len(first) - 200])
    series = read_series(ct5n)
    assert series.n_slices == 5
    joined = "\n".join(series.warnings)
    assert "empty.dcm: empty file" in joined
    assert "notes.txt: not a DICOM file" in joined
    # the truncated copy holds the same position as its original: it is dropped either as a
    # duplicate or as unreadable, never read as a slice
    assert "truncated" in joined


def test_duplicate_position_dropped(ct5n):
    ds = pydicom.dcmread(sorted(ct5n.iterdir())[2])
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(ct5n / "copy")
    series = read_series(ct5n)
    assert series.n_slices == 5
    assert any("dropped duplicate slice" in w for w in series.warnings)


def test_gap_is_reported(ct5n):
    files = sorted(ct5n.iterdir(), key=lambda p: float(pydicom.dcmread(p).ImagePositionPatient[2]))
    files[2].unlink()
    series = read_series(ct5n)
    assert series.n_slices == 4
    assert series.gaps == (2,)
    assert any("gap of" in w for w in series.warnings)


def test_inconsistent_slice_size_raises_naming_the_file(ct5n):
    path = sorted(ct5n.iterdir())[1]
    ds = pydicom.dcmread(path)
    ds.PixelData = ds.pixel_array[:8, :8].copy().tobytes()
    ds.Rows, ds.Columns = 8, 8
    ds.save_as(path)
    with pytest.raises(SeriesReadError, match=rf"{path.name}: slice size 8x8 differs from 16x16"):
        read_series(ct5n)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp, find: tmp, "empty folder"),
        (lambda tmp, find: tmp / "missing", "no such file or folder"),
        (lambda tmp, find: find("MR_small.dcm"), r"no CT series \(modalities found: MR\)"),
        (lambda tmp, find: find("rtplan.dcm"), "not an image"),
        (lambda tmp, find: _write(tmp / "x.dcm", b"hello"), "not a DICOM file"),
        (lambda tmp, find: _write(tmp / "z.dcm", b""), "empty file"),
    ],
)
def test_bad_input_raises_one_line(tmp_path, pydicom_file, make, message):
    path = make(tmp_path, pydicom_file)
    with pytest.raises(SeriesReadError, match=message) as caught:
        read_series(path)
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith(str(path))


def test_truncated_single_file_raises(pydicom_file, tmp_path):
    data = pydicom_file("CT_small.dcm").read_bytes()
    path = _write(tmp_path / "cut.dcm", data[: len(data) // 2])
    with pytest.raises(SeriesReadError, match=r"cut\.dcm"):
        read_series(path)


def test_localizer_only_folder_raises(pydicom_file, tmp_path):
    shutil.copytree(pydicom_file("dicomdirtests") / "98892001" / "CT2N", tmp_path / "scouts")
    with pytest.raises(SeriesReadError, match=r"no axial CT series .*scout/localizer"):
        read_series(tmp_path / "scouts")


def test_no_patient_data_in_result(pydicom_file):
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    series = read_series(pydicom_file("CT_small.dcm"))
    text = repr(series.summary())
    assert str(ds.PatientName) not in text
    assert str(ds.PatientID) not in text


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_truncated_copy_listed_first_does_not_replace_its_original(ct5n):
    """A cut-short copy of a slice (same SOP, position and InstanceNumber) met before the
    original: the reader falls back to the intact copy instead of losing the slice."""
    expected = read_series(ct5n)
    original = sorted(ct5n.iterdir())[0]
    data = original.read_bytes()
    (ct5n / "0-truncated").write_bytes(data[: len(data) - 100])
    series = read_series(ct5n)
    assert series.sop_instance_uids == expected.sop_instance_uids
    np.testing.assert_array_equal(series.hu, expected.hu)
    assert any("0-truncated" in w for w in series.warnings)
