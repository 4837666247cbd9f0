"""read_series on NIfTI (nibabel) and NRRD/MHA (ITK) volumes, stored in various axis orders."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from ichbundles.io import SeriesReadError, read_series

SHAPE = (6, 5, 4)  # slices, rows, columns
SPACING = (5.0, 0.5, 0.25)  # z, rows, columns in mm
ORIGIN_LPS = np.array([-10.0, 20.0, -30.0])


@pytest.fixture
def hu():
    rng = np.random.default_rng(0)
    return rng.integers(-1000, 1500, size=SHAPE).astype(np.float32)


def _lps_nifti_parts(hu):
    """NIfTI data and RAS affine for a volume laid out like an axial DICOM series (x = L, y = P)."""
    sz, sy, sx = SPACING
    data = hu.transpose(2, 1, 0)  # (columns, rows, slices)
    affine = np.diag([-sx, -sy, sz, 1.0])
    affine[:3, 3] = [-ORIGIN_LPS[0], -ORIGIN_LPS[1], ORIGIN_LPS[2]]
    return data, affine


def _ras_flipped(data, affine):
    """The same volume stored with its first two axes pointing to R and A, as many tools do."""
    n_i, n_j, _ = data.shape
    flipped = data[::-1, ::-1, :]
    new = affine.copy()
    new[:3, 0] = -affine[:3, 0]
    new[:3, 1] = -affine[:3, 1]
    new[:3, 3] = affine[:3, 3] + affine[:3, 0] * (n_i - 1) + affine[:3, 1] * (n_j - 1)
    return flipped, new


def _permuted(data, affine):
    """The same volume stored slices-first: axes (k, i, j)."""
    new = affine.copy()
    new[:3, :3] = affine[:3, [2, 0, 1]]
    return data.transpose(2, 0, 1), new


@pytest.mark.parametrize("layout", ["lps", "ras", "permuted"])
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_nifti_reads_back_the_dicom_layout(tmp_path, hu, layout, suffix):
    data, affine = _lps_nifti_parts(hu)
    if layout in ("ras", "permuted"):
        data, affine = _ras_flipped(data, affine)
    if layout == "permuted":
        data, affine = _permuted(data, affine)
    path = tmp_path / f"1.2.826.0.1.3680043.8.498.1{suffix}"
    nib.save(nib.Nifti1Image(np.ascontiguousarray(data), affine), path)

    series = read_series(path)
    np.testing.assert_array_equal(series.hu, hu)
    np.testing.assert_allclose(series.spacing, SPACING)
    np.testing.assert_allclose(series.orientation, (1, 0, 0, 0, 1, 0), atol=1e-9)
    np.testing.assert_allclose(series.positions[0], ORIGIN_LPS, atol=1e-6)
    np.testing.assert_allclose(np.diff(series.z_mm), SPACING[0])
    assert series.series_instance_uid == "1.2.826.0.1.3680043.8.498.1"
    assert series.sop_instance_uids == ("",) * SHAPE[0]


def test_nifti_without_uid_name_gets_a_stable_uid(tmp_path, hu):
    data, affine = _lps_nifti_parts(hu)
    path = tmp_path / "Doe_John.nii.gz"
    nib.save(nib.Nifti1Image(np.ascontiguousarray(data), affine), path)
    first, second = read_series(path), read_series(path)
    assert first.series_instance_uid == second.series_instance_uid
    assert "Doe" not in first.series_instance_uid


@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
@pytest.mark.parametrize("flip_columns", [False, True])
def test_itk_formats(tmp_path, hu, suffix, flip_columns):
    import itk

    stored = hu[:, :, ::-1] if flip_columns else hu
    image = itk.image_from_array(np.ascontiguousarray(stored))  # array (z, y, x)
    image.SetSpacing([SPACING[2], SPACING[1], SPACING[0]])
    origin = ORIGIN_LPS.copy()
    direction = np.eye(3)
    if flip_columns:  # x index runs to the patient's right, starting at the other edge
        direction[0, 0] = -1.0
        origin[0] += SPACING[2] * (SHAPE[2] - 1)
    image.SetOrigin(origin.tolist())
    image.SetDirection(itk.matrix_from_array(direction))
    path = tmp_path / f"volume{suffix}"
    itk.imwrite(image, str(path))

    series = read_series(path)
    np.testing.assert_array_equal(series.hu, hu)
    np.testing.assert_allclose(series.positions[0], ORIGIN_LPS, atol=1e-6)
    np.testing.assert_allclose(series.spacing, SPACING)


def test_nan_voxels_raise(tmp_path, hu):
    data, affine = _lps_nifti_parts(hu)
    data = data.copy()
    data[0, 0, 0] = np.nan
    path = tmp_path / "nan.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), path)
    with pytest.raises(SeriesReadError, match=r"nan\.nii\.gz: 1 voxels are NaN"):
        read_series(path)


def test_corrupt_nifti_raises(tmp_path):
    path = tmp_path / "broken.nii.gz"
    path.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(SeriesReadError, match=r"broken\.nii\.gz: unreadable volume"):
        read_series(path)


def test_2d_volume_raises(tmp_path):
    path = tmp_path / "flat.nii"
    nib.save(nib.Nifti1Image(np.zeros((4, 4), np.float32), np.eye(4)), path)
    with pytest.raises(SeriesReadError, match="expected a 3D volume"):
        read_series(path)
