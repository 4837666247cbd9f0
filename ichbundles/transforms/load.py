"""Load a CT series into a MONAI pipeline: ``read_series`` as array and dictionary transforms."""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform

from ichbundles.io import CTSeries, SeriesReadError, read_series

__all__ = ["LoadCTSeries", "LoadCTSeriesd"]

PathOrFiles = str | os.PathLike | Sequence[str | os.PathLike]


class LoadCTSeries(Transform):
    """Read a CT series (DICOM folder, file list, enhanced CT, NIfTI, NRRD, MHA) in HU.

    MONAI's ``LoadImage`` with ``PydicomReader`` orders DICOM slices by InstanceNumber and knows
    none of the archive fixes, so this delegates to :func:`ichbundles.io.read_series`.

    Args:
        series_uid: the series to read from a folder holding several; by default the axial CT
            series with the most slices.

    Returns:
        On call, the :class:`~ichbundles.io.CTSeries` (``hu`` is float32 (S, H, W)).
    """

    def __init__(self, series_uid: str | None = None) -> None:
        self.series_uid = series_uid

    def __call__(self, path: PathOrFiles) -> CTSeries:
        return read_series(path, series_uid=self.series_uid)


class LoadCTSeriesd(MapTransform):
    """Dictionary version of :class:`LoadCTSeries` for the items of :mod:`ichbundles.data`.

    Replaces ``d[key]`` (a folder, file list or volume path) with the HU array (S, H, W) float32
    and adds ``f"{key}_meta"``: spacing, positions, z, UIDs, orientation and the reader's
    warnings. When the item lists ``sop_instance_uids`` (its per-slice labels follow that
    order), the slices read must be exactly those, in that order; otherwise labels would be
    silently misaligned, so it raises.

    Args:
        keys: keys of the series paths to read.
        allow_missing_keys: don't raise exception if key is missing.

    Raises:
        SeriesReadError: unreadable series, or slices that differ from the item's
            ``sop_instance_uids``.
    """

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.loader = LoadCTSeries()

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        for key in self.key_iterator(d):
            series = self.loader(d[key])
            expected = d.get("sop_instance_uids")
            if expected and list(series.sop_instance_uids) != list(expected):
                raise SeriesReadError(
                    series.source,
                    f"read {series.n_slices} slices that differ from the item's "
                    f"{len(expected)} sop_instance_uids (labels would be misaligned)",
                )
            d[key] = series.hu
            d[f"{key}_meta"] = {
                "spacing": np.asarray(series.spacing, dtype=np.float64),
                "positions": series.positions,
                "z_mm": series.z_mm,
                "orientation": np.asarray(series.orientation, dtype=np.float64),
                "sop_instance_uids": list(series.sop_instance_uids),
                "series_instance_uid": series.series_instance_uid,
                "study_instance_uid": series.study_instance_uid,
                "warnings": list(series.warnings),
            }
        return d
