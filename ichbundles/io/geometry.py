"""Slice geometry: normals, patient planes, ordering along the normal, gaps and gantry tilt."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "GAP_FACTOR",
    "gantry_tilt_degrees",
    "order_along_normal",
    "plane_of",
    "slice_gaps",
    "slice_normal",
]

#: A step between slices larger than this times the median step is reported as a gap.
GAP_FACTOR = 1.5
_PLANES = ("sagittal", "coronal", "axial")  # the patient axis (x, y, z) the normal is nearest


def slice_normal(orientation: Sequence[float]) -> np.ndarray:
    """Unit normal of a slice: the cross product of the row and column direction cosines."""
    iop = np.asarray(orientation, dtype=np.float64)
    if iop.shape != (6,) or not np.all(np.isfinite(iop)):
        raise ValueError(f"ImageOrientationPatient must be 6 finite numbers, got {orientation!r}")
    normal = np.cross(iop[:3], iop[3:])
    norm = np.linalg.norm(normal)
    if norm < 1e-6:
        raise ValueError(f"ImageOrientationPatient has parallel row and column: {orientation!r}")
    return normal / norm


def plane_of(orientation: Sequence[float]) -> str:
    """Name the patient plane (``axial``, ``coronal``, ``sagittal``) nearest to the slices."""
    return _PLANES[int(np.argmax(np.abs(slice_normal(orientation))))]


def order_along_normal(
    positions: np.ndarray, orientation: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Order slices by ImagePositionPatient projected on the slice normal (ascending).

    Returns:
        ``(order, z)``: indices that sort the slices (stable, so ties keep input order) and the
        sorted projections in mm.
    """
    z = np.asarray(positions, dtype=np.float64).reshape(-1, 3) @ slice_normal(orientation)
    order = np.argsort(z, kind="stable")
    return order, z[order]


def slice_gaps(z_sorted: np.ndarray, factor: float = GAP_FACTOR) -> tuple[float, tuple[int, ...]]:
    """Median spacing of sorted slice positions and the indices that follow a gap.

    Returns:
        ``(median_spacing, gaps)``; ``gaps`` holds every ``i`` with
        ``z[i] - z[i - 1] > factor * median_spacing``. A single slice has spacing 0 and no gaps.
    """
    steps = np.diff(np.asarray(z_sorted, dtype=np.float64))
    if steps.size == 0:
        return 0.0, ()
    median = float(np.median(steps))
    gaps = tuple(int(i) + 1 for i in np.flatnonzero(steps > factor * median))
    return median, gaps


def gantry_tilt_degrees(positions: np.ndarray, orientation: Sequence[float]) -> float:
    """Angle between the slice normal and the line from the first to the last slice position.

    Zero for an untilted acquisition; a few to 30 degrees for a tilted gantry whose images were
    stored without resampling. ``positions`` must be sorted along the normal.
    """
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    if len(pos) < 2:
        return 0.0
    direction = pos[-1] - pos[0]
    length = np.linalg.norm(direction)
    if length < 1e-6:
        return 0.0
    cosine = abs(float(direction @ slice_normal(orientation))) / length
    return float(np.degrees(np.arccos(min(1.0, cosine))))
