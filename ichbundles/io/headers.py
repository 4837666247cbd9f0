"""PHI-free header records of DICOM files: what series selection, ordering and indexing need."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

__all__ = [
    "HEADER_FIELDS",
    "NotDicomError",
    "dcmread_lenient",
    "header_record",
    "quiet_pydicom",
    "read_header",
]

#: Columns of a header record, in order. Only UIDs, geometry and technical tags: no patient data.
HEADER_FIELDS: tuple[str, ...] = (
    "path",
    "file_size",
    "problem",
    "sop_instance_uid",
    "sop_class_uid",
    "series_instance_uid",
    "study_instance_uid",
    "modality",
    "image_type",
    "series_description",
    "convolution_kernel",
    "instance_number",
    "rows",
    "columns",
    "number_of_frames",
    "has_pixels",
    "ipp_x",
    "ipp_y",
    "ipp_z",
    "iop",
    "pixel_spacing_row",
    "pixel_spacing_col",
    "slice_thickness",
)

# Pixel module tags whose presence marks an image (an SR or presentation state has none).
_PIXEL_DATA_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    if isinstance(value, pydicom.multival.MultiValue):
        return "\\".join(str(v) for v in value)
    return str(value) if value is not None else ""


def _number(ds: Dataset, keyword: str) -> float:
    try:
        return float(ds.get(keyword))
    except (TypeError, ValueError):
        return float("nan")


def _numbers(ds: Dataset, keyword: str, count: int) -> list[float]:
    value = ds.get(keyword)
    try:
        numbers = [float(v) for v in value]
    except (TypeError, ValueError):
        return [float("nan")] * count
    return numbers if len(numbers) == count else [float("nan")] * count


def header_record(ds: Dataset, path: str | os.PathLike, file_size: int | None = None) -> dict:
    """Extract the PHI-free header record of one DICOM dataset.

    Geometry of an enhanced (multi-frame) image is taken from its first frame; the reader handles
    per-frame geometry itself.

    Args:
        ds: a dataset read with or without its pixel data.
        path: the file it came from (recorded as given).
        file_size: its size in bytes (looked up when None).
    """
    ipp = _numbers(ds, "ImagePositionPatient", 3)
    iop = _numbers(ds, "ImageOrientationPatient", 6)
    spacing = _numbers(ds, "PixelSpacing", 2)
    thickness = _number(ds, "SliceThickness")
    if "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds:
        ipp, iop, spacing, thickness = _enhanced_first_frame_geometry(ds, ipp, iop, spacing)
    return {
        "path": str(path),
        "file_size": int(os.path.getsize(path) if file_size is None else file_size),
        "problem": "",
        "sop_instance_uid": _text(ds, "SOPInstanceUID"),
        "sop_class_uid": _text(ds, "SOPClassUID")
        or _text(getattr(ds, "file_meta", Dataset()), "MediaStorageSOPClassUID"),
        "series_instance_uid": _text(ds, "SeriesInstanceUID"),
        "study_instance_uid": _text(ds, "StudyInstanceUID"),
        "modality": _text(ds, "Modality").upper(),
        "image_type": _text(ds, "ImageType").upper(),
        "series_description": _text(ds, "SeriesDescription"),
        "convolution_kernel": _text(ds, "ConvolutionKernel"),
        "instance_number": _number(ds, "InstanceNumber"),
        "rows": int(ds.get("Rows", 0) or 0),
        "columns": int(ds.get("Columns", 0) or 0),
        "number_of_frames": int(ds.get("NumberOfFrames", 1) or 1),
        "has_pixels": any(tag in ds for tag in _PIXEL_DATA_TAGS) or "Rows" in ds,
        "ipp_x": ipp[0],
        "ipp_y": ipp[1],
        "ipp_z": ipp[2],
        "iop": "\\".join(f"{v:.6g}" for v in iop),
        "pixel_spacing_row": spacing[0],
        "pixel_spacing_col": spacing[1],
        "slice_thickness": thickness,
    }


def _enhanced_first_frame_geometry(
    ds: Dataset, ipp: list[float], iop: list[float], spacing: list[float]
) -> tuple[list[float], list[float], list[float], float]:
    """Geometry of frame 1 of an enhanced image, per-frame groups taking precedence."""
    thickness = float("nan")
    groups = []
    for keyword in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        sequence = ds.get(keyword)
        if sequence:
            groups.append(sequence[0])
    for group in groups:
        if "PlanePositionSequence" in group:
            ipp = _numbers(group.PlanePositionSequence[0], "ImagePositionPatient", 3)
        if "PlaneOrientationSequence" in group:
            iop = _numbers(group.PlaneOrientationSequence[0], "ImageOrientationPatient", 6)
        if "PixelMeasuresSequence" in group:
            measures = group.PixelMeasuresSequence[0]
            spacing = _numbers(measures, "PixelSpacing", 2)
            thickness = _number(measures, "SliceThickness")
    return ipp, iop, spacing, thickness


@contextmanager
def quiet_pydicom() -> Iterator[None]:
    """Silence pydicom's warnings about non-conformant values while reading.

    Archives are full of them (RSNA 2019's ``ID_...`` UIDs alone would give 750,000); what
    matters to a reader is reported in its own warnings.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


class NotDicomError(ValueError):
    """The file is not DICOM (no preamble and nothing that parses as a DICOM image header)."""


def dcmread_lenient(path: str | os.PathLike, **kwargs) -> Dataset:
    """Read a DICOM file, also when it lacks the 128-byte preamble and ``DICM`` prefix.

    Old archives and some exports write bare datasets; pydicom reads those only with
    ``force=True``, which also "reads" arbitrary bytes, so a forced read counts only when it
    yields a SOP class or an image.

    Raises:
        NotDicomError: the file is not DICOM.
    """
    try:
        return pydicom.dcmread(path, **kwargs)
    except InvalidDicomError:
        pass
    try:
        ds = pydicom.dcmread(path, force=True, **kwargs)
        if "SOPClassUID" in ds or "Rows" in ds:
            return ds
    except Exception:  # a forced read of non-DICOM bytes fails in many ways
        pass
    raise NotDicomError(f"{path}: not a DICOM file")


def read_header(path: str | os.PathLike) -> dict:
    """Read the header record of one file without its pixel data.

    Files that are empty, not DICOM or unreadable give a record whose ``problem`` says why
    (the other fields empty), so callers can skip and report them.
    """
    record = dict.fromkeys(HEADER_FIELDS, "")
    record["path"] = str(path)
    try:
        size = os.path.getsize(path)
        record["file_size"] = size
        if size == 0:
            record["problem"] = "empty file (0 bytes)"
            return record
        with quiet_pydicom():
            ds = dcmread_lenient(path, stop_before_pixels=True)
            return header_record(ds, Path(path), size)
    except NotDicomError:
        record["problem"] = "not a DICOM file"
        return record
    except Exception as error:  # pydicom raises many types on damaged files
        record["problem"] = f"unreadable DICOM header ({type(error).__name__})"
        return record
