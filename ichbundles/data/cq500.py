"""CQ500: one item per study (its chosen series) with the readers' majority as scan labels."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ichbundles.data._series import Series, item_of, ordered_series, usable_images
from ichbundles.data.index import get_index
from ichbundles.data.labels import LabelError, read_cq500_reads
from ichbundles.io.selection import AXIAL

__all__ = ["SERIES_CHOICES", "cq500_items"]

logger = logging.getLogger(__name__)


def _measure(series: Series) -> float:
    """Slice spacing in mm; SliceThickness where positions coincide."""
    return series["spacing"] if series["spacing"] > 0 else series["slice_thickness"]


#: Named series choices: each picks one series among a study's candidates.
SERIES_CHOICES: dict[str, Callable[[list[Series]], Series]] = {
    "thin": lambda c: min(c, key=lambda s: (_measure(s), -s["n_slices"])),
    "thick": lambda c: max(c, key=lambda s: (_measure(s), s["n_slices"])),
    "most_slices": lambda c: max(c, key=lambda s: (s["n_slices"], -_measure(s))),
}


def _candidate(series: Series, exclude: re.Pattern) -> str:
    """Why a series cannot represent its study ("" when it can)."""
    if series["kind"] != AXIAL:
        return series["kind"]
    if series["n_slices"] < 2:
        return "a single slice"
    tags = (series["series_description"], series["convolution_kernel"], series["image_type"])
    match = next((exclude.search(t) for t in tags if exclude.search(t)), None)
    return f"excluded by {match.group(0)!r}" if match else ""


def _study_name(path: str, names: set[str], numbers: dict[int, str], pattern: re.Pattern) -> str:
    """The reads name of the first folder of ``path`` that names a study ("" when none does).

    Raises:
        KeyError: the folder names a study number that ``reads.csv`` lacks (the folder's name).
    """
    for folder in path.split("/")[:-1]:
        if folder in names:
            return folder
        match = pattern.search(folder)
        if match:
            number = int(match.group(1))
            if number not in numbers:
                raise KeyError(folder)
            return numbers[number]
    return ""


def cq500_items(
    root: str | os.PathLike,
    reads_csv: str | os.PathLike,
    index: str | os.PathLike | pd.DataFrame | None = None,
    series_choice: str | Callable[[list[Series]], Series] = "thin",
    exclude_description: str = r"(?i)bone|scout|localizer|topogram",
    name_pattern: str = r"CQ500[-_ ]?CT[-_ ]?(\d+)",
    strict: bool = True,
) -> list[dict]:
    """Items of CQ500: one series per study, chosen among its axial CT series.

    Study folders are matched to the ``name`` column of ``reads.csv`` by the number that
    ``name_pattern`` captures (``CQ500-CT-12`` matches ``CQ500CT12 CQ500CT12/``) or by an exact
    folder name, at any depth under ``root``.

    Args:
        root: the folder holding the study folders.
        reads_csv: CQ500 ``reads.csv``.
        index: a header index of ``root`` (DataFrame or parquet path); scanned when None.
        series_choice: ``"thin"`` (smallest slice spacing, ties to more slices), ``"thick"``
            (largest), ``"most_slices"``, or a callable taking the candidate series dicts
            (keys ``series_instance_uid``, ``series_description``, ``convolution_kernel``,
            ``n_slices``, ``spacing``, ``slice_thickness``, ...) and returning one of them.
        exclude_description: regex; series whose SeriesDescription, ConvolutionKernel or
            ImageType it matches are never chosen (bone kernels, scouts).
        name_pattern: regex whose group 1 is the study number in names and folder names.
        strict: raise when a name of ``reads.csv`` has no usable series; else warn and skip it.

    Returns:
        Items in study-number order with keys ``image``, ``sop_instance_uids``,
        ``series_instance_uid``, ``study_instance_uid``, ``name`` (as in ``reads.csv``) and
        ``scan_labels`` (6,) float32; no ``slice_labels`` (CQ500 has none).

    Raises:
        LabelError: with ``strict``, names without a usable series.
        ValueError: an unknown ``series_choice``.
    """
    if callable(series_choice):
        choose = series_choice
    elif series_choice in SERIES_CHOICES:
        choose = SERIES_CHOICES[series_choice]
    else:
        raise ValueError(f"series_choice must be one of {sorted(SERIES_CHOICES)} or a callable")
    root = Path(root)
    reads = read_cq500_reads(reads_csv)
    pattern, exclude = re.compile(name_pattern), re.compile(exclude_description)
    names = set(reads.index)
    numbers = {int(m.group(1)): n for n in reads.index if (m := pattern.search(n))}

    studies: dict[str, list[Series]] = {}
    unknown: set[str] = set()
    for series in ordered_series(usable_images(get_index(root, index))):
        uid = series["series_instance_uid"]
        try:
            name = _study_name(series["paths"][0], names, numbers, pattern)
        except KeyError as folder:
            unknown.add(folder.args[0])
            continue
        reason = _candidate(series, exclude) if name else "not in a study folder"
        if reason:
            logger.debug("series %s is no candidate: %s", uid, reason)
        else:
            studies.setdefault(name, []).append(series)
    for folder in sorted(unknown):
        logger.warning("skipping folder %s: its study is not in %s", folder, reads_csv)

    missing = [n for n in reads.index if n not in studies]
    if missing and strict:
        problem = f"{len(missing)} studies have no usable series under {root} (e.g. {missing[0]})"
        raise LabelError(reads_csv, problem)
    for name in missing:
        logger.warning("skipping %s: no usable series under %s", name, root)

    def order(name: str) -> tuple[float, str]:
        match = pattern.search(name)
        return (int(match.group(1)) if match else np.inf, name)

    items = []
    for name in sorted(studies, key=order):
        item = item_of(choose(studies[name]), root, name)
        item["scan_labels"] = reads.loc[name].to_numpy(dtype=np.float32)
        items.append(item)
    return items
