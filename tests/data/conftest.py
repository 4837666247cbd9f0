"""Tiny DICOM trees for the dataset tests: 8x8 CT slices written with pydicom."""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from ichbundles.constants import ICH_CLASSES

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
#: Axial slices whose normal points to -z (columns run towards the feet).
AXIAL_FLIPPED = (1.0, 0.0, 0.0, 0.0, -1.0, 0.0)
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
PATIENT_NAME = "Doe^Jane"

_counter = itertools.count(1)


def new_uid() -> str:
    """A fresh, valid DICOM UID."""
    return f"1.2.826.0.1.3680043.8.498.{next(_counter)}"


def write_ct(
    path: Path,
    sop: str,
    series: str,
    study: str,
    position: Sequence[float],
    instance: int,
    iop: Sequence[float] = AXIAL,
    **tags: object,
) -> Path:
    """Write one 8x8 CT slice (explicit VR little endian) with patient data in it."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sop
    ds.SeriesInstanceUID, ds.StudyInstanceUID = series, study
    ds.PatientName, ds.PatientID = PATIENT_NAME, "PID-1"
    ds.Modality = "CT"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [float(v) for v in position]
    ds.ImageOrientationPatient = list(iop)
    ds.PixelSpacing = [0.5, 0.5]
    ds.SliceThickness = 1.0
    ds.Rows = ds.Columns = 8
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 1
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    ds.PixelData = np.full((8, 8), instance, dtype=np.int16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_series(
    folder: Path,
    n: int,
    *,
    spacing: float = 1.0,
    iop: Sequence[float] = AXIAL,
    sops: Sequence[str] | None = None,
    series: str | None = None,
    study: str | None = None,
    seed: int = 0,
    prefix: str = "IM",
    **tags: object,
) -> dict:
    """Write a series with shuffled file names and InstanceNumber reversed against position.

    Returns:
        ``series``, ``study`` UIDs, ``sops`` ascending along the normal and their ``paths``.
    """
    series, study = series or new_uid(), study or new_uid()
    sops = list(sops) if sops is not None else [new_uid() for _ in range(n)]
    normal = np.cross(iop[:3], iop[3:])
    names = np.random.default_rng(seed).permutation(n)
    paths = []
    for i, sop in enumerate(sops):
        path = folder / f"{prefix}{names[i]:04d}.dcm"
        write_ct(path, sop, series, study, 10.0 + i * spacing * normal, n - i, iop, **tags)
        paths.append(path)
    return {"series": series, "study": study, "sops": sops, "paths": paths}


def truncate(path: Path, nbytes: int = 10) -> None:
    """Cut the last bytes of a file, as in the RSNA image ID_6431af929."""
    os.truncate(path, path.stat().st_size - nbytes)


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def rsna_csv(path: Path, labels: dict[str, Sequence[int]], duplicate: int = 0) -> Path:
    """An RSNA ``ID,Label`` file for ``{sop: six 0/1 values}``, first rows repeated."""
    rows = [
        f"ID_{sop.removeprefix('ID_')}_{cls},{v}"
        for sop, values in labels.items()
        for cls, v in zip(ICH_CLASSES, values, strict=True)
    ]
    return write_csv(path, "\n".join(["ID,Label", *rows, *rows[:duplicate]]) + "\n")


@pytest.fixture
def folder_tree(tmp_path: Path) -> dict:
    """A plain folder: two series in one folder, a scout, truncated, empty and text files."""
    root = tmp_path / "data"
    study = new_uid()
    a = write_series(root / "scanA", 5, study=study, seed=1)
    b = write_series(root / "scanA", 3, spacing=2.0, study=study, seed=2, prefix="B")
    scout = write_series(
        root / "scanA", 1, iop=CORONAL, prefix="scout", ImageType=["ORIGINAL", "LOCALIZER"]
    )
    broken = write_series(root / "scanC", 4, iop=AXIAL_FLIPPED, seed=3)
    truncate(broken["paths"][2])
    (root / "scanA" / "empty.dcm").write_bytes(b"")
    (root / "scanA" / "notes.txt").write_text("not dicom\n")
    return {"root": root, "a": a, "b": b, "scout": scout, "broken": broken}


@pytest.fixture(scope="session")
def dicom() -> SimpleNamespace:
    """The writers and orientations above, for tests (conftest modules are not importable)."""
    return SimpleNamespace(
        AXIAL=AXIAL,
        AXIAL_FLIPPED=AXIAL_FLIPPED,
        CORONAL=CORONAL,
        PATIENT_NAME=PATIENT_NAME,
        new_uid=new_uid,
        write_ct=write_ct,
        write_series=write_series,
        truncate=truncate,
        write_csv=write_csv,
        rsna_csv=rsna_csv,
    )
