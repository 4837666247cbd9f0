"""Read CT volumes stored as NIfTI (nibabel) or in formats ITK reads (NRRD, MHA)."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform
from pydicom.uid import generate_uid

from ichbundles.constants import AIR_HU
from ichbundles.io.geometry import gantry_tilt_degrees, slice_gaps
from ichbundles.io.series import CTSeries, SeriesReadError

__all__ = [
    "ITK_SUFFIXES",
    "NIFTI_SUFFIXES",
    "VOLUME_SUFFIXES",
    "read_volume",
    "volume_series_uid",
    "volume_suffix",
]

NIFTI_SUFFIXES = (".nii", ".nii.gz")
ITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")
#: Every file ending read as a volume rather than DICOM.
VOLUME_SUFFIXES = (*NIFTI_SUFFIXES, *ITK_SUFFIXES)
# The DICOM-like layout every volume is brought to: columns run to the patient's left, rows to
# posterior, slices to superior (nibabel names axes by where they point to in RAS terms).
_LPS_AXCODES = ("L", "P", "S")
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])
_UID_PATTERN = re.compile(r"^[0-9]+(\.[0-9]+)+$")


def volume_suffix(path: str | os.PathLike) -> str | None:
    """The volume suffix of a path (``.nii.gz``, ``.nrrd``, ...), or None for anything else."""
    name = Path(path).name.lower()
    for suffix in VOLUME_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return None


def _load_nifti(path: Path) -> nib.spatialimages.SpatialImage:
    return nib.load(path)


def _load_itk(path: Path) -> nib.Nifti1Image:
    """Read with ITK and express the image as a NIfTI image (RAS affine, x-y-z array order)."""
    import itk  # imported here: ITK takes seconds to import and most users read DICOM

    image = itk.imread(str(path))
    if image.GetImageDimension() != 3:
        raise SeriesReadError(path, f"{image.GetImageDimension()}D image, expected a 3D volume")
    direction = np.asarray(image.GetDirection(), dtype=np.float64)
    spacing = np.asarray(image.GetSpacing(), dtype=np.float64)
    origin = np.asarray(image.GetOrigin(), dtype=np.float64)
    lps_affine = np.eye(4)
    lps_affine[:3, :3] = direction @ np.diag(spacing)
    lps_affine[:3, 3] = origin
    ras_affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps_affine
    data = itk.array_from_image(image).transpose(2, 1, 0)  # ITK arrays are z, y, x
    return nib.Nifti1Image(np.ascontiguousarray(data), ras_affine)


def volume_series_uid(path: str | os.PathLike) -> str:
    """The series UID of a volume file: its name without the suffix when that is a UID (as the
    synthetic set writes), else one derived from the file's bytes, stable across runs and free
    of whatever the file name holds."""
    path = Path(path)
    stem = path.name[: -len(volume_suffix(path) or "")] if volume_suffix(path) else path.stem
    if _UID_PATTERN.match(stem) and len(stem) <= 64:
        return stem
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return generate_uid(entropy_srcs=[digest])


def read_volume(path: str | os.PathLike) -> CTSeries:
    """Read a CT volume file into a CTSeries in the same layout as a DICOM axial series.

    The volume is reoriented (axis permutations and flips only, no resampling) so that columns
    run to the patient's left, rows to posterior and slices ascend to superior, as in a standard
    axial DICOM series; positions and orientation are given in patient LPS like DICOM's.

    Raises:
        SeriesReadError: unreadable file, not 3D, or NaN/infinite voxels.
    """
    path = Path(path)
    suffix = volume_suffix(path)
    if suffix is None:
        raise SeriesReadError(path, "not a NIfTI, NRRD or MHA file")
    try:
        image = _load_nifti(path) if suffix in NIFTI_SUFFIXES else _load_itk(path)
        if len(image.shape) == 4 and image.shape[3] == 1:
            image = image.slicer[..., 0]
        if len(image.shape) != 3:
            raise SeriesReadError(path, f"image of shape {image.shape}, expected a 3D volume")
        transform = ornt_transform(io_orientation(image.affine), axcodes2ornt(_LPS_AXCODES))
        image = image.as_reoriented(transform)
        data = np.asarray(image.get_fdata(dtype=np.float32))
    except SeriesReadError:
        raise
    except Exception as error:  # nibabel and ITK raise many types on damaged files
        raise SeriesReadError(
            path, f"unreadable volume ({type(error).__name__}: {error})"
        ) from None
    bad = int(np.count_nonzero(~np.isfinite(data)))
    if bad:
        raise SeriesReadError(path, f"{bad} voxels are NaN or infinite")

    hu = np.ascontiguousarray(data.transpose(2, 1, 0))  # (x, y, z) -> (S, rows, columns)
    np.maximum(hu, AIR_HU, out=hu)
    lps = _RAS_TO_LPS @ image.affine[:3, :3]
    origin = _RAS_TO_LPS @ image.affine[:3, 3]
    row_cosine = lps[:, 0] / np.linalg.norm(lps[:, 0])
    column_cosine = lps[:, 1] / np.linalg.norm(lps[:, 1])
    positions = origin + np.outer(np.arange(hu.shape[0]), lps[:, 2])
    orientation = (*row_cosine, *column_cosine)
    spacing_z, gaps = slice_gaps(positions @ np.cross(row_cosine, column_cosine))
    return CTSeries(
        hu=hu,
        spacing=(
            float(spacing_z),
            float(np.linalg.norm(lps[:, 1])),
            float(np.linalg.norm(lps[:, 0])),
        ),
        sop_instance_uids=("",) * hu.shape[0],
        positions=positions,
        study_instance_uid="",
        series_instance_uid=volume_series_uid(path),
        orientation=tuple(float(v) for v in orientation),
        warnings=[],
        source=str(path),
        tilt_degrees=gantry_tilt_degrees(positions, orientation),
        gaps=gaps,
    )
