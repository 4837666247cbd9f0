"""The `CTSeries` result of reading a CT series, and the error raised for bad input."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ichbundles.io.geometry import plane_of, slice_normal

__all__ = ["CTSeries", "SeriesReadError"]


class SeriesReadError(ValueError):
    """A CT series cannot be read; the message is one line naming the file and the problem."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclass
class CTSeries:
    """One CT series in Hounsfield units, slices ascending along the slice normal.

    Attributes:
        hu: float32 array (S, H, W), rows x columns as stored in the DICOM files.
        spacing: (z, y, x) in mm: slice spacing (median distance between positions),
            row spacing, column spacing.
        sop_instance_uids: SOPInstanceUID per slice ("" where the source has none, as NIfTI).
        positions: (S, 3) ImagePositionPatient per slice, patient LPS mm.
        study_instance_uid: StudyInstanceUID ("" when unknown).
        series_instance_uid: SeriesInstanceUID (for volumes without one, a UID derived from the
            file name or content).
        orientation: ImageOrientationPatient, six direction cosines (row, then column).
        warnings: the fixes applied and the files skipped, one line each, free of PHI.
        source: where the series was read from.
        tilt_degrees: angle between the slice normal and the line through the slice positions.
        gaps: indices ``i`` where the distance from slice ``i - 1`` to ``i`` exceeds 1.5x the
            median spacing.
    """

    hu: np.ndarray
    spacing: tuple[float, float, float]
    sop_instance_uids: tuple[str, ...]
    positions: np.ndarray
    study_instance_uid: str
    series_instance_uid: str
    orientation: tuple[float, ...]
    warnings: list[str] = field(default_factory=list)
    source: str = ""
    tilt_degrees: float = 0.0
    gaps: tuple[int, ...] = ()

    @property
    def n_slices(self) -> int:
        return int(self.hu.shape[0])

    @property
    def normal(self) -> np.ndarray:
        """Unit slice normal (row cosine x column cosine)."""
        return slice_normal(self.orientation)

    @property
    def plane(self) -> str:
        """``"axial"``, ``"coronal"`` or ``"sagittal"``: the patient plane nearest the slices."""
        return plane_of(self.orientation)

    @property
    def z_mm(self) -> np.ndarray:
        """Position of each slice along the slice normal, in mm."""
        return self.positions @ self.normal

    def summary(self) -> dict:
        """A JSON-ready description (UIDs, geometry, HU statistics, warnings); no PHI."""
        hu = self.hu
        p1, p50, p99 = (float(v) for v in np.percentile(hu[:, ::4, ::4], (1, 50, 99)))
        z = self.z_mm
        return {
            "source": self.source,
            "study_instance_uid": self.study_instance_uid,
            "series_instance_uid": self.series_instance_uid,
            "n_slices": self.n_slices,
            "shape": list(hu.shape),
            "spacing_mm": [round(float(s), 4) for s in self.spacing],
            "plane": self.plane,
            "orientation": [round(float(v), 5) for v in self.orientation],
            "z_range_mm": [round(float(z[0]), 3), round(float(z[-1]), 3)],
            "tilt_degrees": round(float(self.tilt_degrees), 3),
            "gaps": list(self.gaps),
            "hu": {
                "min": float(hu.min()),
                "p1": p1,
                "median": p50,
                "p99": p99,
                "max": float(hu.max()),
            },
            "warnings": list(self.warnings),
        }
