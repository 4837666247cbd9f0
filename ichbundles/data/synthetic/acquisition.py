"""How a scanner acquired and reconstructed one synthetic scan: what real archives vary.

Slice spacing and slab thickness (with partial volume across the slab), reconstruction kernel
(soft to sharp, with the noise that goes with it) and the calibration offset of the HU scale.
Drawn from a random stream of their own (``[seed, 4]``), so the anatomy, geometry and lesions of
a seed stay as they were.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

__all__ = [
    "THICK_SPACINGS",
    "THIN_SPACINGS",
    "Acquisition",
    "sample_acquisition",
    "sharpen",
    "slab_offsets",
]

#: Slice spacings (mm) of thick-slice series (routine head CT; RSNA 2019 is mostly 5 mm).
THICK_SPACINGS = (5.0, 5.0, 5.0, 5.0, 4.0, 4.5, 3.0)
#: Slice spacings (mm) of thin-slice series (CQ500's "thin" series are 0.625 mm).
THIN_SPACINGS = (0.625, 0.8, 1.0, 1.25, 1.5, 2.0, 2.5)
#: A slab is sampled by planes at most this far apart (mm) for its partial-volume average.
_SUBPLANE_MM = 1.7


@dataclass(frozen=True)
class Acquisition:
    """Acquisition and reconstruction settings of one scan.

    Attributes:
        spacing: distance between slice positions in mm (the slab thickness equals it).
        slab_offsets: z offsets (mm) of the planes averaged into each slice, the slice position
            (offset 0) at index ``len // 2``; one plane for thin slabs.
        kernel: ``"soft"``, ``"standard"`` or ``"sharp"``.
        sharpening: unsharp-mask amount of the kernel (0 for soft).
        sharpening_sigma_mm: width of the unsharp mask's blur.
        noise_scale: factor on the scan's noise level: thinner slabs and sharper kernels are
            noisier (quantum noise grows as 1/sqrt(thickness)).
        hu_offset: calibration offset added to every HU value (water is not exactly 0).
    """

    spacing: float
    slab_offsets: tuple[float, ...]
    kernel: str
    sharpening: float
    sharpening_sigma_mm: float
    noise_scale: float
    hu_offset: float


def sample_acquisition(rng: np.random.Generator, thin: bool) -> Acquisition:
    """Draw the acquisition of one scan.

    Args:
        rng: the scan's acquisition stream.
        thin: thin-slice series (0.625-2.5 mm) instead of thick ones (3-5 mm).
    """
    spacing = float(rng.choice(THIN_SPACINGS if thin else THICK_SPACINGS))
    kernel = str(rng.choice(["soft", "standard", "standard", "sharp"]))
    sharpening = {"soft": 0.0, "standard": rng.uniform(0.2, 0.6), "sharp": rng.uniform(0.8, 1.6)}
    amount = float(sharpening[kernel])
    return Acquisition(
        spacing=spacing,
        slab_offsets=slab_offsets(spacing),
        kernel=kernel,
        sharpening=amount,
        sharpening_sigma_mm=float(rng.uniform(0.8, 1.5)),
        noise_scale=float(min(2.0, math.sqrt(5.0 / spacing)) * (1.0 + 0.5 * amount)),
        hu_offset=float(rng.uniform(-5.0, 5.0)),
    )


def slab_offsets(spacing: float) -> tuple[float, ...]:
    """z offsets (mm) of the planes averaged into a slab ``spacing`` thick, the central one 0."""
    planes = 2 * math.floor(spacing / (2 * _SUBPLANE_MM)) + 1  # odd: the middle one is central
    return tuple(spacing * ((k + 0.5) / planes - 0.5) for k in range(planes))


def sharpen(values: np.ndarray, acquisition: Acquisition, pixel_mm: float) -> np.ndarray:
    """Apply the kernel's edge enhancement in-plane to ``(S, H, W)`` HU, in place.

    Sharp kernels overshoot at edges (bright rims inside the skull, dark halos beside it), as
    bone and detail kernels do.
    """
    if acquisition.sharpening <= 0.0:
        return values
    sigma = acquisition.sharpening_sigma_mm / pixel_mm
    blurred = gaussian_filter(values, sigma=(0.0, sigma, sigma), mode="nearest")
    values += np.float32(acquisition.sharpening) * (values - blurred)
    return values
