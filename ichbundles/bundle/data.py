"""Datalists of bundle configs: the labelled items of a data folder and a deterministic split."""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from pathlib import Path

from ichbundles.data import folder_items

__all__ = ["SPLITS", "fold_items", "folder_datalist", "split_items"]

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


def fold_items(
    items: Sequence[dict], folds: int, fold: int, part: str = "train", key: str = "name"
) -> list[dict]:
    """One part of a deterministic k-fold split: fold ``fold`` held out, the others kept.

    Items are ranked by the SHA-256 of ``item[key]`` (as in :func:`split_items`) and dealt to
    the folds in turn, so fold sizes differ by at most one and depend only on the items' keys.

    Args:
        items: the datalist.
        folds: number of folds, at least 2.
        fold: the held-out fold, in ``[0, folds)``.
        part: ``"train"`` (every fold but ``fold``) or ``"validation"`` (fold ``fold``).
        key: item key that names a scan.

    Returns:
        The items of ``part``, in their input order.

    Raises:
        ValueError: fewer than 2 folds, fewer items than folds, a fold out of range or an
            unknown part.
    """
    if part not in SPLITS:
        raise ValueError(f"part must be one of {SPLITS}, got {part!r}")
    if folds < 2 or not 0 <= fold < folds:
        raise ValueError(f"need folds >= 2 and 0 <= fold < folds, got fold {fold} of {folds}")
    if len(items) < folds:
        raise ValueError(f"{folds} folds need at least {folds} items, got {len(items)}")
    ranked = sorted(range(len(items)), key=lambda i: _rank(items[i], key))
    held_out = {index for position, index in enumerate(ranked) if position % folds == fold}
    want_val = part == "validation"
    return [item for i, item in enumerate(items) if (i in held_out) == want_val]
