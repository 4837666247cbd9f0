"""Which series of a folder is the CT scan, and which of its images are slices.

These rules are shared by :func:`ichbundles.io.read_series` (on the headers it parses) and by the
dataset builders of :mod:`ichbundles.data` (on the header index), so that a dataset item lists
exactly the slices that reading its folder gives.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from ichbundles.io.geometry import plane_of

__all__ = [
    "AXIAL",
    "DUPLICATE_TOLERANCE_MM",
    "choose_series",
    "is_localizer",
    "one_per_position",
    "orientation_key",
    "position_groups",
    "series_kind",
]

#: The kind of a series that can be read as a head CT scan.
AXIAL = "axial"
#: Two slices closer than this along the normal (mm) are the same slice stored twice.
DUPLICATE_TOLERANCE_MM = 0.01
_ORIENTATION_DECIMALS = 3


def is_localizer(image_type: str) -> bool:
    """A scout/localizer image (ImageType value 3 is LOCALIZER)."""
    return "LOCALIZER" in str(image_type).upper()


def orientation_key(orientation: Sequence[float]) -> tuple[float, ...]:
    """ImageOrientationPatient rounded so that floating-point noise does not split a series."""
    return tuple(np.round(np.asarray(orientation, dtype=np.float64), _ORIENTATION_DECIMALS))


def series_kind(
    modality: str, image_types: Iterable[str], orientations: Iterable[Sequence[float]]
) -> str:
    """``"axial"`` for an axial CT image series, else why it is not one.

    Args:
        modality: the series' Modality.
        image_types: ImageType of each image (backslash-joined).
        orientations: ImageOrientationPatient of each image.

    Returns:
        ``"axial"``, ``"not CT (MR)"``, ``"scout/localizer"``, ``"coronal"``, ``"sagittal"`` or
        ``"no orientation"``.
    """
    if modality != "CT":
        return f"not CT ({modality or 'no modality'})"
    slices = [
        orientation_key(o)
        for t, o in zip(image_types, orientations, strict=True)
        if not is_localizer(t)
    ]
    if not slices:
        return "scout/localizer"
    majority = Counter(slices).most_common(1)[0][0]
    if len(majority) != 6 or not np.all(np.isfinite(majority)):
        return "no orientation"
    return plane_of(majority)


def choose_series(kinds: Mapping[str, str], sizes: Mapping[str, int]) -> str | None:
    """The axial CT series with the most images (ties: the smallest UID), or None."""
    axial = sorted(uid for uid, kind in kinds.items() if kind == AXIAL)
    return max(axial, key=lambda uid: sizes[uid]) if axial else None


def position_groups(z_sorted: np.ndarray, instance_numbers: np.ndarray) -> list[np.ndarray]:
    """Group slices that share a position, each group in order of preference.

    Slices closer than :data:`DUPLICATE_TOLERANCE_MM` along the normal are one slice stored
    more than once. The lowest InstanceNumber comes first (archives append re-sent or
    re-processed copies after the original); missing numbers count as highest; ties keep the
    input order.

    Args:
        z_sorted: slice positions along the normal, ascending.
        instance_numbers: InstanceNumber of each slice, same order (NaN when missing).

    Returns:
        One index array per position, ascending in z.
    """
    z_sorted = np.asarray(z_sorted, dtype=np.float64)
    numbers = np.nan_to_num(np.asarray(instance_numbers, dtype=np.float64), nan=np.inf)
    starts = np.flatnonzero(np.r_[True, np.diff(z_sorted) >= DUPLICATE_TOLERANCE_MM])
    groups = np.split(np.arange(len(z_sorted)), starts[1:])
    return [g[np.argsort(numbers[g], kind="stable")] for g in groups if len(g)]


def one_per_position(z_sorted: np.ndarray, instance_numbers: np.ndarray) -> np.ndarray:
    """Indices of the preferred slice at each position (see :func:`position_groups`)."""
    groups = position_groups(z_sorted, instance_numbers)
    return np.asarray([g[0] for g in groups], dtype=np.intp)
