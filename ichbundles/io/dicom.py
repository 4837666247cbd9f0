"""Read one CT series from DICOM files: selection, ordering, Hounsfield units, archive quirks.

MONAI's ``PydicomReader`` orders slices by InstanceNumber and ITK's series reader stops at the
first inconsistent file, so the project reads DICOM itself: pydicom parses every header once
(pixel data deferred), the series is chosen from the headers, and only its slices are decoded,
straight into one preallocated float32 volume.
"""

from __future__ import annotations

import logging
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import pixel_array as decode_pixels
from pydicom.uid import UID

from ichbundles.io.geometry import gantry_tilt_degrees, order_along_normal, slice_gaps
from ichbundles.io.headers import NotDicomError, dcmread_lenient, header_record
from ichbundles.io.hounsfield import RescaleParams, rescale_params, stored_to_hu
from ichbundles.io.selection import (
    choose_series,
    is_localizer,
    orientation_key,
    position_groups,
    series_kind,
)
from ichbundles.io.series import CTSeries, SeriesReadError

__all__ = ["list_files", "read_dicom_series"]

logger = logging.getLogger(__name__)

# Elements larger than this stay on disk until used: the headers of every file are parsed, but
# only the chosen series' pixel data is ever read.
_DEFER_SIZE = "64 KB"


@dataclass
class _Image:
    """A readable DICOM image file and its PHI-free header record."""

    path: Path
    name: str
    ds: Dataset
    record: dict

    @property
    def orientation_key(self) -> tuple[float, ...]:
        return orientation_key(_iop(self.record))


@dataclass
class _Slice:
    """One slice to decode: its identity, position and how to get its stored values."""

    sop_instance_uid: str
    position: np.ndarray
    instance_number: float
    name: str
    load: Callable[[], np.ndarray]
    params: RescaleParams


def _iop(record: dict) -> np.ndarray:
    return np.array([float(v) for v in str(record["iop"]).split("\\")], dtype=np.float64)


def list_files(source: str | os.PathLike | Sequence[str | os.PathLike]) -> tuple[list[Path], Path]:
    """The files to consider and the path to name in messages.

    A folder is searched recursively (sorted, so results do not depend on the file system); a
    file or a list of files is taken as given.
    """
    if isinstance(source, (str, os.PathLike)):
        root = Path(source)
        if root.is_dir():
            files = sorted(
                Path(folder) / name
                for folder, _, names in os.walk(root)
                for name in names
                if not name.startswith(".")
            )
            return files, root
        if not root.exists():
            raise SeriesReadError(root, "no such file or folder")
        return [root], root
    files = [Path(p) for p in source]
    if not files:
        raise SeriesReadError("<empty file list>", "no files given")
    return files, files[0].parent


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix() if root.is_dir() else path.name
    except ValueError:
        return str(path)


def _read_images(files: list[Path], root: Path, warnings: list[str]) -> list[_Image]:
    """Parse every file's header; skip (with a warning) what is not a readable DICOM image."""
    images = []
    for path in files:
        name = _relative(path, root)
        try:
            size = path.stat().st_size
            if size == 0:
                warnings.append(f"skipped {name}: empty file (0 bytes)")
                continue
            ds = dcmread_lenient(path, defer_size=_DEFER_SIZE)
            record = header_record(ds, path, size)
        except NotDicomError:
            warnings.append(f"skipped {name}: not a DICOM file")
            continue
        except Exception as error:  # damaged files raise many types inside pydicom
            warnings.append(f"skipped {name}: unreadable DICOM ({type(error).__name__})")
            continue
        if "PixelData" not in ds:
            # an image (by its header or SOP class) whose pixel data never came: cut short
            if "Rows" in ds or "Image Storage" in UID(record["sop_class_uid"]).name:
                warnings.append(f"skipped {name}: no pixel data (truncated or damaged file)")
            else:
                sop_class = record["sop_class_uid"] or "unknown SOP class"
                warnings.append(f"skipped {name}: not an image ({sop_class})")
            continue
        images.append(_Image(path, name, ds, record))
    return images


def _select_series(
    images: list[_Image], series_uid: str | None, root: Path, warnings: list[str]
) -> list[_Image]:
    """Choose the series: the given UID, else the axial CT series with the most images."""
    by_series: dict[str, list[_Image]] = defaultdict(list)
    for image in images:
        by_series[image.record["series_instance_uid"]].append(image)
    kinds = {
        uid: series_kind(
            members[0].record["modality"],
            [m.record["image_type"] for m in members],
            [_iop(m.record) for m in members],
        )
        for uid, members in by_series.items()
    }

    def describe(uid: str) -> str:
        return f"series {uid} ({len(by_series[uid])} images, {kinds[uid]})"

    if series_uid is not None:
        if series_uid not in by_series:
            raise SeriesReadError(
                root, f"series {series_uid} not found ({len(by_series)} series present)"
            )
        chosen = series_uid
        if kinds[chosen].startswith("not CT") or kinds[chosen] == "scout/localizer":
            raise SeriesReadError(root, f"{describe(chosen)} is not a CT image series")
    else:
        chosen = choose_series(kinds, {uid: len(members) for uid, members in by_series.items()})
        if chosen is None:
            if all(kind.startswith("not CT") for kind in kinds.values()):
                modalities = sorted({m.record["modality"] or "none" for m in images})
                raise SeriesReadError(
                    root, f"no CT series (modalities found: {', '.join(modalities)})"
                )
            found = "; ".join(describe(uid) for uid in sorted(by_series))
            raise SeriesReadError(root, f"no axial CT series (found {found})")
    for uid in sorted(by_series):
        if uid != chosen:
            reason = "fewer images" if kinds[uid] == "axial" else "not chosen"
            warnings.append(f"skipped {describe(uid)}: {reason}")

    kept = []
    for image in by_series[chosen]:
        if is_localizer(image.record["image_type"]):
            warnings.append(f"skipped {image.name}: scout/localizer image")
        else:
            kept.append(image)
    return kept


def _single_frame_slices(
    images: list[_Image], warnings: list[str]
) -> tuple[list[_Slice], tuple[float, ...]]:
    """One slice per file, keeping the series' majority orientation and a consistent size."""
    orientation = Counter(image.orientation_key for image in images).most_common(1)[0][0]
    size = Counter((i.record["rows"], i.record["columns"]) for i in images).most_common(1)[0][0]
    slices = []
    for image in images:
        if image.orientation_key != orientation:
            warnings.append(f"skipped {image.name}: orientation differs from the series")
            continue
        if (image.record["rows"], image.record["columns"]) != size:
            raise SeriesReadError(
                image.path,
                f"slice size {image.record['rows']}x{image.record['columns']} differs from "
                f"{size[0]}x{size[1]} of the other slices in the series",
            )
        position = np.array([image.record[k] for k in ("ipp_x", "ipp_y", "ipp_z")], float)
        slices.append(
            _Slice(
                sop_instance_uid=image.record["sop_instance_uid"],
                position=position,
                instance_number=image.record["instance_number"],
                name=image.name,
                load=_file_loader(image.ds),
                params=rescale_params(image.ds),
            )
        )
    return slices, orientation


def _file_loader(ds: Dataset) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        try:
            return decode_pixels(ds)
        finally:
            # Drop the pixel bytes read from disk: only the float32 volume should stay in memory.
            if "PixelData" in ds:
                del ds.PixelData

    return load


def _multi_frame_slices(image: _Image) -> tuple[list[_Slice], tuple[float, ...]]:
    """One slice per frame of an enhanced (multi-frame) CT image."""
    ds = image.ds
    shared = (
        ds.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in ds else None
    )
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    n_frames = image.record["number_of_frames"]
    if per_frame is None or len(per_frame) != n_frames:
        raise SeriesReadError(image.path, "multi-frame image without per-frame geometry")

    def item(frame: Dataset, keyword: str) -> Dataset | None:
        for group in (frame, shared):
            if group is not None and keyword in group and len(group[keyword].value):
                return group[keyword].value[0]
        return None

    frames: list[np.ndarray] = []

    def frame_loader(index: int) -> Callable[[], np.ndarray]:
        def load() -> np.ndarray:
            if not frames:
                frames.append(np.asarray(_file_loader(ds)()).reshape(n_frames, *_shape(image)))
            return frames[0][index]

        return load

    slices, orientations = [], []
    for index, frame in enumerate(per_frame):
        plane = item(frame, "PlanePositionSequence")
        orient = item(frame, "PlaneOrientationSequence")
        if plane is None or orient is None:
            raise SeriesReadError(image.path, f"frame {index + 1} has no position or orientation")
        orientations.append(tuple(float(v) for v in orient.ImageOrientationPatient))
        slices.append(
            _Slice(
                sop_instance_uid=image.record["sop_instance_uid"],
                position=np.array([float(v) for v in plane.ImagePositionPatient]),
                instance_number=float(index + 1),
                name=f"{image.name} frame {index + 1}",
                load=frame_loader(index),
                params=rescale_params(ds, item(frame, "PixelValueTransformationSequence")),
            )
        )
    if len({orientation_key(o) for o in orientations}) > 1:
        raise SeriesReadError(image.path, "frames have different orientations")
    return slices, orientations[0]


def _shape(image: _Image) -> tuple[int, int]:
    return image.record["rows"], image.record["columns"]


def _assemble(
    slices: list[_Slice],
    orientation: Sequence[float],
    record: dict,
    root: Path,
    warnings: list[str],
) -> CTSeries:
    """Order, de-duplicate and decode slices into a CTSeries.

    ``record`` is the header record of the series' first image: UIDs, size, pixel spacing.
    """
    shape = (record["rows"], record["columns"])
    positions = np.stack([s.position for s in slices])
    if not np.all(np.isfinite(positions)):
        raise SeriesReadError(root, "slices without ImagePositionPatient cannot be ordered")
    order, z = order_along_normal(positions, orientation)
    ordered = [slices[i] for i in order]
    groups = position_groups(z, [s.instance_number for s in ordered])

    hu = np.empty((len(groups), *shape), dtype=np.float32)
    decoded: list[_Slice] = []
    fixes: Counter[str] = Counter()
    for group in groups:
        # the preferred copy of a slice stored twice, or the next one when it cannot be decoded
        candidates = [ordered[i] for i in group]
        for rank, item in enumerate(candidates):
            try:
                stored = item.load()
                if stored.shape != shape:
                    raise ValueError(f"decoded shape {stored.shape} is not {shape}")
                fixes["padding pixels"] += stored_to_hu(stored, item.params, out=hu[len(decoded)])
            except Exception as error:  # truncated or undecodable pixel data
                warnings.append(f"skipped {item.name}: pixel data unreadable ({_short(error)})")
                continue
            fixes["RSNA BitsStored-12 wrap"] += item.params.rsna_wrap
            fixes["MONOCHROME1 inversion"] += item.params.monochrome1
            decoded.append(item)
            for duplicate in candidates[rank + 1 :]:
                warnings.append(
                    f"dropped duplicate slice {duplicate.name} (SOP {duplicate.sop_instance_uid})"
                    f" stored at the position of {item.name}"
                )
            break
    if not decoded:
        raise SeriesReadError(root, f"no readable pixel data ({warnings[-1].split(': ', 1)[-1]})")
    hu = hu[: len(decoded)]
    if fixes["RSNA BitsStored-12 wrap"]:
        warnings.append(
            f"fixed the RSNA BitsStored-12 wrap on {fixes['RSNA BitsStored-12 wrap']} slices"
        )
    if fixes["MONOCHROME1 inversion"]:
        warnings.append(f"inverted MONOCHROME1 values on {fixes['MONOCHROME1 inversion']} slices")
    if fixes["padding pixels"]:
        warnings.append(f"set {fixes['padding pixels']} padding pixels (PixelPaddingValue) to air")

    positions = np.stack([s.position for s in decoded])
    _, z = order_along_normal(positions, orientation)
    spacing_z, gaps = slice_gaps(z)
    for gap in gaps:
        warnings.append(
            f"gap of {z[gap] - z[gap - 1]:.2f} mm between slices {gap - 1} and {gap} "
            f"(median spacing {spacing_z:.2f} mm)"
        )
    tilt = gantry_tilt_degrees(positions, orientation)
    if tilt > 0.5:
        warnings.append(f"gantry tilt of {tilt:.1f} degrees (slice positions not along the normal)")
    if spacing_z == 0.0:  # a single slice: its thickness is the best spacing there is
        thickness = record["slice_thickness"]
        spacing_z = thickness if np.isfinite(thickness) else 0.0
    return CTSeries(
        hu=hu,
        spacing=(
            float(spacing_z),
            float(record["pixel_spacing_row"]),
            float(record["pixel_spacing_col"]),
        ),
        sop_instance_uids=tuple(s.sop_instance_uid for s in decoded),
        positions=positions,
        study_instance_uid=record["study_instance_uid"],
        series_instance_uid=record["series_instance_uid"],
        orientation=tuple(float(v) for v in orientation),
        warnings=warnings,
        source=str(root),
        tilt_degrees=tilt,
        gaps=gaps,
    )


def _short(error: Exception) -> str:
    return str(error).splitlines()[0][:160] if str(error) else type(error).__name__


def read_dicom_series(
    source: str | os.PathLike | Sequence[str | os.PathLike], series_uid: str | None = None
) -> CTSeries:
    """Read one CT series from a DICOM folder, a file, or a list of files.

    Args:
        source: a folder (searched recursively; any file names, any order), one file (a single
            slice or an enhanced multi-frame CT image), or a list of files.
        series_uid: the SeriesInstanceUID to read; by default the axial CT series with the most
            images.

    Raises:
        SeriesReadError: nothing readable, no CT series, inconsistent slices; one line naming the
            file or folder and the problem.
    """
    files, root = list_files(source)
    if not files:
        raise SeriesReadError(root, "empty folder")
    warnings: list[str] = []
    images = _read_images(files, root, warnings)
    if not images:
        if len(files) == 1:
            raise SeriesReadError(files[0], warnings[0].split(": ", 1)[-1])
        raise SeriesReadError(root, f"no DICOM image among {len(files)} files")
    chosen = _select_series(images, series_uid, root, warnings)
    first = chosen[0]
    if len(chosen) == 1 and first.record["number_of_frames"] > 1:
        slices, orientation = _multi_frame_slices(first)
    else:
        slices, orientation = _single_frame_slices(chosen, warnings)
    series = _assemble(slices, orientation, first.record, root, warnings)
    logger.info(
        "read series %s: %d slices, %d warnings",
        series.series_instance_uid,
        series.n_slices,
        len(warnings),
    )
    return series
