"""Datalists of bundle configs: the labelled items of a data folder and a deterministic split."""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from pathlib import Path

from ichbundles.data import folder_items

__all__ = ["SPLITS", "folder_datalist", "split_items"]

SPLITS = ("train", "validation")


def folder_datalist(dataset_dir: str | os.PathLike, strict: bool = True) -> list[dict]:
    """Labelled items of a folder laid out like ``ichbundles synth`` writes it.

    The series are under ``dataset_dir/dicom`` (or ``dataset_dir`` itself when it has no
    ``dicom`` folder) and the RSNA-format slice labels in ``dataset_dir/labels.csv``.

    Args:
        dataset_dir: the data folder.
        strict: raise when labels and series do not match; else drop the unmatched ones.

    Raises:
        FileNotFoundError: no ``labels.csv``.
    """
    root = Path(dataset_dir)
    labels = root / "labels.csv"
    if not labels.is_file():
        raise FileNotFoundError(f"no slice labels: {labels} (RSNA format ID,Label)")
    images = root / "dicom" if (root / "dicom").is_dir() else root
    return folder_items(images, slice_labels_csv=labels, strict=strict)


def _rank(item: dict, key: str) -> str:
    return hashlib.sha256(str(item[key]).encode()).hexdigest()


def split_items(
    items: Sequence[dict], val_fraction: float = 0.2, part: str = "train", key: str = "name"
) -> list[dict]:
    """One part of a deterministic train/validation split.

    Items are ranked by the SHA-256 of ``item[key]``; the first ``ceil(val_fraction * n)``
    are the validation part. The split depends only on the items' keys, not on their order,
    and an item keeps its part when others are added only if its rank stays below the cut.
    With ``val_fraction > 0`` and at least two items both parts are non-empty.

    Args:
        items: the datalist.
        val_fraction: share of items in the validation part, in [0, 1).
        part: ``"train"`` or ``"validation"``.
        key: item key that names a scan.

    Returns:
        The items of ``part``, in their input order.

    Raises:
        ValueError: unknown part or fraction outside [0, 1).
    """
    if part not in SPLITS:
        raise ValueError(f"part must be one of {SPLITS}, got {part!r}")
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n_val = math.ceil(val_fraction * len(items))
    if len(items) >= 2:
        n_val = min(n_val, len(items) - 1)
    ranked = sorted(range(len(items)), key=lambda i: _rank(items[i], key))
    validation = set(ranked[:n_val])
    want_val = part == "validation"
    return [item for i, item in enumerate(items) if (i in validation) == want_val]
