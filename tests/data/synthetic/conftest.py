"""Fixtures of the synthetic-generator tests and a small reference reader (pydicom only)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pydicom
import pytest

from ichbundles.data.synthetic import generate_dataset


def read_images(folder: Path) -> list[pydicom.Dataset]:
    """Every readable DICOM image (with pixel data) in ``folder``, junk skipped."""
    out = []
    for path in sorted(folder.iterdir()):
        try:
            ds = pydicom.dcmread(path)
            ds.pixel_array  # noqa: B018 - truncated copies fail here
        except Exception:
            continue
        ds.filename = str(path)
        out.append(ds)
    return out


def hu_of(ds: pydicom.Dataset) -> np.ndarray:
    """HU of one image with the archive fixes the brief defines (wrap, MONOCHROME1, padding)."""
    stored = ds.pixel_array.astype(np.int32)
    bits = int(ds.BitsStored)
    padding = ds.get("PixelPaddingValue")
    pad = stored == padding if padding is not None else None
    if ds.PhotometricInterpretation == "MONOCHROME1":
        stored = (2**bits - 1) - stored
    intercept = float(ds.RescaleIntercept)
    if bits == 12 and ds.PixelRepresentation == 0 and intercept > -100:
        stored = stored + 1000
        stored[stored >= 4096] -= 4096
        intercept = -1000.0
    hu = stored * float(ds.RescaleSlope) + intercept
    if pad is not None:
        hu[pad] = -1024.0
    return hu.astype(np.float32)


def main_series(folder: Path, series_uid: str) -> list[pydicom.Dataset]:
    """Images of one series sorted along z (the slice normal of an axial series)."""
    images = [ds for ds in read_images(folder) if ds.SeriesInstanceUID == series_uid]
    return sorted(images, key=lambda ds: float(ds.ImagePositionPatient[2]))


def load(root: Path) -> tuple[dict, list[dict], dict[str, int]]:
    """Manifest, scan_labels.csv rows and labels.csv as {ID: label}."""
    manifest = json.loads((root / "manifest.json").read_text())
    with open(root / "scan_labels.csv") as f:
        scans = list(csv.DictReader(f))
    with open(root / "labels.csv") as f:
        labels = {row["ID"]: int(row["Label"]) for row in csv.DictReader(f)}
    return manifest, scans, labels


@pytest.fixture(scope="session")
def reader() -> SimpleNamespace:
    """The reference reader's functions (tests here run in importlib mode: no helper imports)."""
    return SimpleNamespace(read_images=read_images, hu_of=hu_of, main_series=main_series, load=load)


@pytest.fixture(scope="session")
def plain_dataset(tmp_path_factory) -> Path:
    """Eight quirk-free scans at 64 px with NIfTI copies."""
    root = tmp_path_factory.mktemp("plain")
    generate_dataset(root, 8, size=64, seed=3, nifti=True, progress=False)
    return root
