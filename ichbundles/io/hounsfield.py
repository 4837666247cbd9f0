"""Stored DICOM pixel values to Hounsfield units, with the archive fixes real CT data needs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset

from ichbundles.constants import AIR_HU

__all__ = ["RSNA_WRAP_MODULUS", "RescaleParams", "rescale_params", "stored_to_hu"]

#: The RSNA 2019 BitsStored-12 wrap: values wrap modulo 4096 (see shared/papers/README.md).
RSNA_WRAP_MODULUS = 4096
_RSNA_WRAP_OFFSET = 1000


@dataclass(frozen=True)
class RescaleParams:
    """How the stored values of one image become HU.

    Attributes:
        slope: RescaleSlope.
        intercept: RescaleIntercept.
        bits_stored: BitsStored.
        signed: PixelRepresentation == 1.
        monochrome1: PhotometricInterpretation is MONOCHROME1 (stored values inverted).
        padding: (low, high) stored values marking padding (PixelPaddingValue and
            PixelPaddingRangeLimit), or None.
        rsna_wrap: the RSNA BitsStored-12 wrap applies.
    """

    slope: float
    intercept: float
    bits_stored: int
    signed: bool
    monochrome1: bool
    padding: tuple[int, int] | None
    rsna_wrap: bool


def _float(value: object, default: float) -> float:
    try:
        result = float(value)
    except (TypeError, ValueError):
        return default
    return result if np.isfinite(result) else default


def rescale_params(ds: Dataset, transform: Dataset | None = None) -> RescaleParams:
    """Collect the rescale and quirk parameters of an image.

    Args:
        ds: the image dataset (pixel module tags).
        transform: an enhanced image's Pixel Value Transformation item, when it has one; its
            slope and intercept take precedence.
    """
    source = transform if transform is not None and "RescaleSlope" in transform else ds
    slope = _float(source.get("RescaleSlope"), 1.0) or 1.0
    intercept = _float(source.get("RescaleIntercept"), 0.0)
    bits_stored = int(ds.get("BitsStored", 16) or 16)
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    padding = None
    if ds.get("PixelPaddingValue") is not None:
        low = int(ds.PixelPaddingValue)
        high = int(ds.get("PixelPaddingRangeLimit", low))
        padding = (min(low, high), max(low, high))
    # The known fix for RSNA 2019 (public solutions): unsigned 12-bit storage with an intercept
    # that cannot be right for CT means the stored values wrapped modulo 4096.
    rsna_wrap = bits_stored == 12 and not signed and intercept > -100
    return RescaleParams(
        slope=slope,
        intercept=intercept,
        bits_stored=bits_stored,
        signed=signed,
        monochrome1=str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1",
        padding=padding,
        rsna_wrap=rsna_wrap,
    )


def stored_to_hu(stored: np.ndarray, params: RescaleParams, out: np.ndarray | None = None) -> int:
    """Convert stored pixel values to HU in ``out`` (float32), applying the archive fixes.

    In order: padding pixels are remembered, MONOCHROME1 values are inverted within the
    BitsStored range, the RSNA wrap is undone (add 1000, subtract 4096 from values >= 4096,
    intercept -1000), the rescale is applied, padding becomes air and anything below air (outside
    the field of view) is clipped to air.

    Args:
        stored: the decoded stored values of one slice or frame.
        params: from :func:`rescale_params`.
        out: float32 array of the same shape to write into (allocated when None).

    Returns:
        The number of padding pixels set to air.
    """
    if out is None:
        out = np.empty(stored.shape, dtype=np.float32)
    padded = None
    if params.padding is not None:
        padded = (stored >= params.padding[0]) & (stored <= params.padding[1])
    values = stored
    intercept = params.intercept
    if params.monochrome1:
        low, high = _stored_range(params)
        values = (low + high) - values.astype(np.int32)
    if params.rsna_wrap:
        values = values.astype(np.int32) + _RSNA_WRAP_OFFSET
        values[values >= RSNA_WRAP_MODULUS] -= RSNA_WRAP_MODULUS
        intercept = -float(_RSNA_WRAP_OFFSET)
    np.multiply(values, params.slope, out=out, casting="unsafe")
    out += np.float32(intercept)
    n_padded = 0
    if padded is not None:
        n_padded = int(np.count_nonzero(padded))
        out[padded] = AIR_HU
    np.maximum(out, AIR_HU, out=out)
    return n_padded


def _stored_range(params: RescaleParams) -> tuple[int, int]:
    if params.signed:
        return -(2 ** (params.bits_stored - 1)), 2 ** (params.bits_stored - 1) - 1
    return 0, 2**params.bits_stored - 1
