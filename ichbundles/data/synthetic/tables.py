"""Label files of a synthetic dataset: RSNA slice labels, scan labels and CQ500 reader reads."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from ichbundles.constants import CQ500_READER_COLUMNS, ICH_CLASSES, SUBTYPES

__all__ = [
    "READ_COLUMNS",
    "simulate_reads",
    "write_atomic",
    "write_labels_csv",
    "write_reads_csv",
    "write_scan_labels_csv",
]

# CQ500 reads.csv reader columns, in the file's order.
_READ_ITEMS = (
    "ICH", "IPH", "IVH", "SDH", "EDH", "SAH", "BleedLocation-Left", "BleedLocation-Right",
    "ChronicBleed", "Fracture", "CalvarialFracture", "OtherFracture", "MassEffect", "MidlineShift",
)  # fmt: skip
#: Full reads.csv header.
READ_COLUMNS: tuple[str, ...] = (
    "name",
    "Category",
    *tuple(f"R{r}:{item}" for r in (1, 2, 3) for item in _READ_ITEMS),
)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` via a temporary file and a rename, so readers never see half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _csv_text(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def write_labels_csv(path: Path, scans: Sequence[dict], duplicates: int = 0, seed: int = 0) -> None:
    """RSNA-style ``ID,Label`` rows (``ID_<SOPInstanceUID>_<class>``) for every kept slice.

    Args:
        path: CSV to write.
        scans: per-scan records with ``sop_uids`` and ``slice_labels`` ((n, 6) lists).
        duplicates: repeat this many slices' six rows at the end, as in the real RSNA file.
        seed: chooses the repeated slices.
    """
    rows = []
    for scan in scans:
        for sop, labels in zip(scan["sop_uids"], scan["slice_labels"], strict=True):
            rows.extend(
                (f"{_id(sop)}_{name}", int(v)) for name, v in zip(ICH_CLASSES, labels, strict=True)
            )
    if duplicates and rows:
        rng = np.random.default_rng(seed)
        for start in rng.choice(
            len(rows) // 6, size=min(duplicates, len(rows) // 6), replace=False
        ):
            rows.extend(rows[6 * start : 6 * start + 6])
    write_atomic(path, _csv_text(("ID", "Label"), rows))


def _id(sop: str) -> str:
    """RSNA IDs start with ``ID_``; the RSNA layout's SOPInstanceUIDs already do."""
    return sop if sop.startswith("ID_") else f"ID_{sop}"


def write_scan_labels_csv(path: Path, scans: Sequence[dict]) -> None:
    """``scan_id,study_instance_uid,series_instance_uid,<6 classes>``."""
    header = ("scan_id", "study_instance_uid", "series_instance_uid", *ICH_CLASSES)
    rows = [
        (s["scan_id"], s["study_instance_uid"], s["series_instance_uid"], *s["scan_labels"])
        for s in scans
    ]
    write_atomic(path, _csv_text(header, rows))


def simulate_reads(
    scan_labels: Sequence[int], lesions: Sequence[dict], rng: np.random.Generator
) -> list[dict[str, int]]:
    """Three readers who mostly agree with the truth.

    Each reader misses a present subtype with probability 0.05 (0.3 when all its lesions are
    subtle) and calls an absent one with probability 0.015; the location, mass effect and
    midline shift follow the lesions the reader called.
    """
    reads = []
    for _ in range(3):
        called = {}
        for k, subtype in enumerate(SUBTYPES):
            own = [les for les in lesions if les["type"] == subtype and les["slices"]]
            if scan_labels[k]:
                miss = 0.3 if all(les["subtle"] for les in own) else 0.05
                called[subtype] = int(rng.random() >= miss)
            else:
                called[subtype] = int(rng.random() < 0.015)
        seen = [les for les in lesions if les["slices"] and called[les["type"]]]
        big = [les for les in seen if not les["subtle"] and _mass(les) >= 12.0]
        read = {CQ500_READER_COLUMNS[s]: v for s, v in called.items()}
        read["ICH"] = int(any(called.values()))
        read["BleedLocation-Left"] = int(any(les["side"] in ("left", "both") for les in seen))
        read["BleedLocation-Right"] = int(any(les["side"] in ("right", "both") for les in seen))
        for item in ("ChronicBleed", "Fracture", "CalvarialFracture", "OtherFracture"):
            read[item] = 0
        read["MassEffect"] = int(bool(big))
        read["MidlineShift"] = int(any(_mass(les) >= 18.0 for les in big))
        reads.append(read)
    return reads


def _mass(lesion: dict) -> float:
    """Size (mm) that drives mass effect: thickness of extra-axial, radius of parenchymal."""
    size = lesion["size_mm"]
    if lesion["type"] in ("epidural", "subdural"):
        return float(size[1])
    if lesion["type"] == "intraparenchymal":
        return float(size[0])
    return 0.0


def write_reads_csv(path: Path, scans: Sequence[dict]) -> None:
    """CQ500 ``reads.csv``: one row per scan, ``name`` = scan id, three readers."""
    rows = []
    for scan in scans:
        values = [scan["scan_id"], "B1"]
        for read in scan["reads"]:
            values.extend(read[item] for item in _READ_ITEMS)
        rows.append(values)
    write_atomic(path, _csv_text(READ_COLUMNS, rows))
