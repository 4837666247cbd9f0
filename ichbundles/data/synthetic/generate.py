"""Generate a synthetic head-CT dataset: DICOM series, optional NIfTI, labels and a manifest."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ichbundles import __version__

from .dicom_writer import WrittenSeries, write_series
from .preview import preview_tiles, save_grid, select_tiles
from .quirks import UidFactory, available_syntaxes, expand_quirks, scan_quirks, tilt_for
from .scan import MIN_SIZE, SyntheticScan, make_scan
from .stress import Stress, parse_stress
from .tables import (
    simulate_reads,
    write_atomic,
    write_labels_csv,
    write_reads_csv,
    write_scan_labels_csv,
)

__all__ = ["GENERATOR", "LAYOUTS", "MIN_SIZE", "generate_dataset", "scan_seed"]

#: Generator name and format version recorded in the manifest.
GENERATOR = "ichbundles.synthetic/2"  # 2: acquisition (spacing, slab, kernel, calibration)
LAYOUTS = ("folders", "rsna", "cq500")
_log = logging.getLogger(__name__)


def scan_seed(seed: int, index: int) -> int:
    """Seed of scan ``index`` in a dataset made with ``seed`` (independent of worker count)."""
    return int(np.random.SeedSequence(seed, spawn_key=(index,)).generate_state(1)[0])


@dataclass(frozen=True)
class _Task:
    index: int
    seed: int
    out: str
    size: int
    thin: bool
    quirks: tuple[str, ...]
    nifti: bool
    layout: str
    dataset_seed: int
    preview: bool
    stress: Stress


def _is_thin(scan_seed: int, thin_fraction: float) -> bool:
    """Whether a scan of a mixed dataset is thin-sliced: a draw of its own seed's stream."""
    return thin_fraction > 0.0 and np.random.default_rng([scan_seed, 5]).random() < thin_fraction


def _paths(task: _Task) -> tuple[str, Path, str, str, str]:
    """Scan id, series folder, file naming, UID style and PatientName of a task's layout."""
    out = Path(task.out)
    i = task.index
    if task.layout == "rsna":
        return f"scan-{i:04d}", out / "stage_2_train", "rsna", "rsna", f"SYNTH^{i:04d}"
    if task.layout == "cq500":
        series = "CT PLAIN THIN" if task.thin else "CT 5mm"
        folder = out / f"CQ500CT{i} CQ500CT{i}" / "Unknown Study" / series
        return f"CQ500-CT-{i}", folder, "cq500", "dicom", f"SYNTH^{i:04d}"
    return f"scan-{i:04d}", out / "dicom" / f"scan-{i:04d}", "default", "dicom", f"SYNTH^{i:04d}"


def _build(task: _Task) -> dict:
    """Render, write and label one scan (runs in a worker process)."""
    scan_id, folder, names, style, patient = _paths(task)
    quirks = scan_quirks(task.quirks, task.index, task.layout)
    quirk_rng = np.random.default_rng([task.seed, 2])
    tilt = tilt_for(quirk_rng) if "tilt" in quirks else 0.0
    scan = make_scan(task.seed, task.size, task.thin, tilt=tilt, stress=task.stress)
    acquisition = dataclasses.asdict(scan.acquisition)
    syntaxes = available_syntaxes()
    syntax = syntaxes[task.index % len(syntaxes)] if "compressed" in quirks and syntaxes else None
    key = f"{task.dataset_seed}/{task.index}"
    # a stressed copy of a scan is another series: it must not reuse the unstressed UIDs
    uids = UidFactory(f"{key}/stress:{task.stress.tag()}" if task.stress else key, style)
    written = write_series(
        scan,
        folder,
        uids=uids,
        patient=patient,
        quirks=quirks,
        rng=quirk_rng,
        syntax=syntax,
        names=names,
    )
    out = Path(task.out)
    nifti = _write_nifti(scan, written, out / "nifti") if task.nifti else None
    slice_labels = scan.slice_labels[written.slice_index]
    scan_labels = slice_labels.max(axis=0)
    record = {
        "scan_id": scan_id,
        "seed": task.seed,
        "study_instance_uid": written.study_uid,
        "series_instance_uid": written.series_uid,
        "frame_of_reference_uid": written.frame_uid,
        "folder": folder.relative_to(out).as_posix(),
        "n_slices": len(written.files),
        "spacing": list(scan.spacing),
        "thickness": scan.thickness,
        "thin": task.thin,
        "acquisition": {k: v for k, v in acquisition.items() if k != "slab_offsets"},
        "quirks": sorted(quirks),
        "quirk_details": written.details,
        "lesions": _kept_lesions(scan, written),
        "scan_labels": [int(v) for v in scan_labels],
        "nifti": nifti,
        "sop_uids": written.sop_uids,
        "slice_labels": slice_labels.tolist(),
    }
    record["reads"] = simulate_reads(
        scan_labels, record["lesions"], np.random.default_rng([task.seed, 3])
    )
    record["tiles"] = preview_tiles(scan, scan_id) if task.preview else []
    if task.stress:  # only then: unstressed manifests stay as they were
        record["factors"] = scan.factors
    return record


def _kept_lesions(scan: SyntheticScan, written: WrittenSeries) -> list[dict]:
    """Lesion records with slice indices renumbered to the written (kept) slices."""
    position = {index: k for k, index in enumerate(written.slice_index)}
    return [
        {**les, "slices": [position[i] for i in les["slices"] if i in position]}
        for les in scan.lesions
    ]


def _write_nifti(scan: SyntheticScan, written: WrittenSeries, folder: Path) -> str | None:
    """NIfTI of the kept slices in RAS, or None when a gap makes the spacing uneven.

    The array is stored (x, y, z) = (column, row, slice) with an affine built from the DICOM
    LPS geometry (x and y negated), so reorienting to LPS gives back the DICOM arrays exactly.
    """
    import nibabel as nib

    positions = scan.positions[written.slice_index]
    steps = np.diff(positions, axis=0)
    if len(steps) and not np.allclose(steps, steps[0], atol=1e-4):
        return None
    row, col = np.asarray(scan.orientation[:3]), np.asarray(scan.orientation[3:])
    lps = np.eye(4)
    lps[:3, 0] = row * scan.spacing[2]
    lps[:3, 1] = col * scan.spacing[1]
    lps[:3, 2] = steps[0] if len(steps) else np.cross(row, col) * scan.spacing[0]
    lps[:3, 3] = positions[0]
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    data = written.decoded_hu.transpose(2, 1, 0)
    if np.array_equal(data, np.rint(data)):
        data = data.astype(np.int16)
    image = nib.Nifti1Image(data, affine)
    image.header.set_xyzt_units("mm", "sec")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{written.series_uid}.nii.gz"
    nib.save(image, path)
    return path.relative_to(folder.parent).as_posix()


def _check_arguments(
    out: str | os.PathLike,
    n_scans: int,
    size: int,
    quirks: str | tuple[str, ...] | list[str] | frozenset[str],
    layout: str,
    preview: str | os.PathLike | None,
) -> tuple[str, ...]:
    """Validate ``generate_dataset``'s arguments (one-line errors); returns the quirk names."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose from {', '.join(LAYOUTS)}")
    requested = expand_quirks(quirks)
    if n_scans < 1:
        raise ValueError(f"n_scans must be at least 1, got {n_scans}")
    if size < MIN_SIZE:
        raise ValueError(f"size must be at least {MIN_SIZE} pixels, got {size}")
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"output folder {root} exists and is not a folder")
    _check_parents(root, f"output folder {root}")
    if preview is not None:
        if Path(preview).is_dir():
            raise IsADirectoryError(f"preview {preview} is a folder; give a PNG file path")
        _check_parents(Path(preview), f"preview {preview}")
    return requested


def _check_parents(path: Path, what: str) -> None:
    """Raise NotADirectoryError when a folder above ``path`` exists as a file."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(f"cannot create {what}: {parent} is a file")
            return


def generate_dataset(
    out: str | os.PathLike,
    n_scans: int,
    *,
    size: int = 256,
    seed: int = 0,
    workers: int = 1,
    quirks: str | tuple[str, ...] | list[str] | frozenset[str] = (),
    thin: bool = False,
    thin_fraction: float = 0.0,
    nifti: bool = False,
    layout: str = "folders",
    preview: str | os.PathLike | None = None,
    progress: bool = True,
    stress: Stress | Mapping[str, float] | Iterable[str] | None = None,
) -> Path:
    """Generate ``n_scans`` synthetic head CTs with labels.

    Scan ``i`` is rendered from :func:`scan_seed` ``(seed, i)``, so the output is the same for
    any number of workers. The manifest is written last (temporary file + rename): its presence
    means the dataset is complete.

    Args:
        out: output folder (created).
        n_scans: number of scans.
        size: rows and columns of the images (at least ``MIN_SIZE``).
        seed: dataset seed.
        workers: processes; 1 renders in this process.
        quirks: archive quirks to apply (names from ``QUIRK_CHOICES``: ``QUIRKS`` or ``"all"``).
        thin: every scan thin-sliced (0.625-2.5 mm) instead of thick (3-5 mm).
        thin_fraction: else this share of the scans thin-sliced, each chosen by its own seed.
        nifti: also write ``nifti/<SeriesInstanceUID>.nii.gz``.
        layout: ``"folders"``, ``"rsna"`` (flat ``stage_2_train/``) or ``"cq500"``.
        preview: PNG path for a contact sheet of labelled slices.
        progress: show a progress bar.
        stress: factors pushed outside their normal range for a robustness set (a ``Stress``,
            ``{name: value}`` or ``"name=value"`` strings; see ``stress.FACTORS``): the scans of
            ``seed`` with only those factors changed, their own UIDs, the stress under
            ``arguments`` and each scan's realised ``factors`` in the manifest.

    Returns:
        Path of ``manifest.json``.

    Raises:
        ValueError: unknown quirk or layout, ``n_scans < 1``, ``size < MIN_SIZE``,
            ``thin_fraction`` outside [0, 1], or an unknown stress factor or bad value.
        NotADirectoryError: ``out`` (or a folder above it, or above ``preview``) is a file.
        IsADirectoryError: ``preview`` is a folder.
        All raised before anything is written.
    """
    requested = _check_arguments(out, n_scans, size, quirks, layout, preview)
    if not 0.0 <= thin_fraction <= 1.0:
        raise ValueError(f"thin_fraction must be between 0 and 1, got {thin_fraction}")
    stress = parse_stress(stress)
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    tasks = [
        _Task(
            i,
            scan_seed(seed, i),
            str(root),
            size,
            thin or _is_thin(scan_seed(seed, i), thin_fraction),
            requested,
            nifti,
            layout,
            seed,
            preview is not None,
            stress,
        )
        for i in range(n_scans)
    ]
    bar = tqdm(total=n_scans, desc="synthetic scans", unit="scan", disable=not progress)
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            records = []
            for record in pool.map(_build, tasks):
                records.append(record)
                bar.update()
    else:
        records = []
        for task in tasks:
            records.append(_build(task))
            bar.update()
    bar.close()

    if preview is not None:
        Path(preview).parent.mkdir(parents=True, exist_ok=True)
        save_grid(select_tiles([t for r in records for t in r["tiles"]]), preview)
    write_labels_csv(root / "labels.csv", records)
    if layout == "rsna":
        write_labels_csv(root / "stage_2_train.csv", records, duplicates=2, seed=seed)
    write_scan_labels_csv(root / "scan_labels.csv", records)
    write_reads_csv(root / "reads.csv", records)
    manifest = {
        "generator": GENERATOR,
        "version": __version__,
        "arguments": {
            "n_scans": n_scans, "size": size, "seed": seed, "quirks": list(requested),
            "thin": thin, "thin_fraction": thin_fraction, "nifti": nifti, "layout": layout,
            **({"stress": stress.values()} if stress else {}),  # unstressed manifests unchanged
        },
        "compressed_syntaxes": [str(uid) for uid in available_syntaxes()],
        "scans": [
            {k: v for k, v in r.items() if k not in ("tiles", "sop_uids", "slice_labels", "reads")}
            for r in records
        ],
    }  # fmt: skip
    path = root / "manifest.json"
    write_atomic(path, json.dumps(manifest, indent=1))
    _log.info("wrote %d synthetic scans to %s", n_scans, root)
    return path
