"""Write a synthetic scan as a CT Image Storage series, with the archive quirks asked for."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian, JPEGLosslessSV1

from ichbundles.constants import AIR_HU, WINDOW_PRESETS

from .quirks import UidFactory
from .scan import HU_RANGE, SyntheticScan

__all__ = [
    "Storage",
    "WrittenSeries",
    "choose_storage",
    "dataset_for",
    "write_dicom_series",
    "write_series",
]

MANUFACTURER = "ICHBundles Synthetic"
_PADDING_VALUE = -2000


@dataclass(frozen=True)
class Storage:
    """How HU become stored values: ``stored = round((HU - intercept) / slope)`` then the quirk.

    Attributes:
        signed: PixelRepresentation 1.
        bits_stored: BitsStored.
        slope, intercept: RescaleSlope / RescaleIntercept as written.
        wrap: RSNA wrap (stored = HU mod 4096, 12 bits, intercept 0).
        monochrome1: stored values inverted within the BitsStored range.
        padding: stored value outside the circular field of view, or None.
    """

    signed: bool = True
    bits_stored: int = 16
    slope: float = 1.0
    intercept: float = -1024.0
    wrap: bool = False
    monochrome1: bool = False
    padding: int | None = None

    def encode(self, hu: np.ndarray, outside: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Stored values of one slice and the HU a correct reader gets back from them."""
        if self.wrap:
            values = np.rint(np.clip(hu, -1000.0, 3095.0)).astype(np.int32)
            decoded = values.astype(np.float32)
            stored = np.mod(values, 4096)
        else:
            low, high = HU_RANGE
            values = np.rint((np.clip(hu, low, high) - self.intercept) / self.slope).astype(
                np.int32
            )
            decoded = (values * self.slope + self.intercept).astype(np.float32)
            stored = (2**self.bits_stored - 1) - values if self.monochrome1 else values
        if self.padding is not None and outside is not None:
            stored[outside] = self.padding
            decoded[outside] = AIR_HU
        return stored.astype(np.int16 if self.signed else np.uint16), decoded


def choose_storage(quirks: frozenset[str], rng: np.random.Generator) -> Storage:
    """The storage of a scan: signed int16 (intercept 0 or -1024) unless a storage quirk says."""
    intercept = float(rng.choice([0.0, -1024.0]))
    if "rsna_wrap" in quirks:
        return Storage(signed=False, bits_stored=12, intercept=0.0, wrap=True)
    if "unsigned" in quirks:
        return Storage(signed=False, bits_stored=int(rng.choice([12, 16])), intercept=-1024.0)
    if "monochrome1" in quirks:
        return Storage(signed=False, bits_stored=12, intercept=-1024.0, monochrome1=True)
    if "slope" in quirks:
        return Storage(slope=float(rng.choice([0.5, 2.0])), intercept=intercept)
    if "padding" in quirks:
        return Storage(intercept=intercept, padding=_PADDING_VALUE)
    return Storage(intercept=intercept)


@dataclass
class WrittenSeries:
    """What was written for one scan.

    Attributes:
        files: main-series image files a correct reader keeps, ascending in z.
        sop_uids: their SOPInstanceUIDs.
        slice_index: index into the scan's slices of each kept file.
        decoded_hu: (len(files), H, W) HU a correct reader gets back (quantised, padding = air).
        study_uid, series_uid, frame_uid: the main series' UIDs.
        details: what each applied quirk did (for the manifest).
        other_files: everything else written (duplicates, scouts, reformats, junk).
    """

    files: list[Path]
    sop_uids: list[str]
    slice_index: list[int]
    decoded_hu: np.ndarray
    study_uid: str
    series_uid: str
    frame_uid: str
    details: dict[str, object] = field(default_factory=dict)
    other_files: list[Path] = field(default_factory=list)


def dataset_for(
    uids: UidFactory,
    patient: str,
    *,
    sop_uid: str,
    series_uid: str,
    series_number: int,
    modality: str = "CT",
    sop_class: UID = CTImageStorage,
) -> Dataset:
    """A dataset with the file meta, Patient, Study, Series, Equipment and SOP Common modules."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.PatientName = patient
    ds.PatientID = patient.replace("^", "")
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.StudyInstanceUID = uids("study")
    ds.StudyDate = "20200101"
    ds.StudyTime = "120000"
    ds.StudyID = "1"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "CT HEAD WO CONTRAST"
    ds.Modality = modality
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = "Phantom"
    ds.ContentDate = ds.StudyDate
    ds.ContentTime = ds.StudyTime
    return ds


def _image(
    ds: Dataset,
    stored: np.ndarray,
    storage: Storage,
    *,
    position: np.ndarray,
    orientation: tuple[float, ...],
    spacing: tuple[float, float],
    thickness: float,
    instance: int,
    image_type: list[str],
) -> Dataset:
    """Add the Frame of Reference, Image Plane, Image Pixel and CT Image modules."""
    ds.ImageType = image_type
    ds.InstanceNumber = instance
    ds.AcquisitionNumber = 1
    ds.PatientPosition = "HFS"
    ds.PositionReferenceIndicator = ""
    ds.ImagePositionPatient = [round(float(p), 4) for p in position]
    ds.ImageOrientationPatient = [float(o) for o in orientation]
    ds.PixelSpacing = [round(float(s), 6) for s in spacing]
    ds.SliceThickness = round(float(thickness), 4)
    ds.SliceLocation = round(float(position[2]), 4)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if storage.monochrome1 else "MONOCHROME2"
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated = 16
    ds.BitsStored = storage.bits_stored
    ds.HighBit = storage.bits_stored - 1
    ds.PixelRepresentation = int(storage.signed)
    ds.RescaleIntercept = storage.intercept
    ds.RescaleSlope = storage.slope
    ds.RescaleType = "HU"
    ds.KVP = 120
    ds.ConvolutionKernel = "H30s"
    if storage.padding is not None:
        ds.PixelPaddingValue = storage.padding
    ds.PixelData = np.ascontiguousarray(stored).tobytes()
    return ds


def _save(ds: Dataset, path: Path, syntax: UID | None) -> None:
    """Write ``ds`` to ``path``, compressing to ``syntax`` (GDCM for JPEG Lossless SV1)."""
    if syntax is not None and syntax != JPEGLosslessSV1:
        ds.compress(syntax, generate_instance_uid=False)  # labels name the original UID
    ds.save_as(path, enforce_file_format=True)
    if syntax == JPEGLosslessSV1:
        _gdcm_transcode(path, syntax)


def _gdcm_transcode(path: Path, syntax: UID) -> None:
    """Re-encode a written file in place with GDCM (pydicom cannot encode JPEG Lossless SV1)."""
    import gdcm

    reader = gdcm.ImageReader()
    reader.SetFileName(str(path))
    if not reader.Read():
        raise RuntimeError(f"GDCM could not read {path.name}")
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.GetTSType(str(syntax))))
    change.SetInput(reader.GetImage())
    if not change.Change():
        raise RuntimeError(f"GDCM could not encode {path.name} as {syntax.name}")
    writer = gdcm.ImageWriter()
    tmp = path.with_name(path.name + ".tmp")
    writer.SetFileName(str(tmp))
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    if not writer.Write():
        raise RuntimeError(f"GDCM could not write {path.name}")
    os.replace(tmp, path)


def write_dicom_series(
    scan: SyntheticScan,
    folder: str | os.PathLike,
    *,
    uids: UidFactory,
    patient: str = "SYNTH^0000",
    quirks: frozenset[str] = frozenset(),
    rng: np.random.Generator,
    syntax: UID | None = None,
    names: str = "default",
) -> list[Path]:
    """Write ``scan`` as a CT series in ``folder``.

    Args:
        scan: the scan.
        folder: output folder (created).
        uids: deterministic UID source of the scan (``UidFactory``).
        patient: synthetic PatientName (``SYNTH^0007``); the PatientID drops the caret.
        quirks: quirk names to apply (see ``quirks.QUIRKS``).
        rng: random generator for the quirks' choices.
        syntax: transfer syntax of the ``compressed`` quirk (None = Explicit VR Little Endian).
        names: file naming, ``"default"`` (``IM-0002-0001.dcm``), ``"rsna"`` (SOPInstanceUID +
            ``.dcm``) or ``"cq500"`` (``CT000000.dcm``).

    Returns:
        The main-series image files a correct reader keeps, ascending in z.
    """
    return write_series(
        scan, folder, uids=uids, patient=patient, quirks=quirks, rng=rng, syntax=syntax, names=names
    ).files


def write_series(
    scan: SyntheticScan,
    folder: str | os.PathLike,
    *,
    uids: UidFactory,
    patient: str = "SYNTH^0000",
    quirks: frozenset[str] = frozenset(),
    rng: np.random.Generator,
    syntax: UID | None = None,
    names: str = "default",
) -> WrittenSeries:
    """Like :func:`write_dicom_series` but returns everything the dataset files need."""
    from .extras import write_extra_series, write_junk

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n = len(scan.hu)
    storage = choose_storage(quirks, rng)
    details: dict[str, object] = {"storage": dataclasses.asdict(storage)}
    keep = list(range(n))
    if "gap" in quirks and n >= 5:
        missing = int(rng.integers(n // 4, 3 * n // 4))
        keep.remove(missing)
        details["gap"] = {"missing_slice": missing}
    duplicate = None
    if "duplicate_slice" in quirks:
        duplicate = int(rng.choice(keep[1:-1]))
        details["duplicate_slice"] = {"slice": duplicate}
    instance = _instance_numbers(len(keep), quirks, rng)
    details["instance_order"] = "scrambled" if "instance_numbers" in quirks else "by position"
    namer = _namer(names, quirks, rng, series_number=2)
    if syntax is not None:
        details["compressed"] = {"transfer_syntax": str(syntax), "name": syntax.name}
    if scan.tilt:
        details["tilt"] = {"degrees": scan.tilt}

    outside = _outside_fov(scan) if storage.padding is not None else None
    series_uid = uids("series")
    frame_uid = uids("frame")
    validation = pydicom.config.disable_value_validation() if uids.style == "rsna" else None
    written = WrittenSeries(
        [],
        [],
        [],
        np.empty((len(keep), *scan.hu.shape[1:]), np.float32),
        uids("study"),
        series_uid,
        frame_uid,
        details,
    )
    with validation or contextlib.nullcontext():
        for k, index in enumerate(keep):
            copies = 2 if index == duplicate else 1
            for copy in range(copies):
                sop = uids(f"sop-{index}" if copy == 0 else f"sop-{index}-copy")
                number = instance[k] if copy == 0 else len(keep) + 1
                stored, decoded = storage.encode(scan.hu[index], outside)
                ds = dataset_for(uids, patient, sop_uid=sop, series_uid=series_uid, series_number=2)
                ds.FrameOfReferenceUID = frame_uid
                ds.SeriesDescription = "HEAD " + ("THIN" if scan.spacing[0] < 3 else "5mm")
                ds.SpacingBetweenSlices = round(scan.spacing[0], 4)
                ds.WindowCenter, ds.WindowWidth = _window(rng)
                if scan.tilt:
                    ds.GantryDetectorTilt = round(scan.tilt, 2)
                _image(
                    ds,
                    stored,
                    storage,
                    position=scan.positions[index],
                    orientation=scan.orientation,
                    spacing=scan.spacing[1:],
                    thickness=scan.thickness,
                    instance=number,
                    image_type=["ORIGINAL", "PRIMARY", "AXIAL"],
                )
                path = folder / namer(sop, number)
                _save(ds, path, syntax)
                if copy == 0:
                    written.files.append(path)
                    written.sop_uids.append(sop)
                    written.slice_index.append(index)
                    written.decoded_hu[k] = decoded
                else:
                    # The copy has the highest InstanceNumber: a reader keeps the lowest.
                    written.other_files.append(path)
                    details["duplicate_slice"] = {"slice": index, "copy_sop_instance_uid": sop}
        if "extra_series" in quirks:
            extra, info = write_extra_series(
                scan,
                folder,
                uids=uids,
                patient=patient,
                rng=rng,
                namer=_namer(names, quirks, rng, series_number=3),
            )
            written.other_files += extra
            details["extra_series"] = info
        if "junk" in quirks:
            junk = write_junk(
                folder,
                written.files[0],
                uids=uids,
                patient=patient,
                namer=_namer(names, quirks, rng, series_number=9),
            )
            written.other_files += junk
            details["junk"] = [p.name for p in junk]
    return written


def _window(rng: np.random.Generator) -> tuple[object, object]:
    """Brain window, sometimes multi-valued (brain + bone) as many scanners write it."""
    brain, bone = WINDOW_PRESETS["adjacent"][0], WINDOW_PRESETS["adjacent"][2]
    if rng.random() < 0.3:
        return [_ds(brain[0]), _ds(bone[0])], [_ds(brain[1]), _ds(bone[1])]
    return _ds(brain[0]), _ds(brain[1])


def _ds(value: float) -> int | float:
    """A window value as written: whole numbers without a decimal point (``40``, not ``40.0``)."""
    return int(value) if float(value).is_integer() else float(value)


def _instance_numbers(n: int, quirks: frozenset[str], rng: np.random.Generator) -> np.ndarray:
    """InstanceNumbers of the kept slices in z order: monotonic either way, or scrambled."""
    numbers = np.arange(1, n + 1)
    if "instance_numbers" in quirks:
        order = rng.permutation(n)
        while n > 2 and (np.all(np.diff(order) > 0) or np.all(np.diff(order) < 0)):
            order = rng.permutation(n)
        return numbers[order]
    return numbers if rng.random() < 0.5 else numbers[::-1]


def _namer(
    style: str, quirks: frozenset[str], rng: np.random.Generator, series_number: int
) -> Callable[[str, int], str]:
    """File name for (SOPInstanceUID, InstanceNumber) in the layout's style."""
    shuffled = "shuffled_names" in quirks
    if style == "rsna":
        return lambda sop, number: f"{sop}.dcm"
    if style == "cq500":
        if shuffled:
            # Unique random numbers, so file order says nothing about slice order.
            pool = iter(rng.permutation(10**6)[:4096])
            return lambda sop, number: f"CT{int(next(pool)):06d}.dcm"
        return lambda sop, number: f"CT{series_number * 1000 + number:06d}.dcm"
    if shuffled:
        return lambda sop, number: rng.bytes(16).hex()
    return lambda sop, number: f"IM-{series_number:04d}-{number:04d}.dcm"


def _outside_fov(scan: SyntheticScan) -> np.ndarray:
    """Pixels outside the circular reconstruction field of view."""
    size = scan.hu.shape[-1]
    r = np.hypot(*np.meshgrid(np.arange(size) - (size - 1) / 2, np.arange(size) - (size - 1) / 2))
    return r > 0.5 * size * 0.98
