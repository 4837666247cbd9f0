"""Files a real study folder holds besides the axial series: scouts, reformats and junk."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import BasicTextSRStorage
from scipy.ndimage import zoom

from .dicom_writer import Storage, _image, _save, dataset_for
from .quirks import UidFactory
from .scan import SyntheticScan

__all__ = ["write_extra_series", "write_junk"]

_SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
_CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)


def write_extra_series(
    scan: SyntheticScan,
    folder: Path,
    *,
    uids: UidFactory,
    patient: str,
    rng: np.random.Generator,
    namer: Callable[[str, int], str],
) -> tuple[list[Path], dict]:
    """Write a scout series (1-3 localizers) and a shorter reformat series into ``folder``.

    The reformat is a thick-slice axial series (2-3 slices averaged) or, without gantry tilt, a
    coronal reformat; both have fewer images than the main series, so a reader must choose.

    Returns:
        The files and a summary for the manifest.
    """
    files: list[Path] = []
    storage = Storage(intercept=-1024.0)
    scout_uid = uids("series-scout")
    n_scouts = int(rng.integers(1, 4))
    for i in range(n_scouts):
        lateral = i % 2 == 0
        image, position, spacing = _scout(scan, lateral)
        stored, _ = storage.encode(image, None)
        ds = dataset_for(
            uids, patient, sop_uid=uids(f"sop-scout-{i}"), series_uid=scout_uid, series_number=1
        )
        ds.FrameOfReferenceUID = uids("frame")
        ds.SeriesDescription = "Topogram"
        _image(
            ds,
            stored,
            storage,
            position=position,
            orientation=_SAGITTAL if lateral else _CORONAL,
            spacing=spacing,
            thickness=1.0,
            instance=i + 1,
            image_type=["ORIGINAL", "PRIMARY", "LOCALIZER"],
        )
        files.append(folder / namer(ds.SOPInstanceUID, 900 + i))
        _save(ds, files[-1], None)

    coronal = not scan.tilt and rng.random() < 0.5
    images = _coronal(scan) if coronal else _thick(scan, int(rng.integers(2, 4)))
    reformat_uid = uids("series-reformat")
    for i, (image, position, orientation, spacing, thickness) in enumerate(images):
        stored, _ = storage.encode(image, None)
        ds = dataset_for(
            uids,
            patient,
            sop_uid=uids(f"sop-reformat-{i}"),
            series_uid=reformat_uid,
            series_number=3,
        )
        ds.FrameOfReferenceUID = uids("frame")
        ds.SeriesDescription = "HEAD COR" if coronal else "HEAD THICK"
        image_type = ["DERIVED", "SECONDARY", "REFORMATTED" if coronal else "AXIAL"]
        _image(
            ds,
            stored,
            storage,
            position=position,
            orientation=orientation,
            spacing=spacing,
            thickness=thickness,
            instance=i + 1,
            image_type=image_type,
        )
        files.append(folder / namer(ds.SOPInstanceUID, 500 + i))
        _save(ds, files[-1], None)
    info = {
        "scout_series_uid": scout_uid,
        "scouts": n_scouts,
        "reformat_series_uid": reformat_uid,
        "reformat": "coronal" if coronal else "thick_axial",
        "reformat_images": len(images),
    }
    return files, info


def _scout(scan: SyntheticScan, lateral: bool) -> tuple[np.ndarray, np.ndarray, tuple]:
    """A projection radiograph-like localizer (lateral or AP), superior at the top."""
    attenuation = np.clip(scan.hu + 1000.0, 0.0, None)
    projection = attenuation.mean(axis=2 if lateral else 1)[::-1]  # rows: superior first
    dz, ps = scan.spacing[0], scan.spacing[1]
    factor = min(dz / ps, 1024 / len(projection))
    image = zoom(projection, (factor, 1.0), order=1)
    image = image / max(float(image.max()), 1.0) * 2500.0 - 1024.0
    top = scan.positions[-1]
    centre_x = scan.positions[0, 0] + ps * scan.hu.shape[2] / 2
    position = np.array([centre_x, top[1], top[2]] if lateral else [top[0], 0.0, top[2]])
    return image.astype(np.float32), position, (dz * len(projection) / len(image), ps)


def _thick(scan: SyntheticScan, k: int) -> list[tuple]:
    """Thick axial slices: means of ``k`` consecutive slices."""
    out = []
    for start in range(0, len(scan.hu) - k + 1, k):
        image = scan.hu[start : start + k].mean(axis=0)
        position = scan.positions[start : start + k].mean(axis=0)
        out.append((image, position, scan.orientation, scan.spacing[1:], scan.thickness * k))
    return out


def _coronal(scan: SyntheticScan) -> list[tuple]:
    """Coronal reformat every 8 mm: rows run inferior from the top slice."""
    dz, ps = scan.spacing[0], scan.spacing[1]
    step = max(1, round(8.0 / ps))
    out = []
    top = scan.positions[-1]
    for row in range(step // 2, scan.hu.shape[1], step):
        image = scan.hu[::-1, row, :]
        position = np.array([top[0], top[1] + row * ps, top[2]])
        out.append((image, position, _CORONAL, (dz, ps), 8.0))
    return out


def write_junk(
    folder: Path,
    sample: Path,
    *,
    uids: UidFactory,
    patient: str,
    namer: Callable[[str, int], str],
) -> list[Path]:
    """Add what real exports contain besides images: an empty file, a text note, a truncated
    copy of ``sample`` and a DICOM object without pixel data (a Basic Text SR)."""
    empty = folder / namer("", 9998)
    empty.write_bytes(b"")
    note = folder / "README.txt"
    note.write_text("Exported by a synthetic PACS. Not a DICOM file.\n")
    data = sample.read_bytes()
    truncated = folder / namer("", 9999)
    truncated.write_bytes(data[: len(data) // 2])
    sr = dataset_for(
        uids,
        patient,
        sop_uid=uids("sop-sr"),
        series_uid=uids("series-sr"),
        series_number=99,
        modality="SR",
        sop_class=BasicTextSRStorage,
    )
    sr.ValueType = "CONTAINER"
    sr.ContinuityOfContent = "SEPARATE"
    sr.CompletionFlag = "COMPLETE"
    sr.VerificationFlag = "UNVERIFIED"
    sr.InstanceNumber = 1
    concept = Dataset()
    concept.CodeValue, concept.CodingSchemeDesignator = "11528-7", "LN"
    concept.CodeMeaning = "Radiology Report"
    sr.ConceptNameCodeSequence = Sequence([concept])
    item = Dataset()
    item.RelationshipType, item.ValueType = "CONTAINS", "TEXT"
    item.TextValue = "Synthetic report: no finding text."
    sr.ContentSequence = Sequence([item])
    report = folder / namer(sr.SOPInstanceUID, 1)
    sr.save_as(report, enforce_file_format=True)
    return [empty, note, truncated, report]
