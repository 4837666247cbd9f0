"""One synthetic head-CT scan: geometry, anatomy, hemorrhages, partial volume, noise and labels."""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter

from ichbundles.constants import ICH_CLASSES, SUBTYPES

from .acquisition import Acquisition, sample_acquisition, sharpen
from .anatomy import HEAD_TOP, AnatomyFields, HeadParams, Tissue, render_anatomy, sample_head
from .lesions import Lesion, blood_hu, lesion_membership, sample_lesions
from .stress import Stress

__all__ = ["AXIAL", "HU_RANGE", "MIN_SIZE", "SyntheticScan", "make_scan"]

#: Standard axial ImageOrientationPatient (rows to patient left, columns to posterior).
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
#: HU range a CT scanner reports (12-bit with intercept -1024).
HU_RANGE = (-1024.0, 3071.0)
#: Smallest image size (rows = columns) the phantom supports: below it pixels exceed ~7 mm and
#: ventricles, sulci and small bleeds vanish.
MIN_SIZE = 32
_CHUNK = 8  # slices rendered together: bounds memory at 512 px and keeps arrays cache-friendly
_MIN_AREA_MM2 = 3.0  # a subtype is present on a slice when its blood covers at least this area
_MAX_SLICES = 320  # a whole head at CQ500's 0.625 mm (reached by thick scans only if stressed)


@dataclass
class SyntheticScan:
    """A rendered scan with its ground truth.

    Attributes:
        seed: the seed it was made from.
        hu: (S, H, W) float32 Hounsfield units, slices ascending in z (inferior to superior).
        slice_labels: (S, 6) uint8 in ``ICH_CLASSES`` order ("any" = OR of the subtypes).
        scan_labels: (6,) uint8, the maximum over slices.
        spacing: (z, y, x) in mm (z = distance between slice positions).
        orientation: ImageOrientationPatient.
        positions: (S, 3) ImagePositionPatient in LPS mm.
        lesions: one dict per hemorrhage (type, centre in LPS mm, size_mm, hu, subtle, slices).
        thickness: SliceThickness in mm.
        tilt: gantry tilt in degrees (positions drift in y along z).
        acquisition: spacing, slab, kernel, noise and calibration the scan was made with.
        factors: realised value of each scan-level robustness factor (``stress.FACTORS``:
            noise_scale, HU offset, sharpening, spacing, head scale, rotation and tilt in
            degrees, field of view and partial-volume blur in mm), stressed or drawn.
        stress: the stress it was made with (``Stress()`` for none).
        tissue: (S, H, W) uint8 ``Tissue`` codes (blood and oedema included).
        lesion_mask: (S, H, W) uint8 bit field, bit k set where subtype ``SUBTYPES[k]`` is.
        label_pixels: (S, 5) int32 pixels of each subtype per slice.
    """

    seed: int
    hu: np.ndarray
    slice_labels: np.ndarray
    scan_labels: np.ndarray
    spacing: tuple[float, float, float]
    orientation: tuple[float, ...]
    positions: np.ndarray
    lesions: list[dict] = field(default_factory=list)
    thickness: float = 5.0
    tilt: float = 0.0
    acquisition: Acquisition | None = None
    factors: dict[str, float] = field(default_factory=dict)
    stress: Stress = field(default_factory=Stress)
    tissue: np.ndarray | None = field(default=None, repr=False)
    lesion_mask: np.ndarray | None = field(default=None, repr=False)
    label_pixels: np.ndarray | None = field(default=None, repr=False)


def _geometry(
    rng: np.random.Generator,
    size: int,
    thin: bool,
    scale: float,
    spacing: float,
    fov: float | None = None,
):
    """Pixel spacing, image corner, slice z positions and head placement of one scan.

    ``spacing`` (from the acquisition) replaces the slice spacing drawn here; the number of
    slices follows so that the covered extent stays the one drawn. ``fov`` (a stress) replaces
    the drawn field of view; the same numbers are drawn either way.
    """
    extent = 104.0 * scale  # head frame origin to skin, AP, at this scale
    drawn_fov = rng.uniform(205.0, 256.0)
    fov = max(drawn_fov if fov is None else fov, 2.2 * extent)
    ps = fov / size
    corner = -fov / 2.0 + ps / 2.0
    # The occiput rests on the headrest near the lower image edge (posterior = +y), so the
    # table shows below the head as on real scans; the face must stay inside the image.
    back, front = 104.0 * scale, 94.0 * scale
    room = fov - back - front
    below = rng.uniform(min(15.0, room / 2.0), min(40.0, room - 4.0))
    margin_x = max(0.0, fov / 2.0 - 0.9 * extent)
    centre_xy = (rng.uniform(-margin_x, margin_x) * 0.6, fov / 2.0 - back - below)
    if thin:
        dz = float(rng.choice([1.0, 1.25, 1.5, 2.0, 2.5]))
        covered = rng.uniform(140.0, 190.0)
        n = min(_MAX_SLICES, round(covered / spacing))
    else:
        dz = 5.0
        n = int(np.clip(round(rng.normal(34.0, 8.0)), 20, 60))
        n = min(_MAX_SLICES, round(n * dz / spacing))
    dz = spacing
    origin_z = float(rng.uniform(-120.0, 40.0))  # table position of the head frame origin
    top = origin_z + scale * (HEAD_TOP + rng.uniform(-4.0, 8.0))
    z = top - dz * np.arange(n - 1, -1, -1, dtype=np.float64)
    return ps, corner, z, dz, (centre_xy[0], centre_xy[1], origin_z)


def make_scan(
    seed: int,
    size: int = 256,
    thin: bool = False,
    *,
    tilt: float = 0.0,
    stress: Stress | None = None,
) -> SyntheticScan:
    """Render one synthetic non-contrast head CT with hemorrhage ground truth.

    Args:
        seed: everything about the scan follows from it.
        size: rows and columns (pixel spacing scales so the head fills the image alike).
        thin: 0.625-2.5 mm slices (up to 320) instead of 3-5 mm ones (about 170 mm covered).
        tilt: gantry tilt in degrees; positions shift in y by ``tan(tilt)`` per mm of z and the
            anatomy is rendered at those positions (an uncorrected tilted acquisition).
        stress: factors pushed outside their normal range (``stress.Stress``); the rest of the
            scan stays that of ``seed`` without it.

    Returns:
        The scan with HU, labels, geometry and the lesion list.

    Raises:
        ValueError: ``size`` below ``MIN_SIZE``.
    """
    if size < MIN_SIZE:
        raise ValueError(f"size must be at least {MIN_SIZE} pixels, got {size}")
    stress = stress or Stress()
    rng = np.random.default_rng(seed)
    texture_rng = np.random.default_rng([seed, 1])
    drawn = sample_acquisition(np.random.default_rng([seed, 4]), thin)
    acquisition = stress.acquisition(drawn)
    head = sample_head(rng, (0.0, 0.0, 0.0))
    # A stressed geometry is laid out from the same draws as the normal one (a copy of the
    # stream); the normal one still sets the lesions' z range and the stream's position.
    geometry_rng = copy.deepcopy(rng) if stress.moves_geometry else None
    ps, corner, z, dz, centre = _geometry(rng, size, thin, head.scale, drawn.spacing)
    z_head = (z - centre[2]) / head.scale
    head = stress.head(head)
    if geometry_rng is not None:
        ps, corner, z, dz, centre = _geometry(
            geometry_rng, size, thin, head.scale, acquisition.spacing, stress.fov
        )
    head = dataclasses.replace(head, centre=centre)
    tilt = stress.tilted(tilt)
    shift = -math.tan(math.radians(tilt)) * (z - z.mean())
    x = corner + ps * np.arange(size)
    rows = corner + ps * np.arange(size)
    y = rows[None, :] + shift[:, None]  # (S, H)
    positions = np.stack([np.full_like(z, x[0]), y[:, 0], z], axis=1)

    lesions = sample_lesions(rng, float(z_head.min()) + 2.0, float(z_head.max()) - 2.0)
    lesions = [stress.lesion(lesion) for lesion in lesions]
    # Fluid level of ventricular blood: a horizontal line in the image (gravity along +y).
    blood_level_y = [
        centre[1] + head.scale * math.cos(head.rotation) * les.size[0] for les in lesions
    ]
    pv_mm = rng.uniform(0.35, 0.7)  # drawn even when stressed: the stream stays in step
    if stress.pv_blur is not None:
        pv_mm = stress.pv_blur
    pv_sigma = pv_mm / ps
    noise_sigma = rng.uniform(2.5, 8.0) * acquisition.noise_scale  # 5 mm soft kernel: 2.5-8 HU
    noise_corr = rng.uniform(0.0, 0.8) * (0.9 / ps)

    n, hw = len(z), (size, size)
    hu = np.empty((n, *hw), dtype=np.float32)
    tissue = np.empty((n, *hw), dtype=np.uint8)
    mask = np.zeros((n, *hw), dtype=np.uint8)
    per_lesion = np.zeros((len(lesions), n), dtype=np.int64)
    min_px = max(2, math.ceil(_MIN_AREA_MM2 / (ps * ps)))
    central = len(acquisition.slab_offsets) // 2
    for start in range(0, n, _CHUNK):
        block = slice(start, min(n, start + _CHUNK))
        texture = texture_rng.random((block.stop - start, *hw), dtype=np.float32)
        # Partial volume across the slab: the slice is the mean of planes through it; tissue,
        # lesion mask and labels come from the central plane (the slice position).
        values = np.zeros((block.stop - start, *hw), dtype=np.float32)
        for p, offset in enumerate(acquisition.slab_offsets):
            fields = render_anatomy(head, x, y[block], z[block] + offset, texture)
            plane = head.hu[fields.tissue]
            cortical = fields.tissue == Tissue.CORTICAL
            plane[cortical] += (texture[cortical] - 0.5) * 500.0
            plane_mask = mask[block] if p == central else np.zeros_like(mask[block])
            for k, lesion in enumerate(lesions):
                level = blood_level_y[k] if lesion.subtype == "intraventricular" else 0.0
                counts = per_lesion[k, block] if p == central else np.zeros(len(plane), np.int64)
                _paint_lesion(lesion, fields, plane, plane_mask, level, counts)
            if p == central:
                tissue[block] = fields.tissue
            values += plane
        values /= np.float32(len(acquisition.slab_offsets))
        values = gaussian_filter(values, sigma=(0.0, pv_sigma, pv_sigma), mode="nearest")
        sharpen(values, acquisition, ps)
        noise = texture_rng.standard_normal(values.shape, dtype=np.float32)
        if noise_corr > 0.2:
            noise = gaussian_filter(noise, sigma=(0.0, noise_corr, noise_corr))
            noise /= max(float(noise.std()), 1e-6)
        values += np.float32(noise_sigma) * noise + np.float32(acquisition.hu_offset)
        np.clip(values, *HU_RANGE, out=values)
        hu[block] = values

    bits = np.arange(len(SUBTYPES), dtype=np.uint8)
    label_pixels = ((mask[..., None] >> bits) & 1).sum(axis=(1, 2), dtype=np.int64)
    slice_labels = np.zeros((n, len(ICH_CLASSES)), dtype=np.uint8)
    slice_labels[:, :-1] = label_pixels >= min_px
    slice_labels[:, -1] = slice_labels[:, :-1].max(axis=1)
    return SyntheticScan(
        seed=seed,
        hu=hu,
        slice_labels=slice_labels,
        scan_labels=slice_labels.max(axis=0),
        spacing=(float(dz), float(ps), float(ps)),
        orientation=AXIAL,
        positions=positions,
        lesions=[
            _lesion_record(lesion, head, np.flatnonzero(per_lesion[k] >= min_px))
            for k, lesion in enumerate(lesions)
        ],
        thickness=float(dz),
        tilt=float(tilt),
        acquisition=acquisition,
        factors={
            "noise": acquisition.noise_scale,
            "hu_offset": acquisition.hu_offset,
            "sharpening": acquisition.sharpening,
            "spacing": acquisition.spacing,
            "scale": head.scale,
            "rotation": math.degrees(head.rotation),
            "tilt": float(tilt),
            "fov": ps * size,
            "pv_blur": float(pv_mm),
        },
        stress=stress,
        tissue=tissue,
        lesion_mask=mask,
        label_pixels=label_pixels.astype(np.int32),
    )


def _paint_lesion(
    lesion: Lesion,
    fields: AnatomyFields,
    values: np.ndarray,
    mask: np.ndarray,
    level: float,
    counts: np.ndarray,
) -> None:
    """Blend one lesion into a block's HU (in place), updating tissue, bit mask and counts."""
    zs = fields.z[:, 0, 0]
    idx = np.flatnonzero((zs >= lesion.z_range[0]) & (zs <= lesion.z_range[1]))
    if idx.size == 0:
        return
    # Every bleed lies inside the cranial cavity: evaluate it on those pixels only (1-D).
    shape = (len(idx), *values.shape[1:])
    inside = np.flatnonzero(fields.cavity[idx])
    sub = AnatomyFields(
        **{
            name: np.broadcast_to(getattr(fields, name)[idx], shape).reshape(-1)[inside]
            for name in _FIELD_NAMES
        }
    )
    blood, oedema = lesion_membership(lesion, sub, level)
    block = values[idx].reshape(-1)
    tissue = fields.tissue[idx].reshape(-1)
    if oedema is not None:
        target = block[inside]
        target += oedema * (np.float32(_oedema_hu(lesion)) - target)
        block[inside] = target
        tissue[inside[oedema >= 0.5]] = Tissue.OEDEMA
    target = block[inside]
    touched = np.flatnonzero(blood > 0.0)  # the texture only where there is blood
    hu = blood_hu(lesion, sub.u[touched], sub.v[touched], sub.z[touched])
    target[touched] += blood[touched] * (hu - target[touched])
    block[inside] = target
    present = np.zeros(block.shape, dtype=bool)
    present[inside[blood >= 0.5]] = True
    tissue[present] = Tissue.BLOOD
    present = present.reshape(shape)
    values[idx] = block.reshape(shape)
    fields.tissue[idx] = tissue.reshape(shape)
    mask[idx] |= present.astype(np.uint8) << np.uint8(SUBTYPES.index(lesion.subtype))
    counts[idx] = present.sum(axis=(1, 2))


_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(AnatomyFields))


def _oedema_hu(lesion: Lesion) -> float:
    """Perihematomal oedema between 10 and 20 HU, varying with the lesion."""
    return 10.0 + 10.0 * (0.5 + 0.5 * math.sin(lesion.phase))


def _lesion_record(lesion: Lesion, head: HeadParams, slices: np.ndarray) -> dict:
    """Manifest entry of a lesion: centre converted from the head frame to LPS mm."""
    u, v, zh = lesion.centre
    cos, sin = math.cos(head.rotation), math.sin(head.rotation)
    s = head.scale
    cx, cy, cz = head.centre
    centre = (cx + s * (cos * u - sin * v), cy + s * (sin * u + cos * v), cz + s * zh)
    return {
        "type": lesion.subtype,
        "centre": [round(c, 2) for c in centre],
        "size_mm": [round(s * d, 2) for d in lesion.size],
        "hu": round(lesion.hu + lesion.hu_shift, 1),
        "subtle": lesion.subtle,
        "side": {1: "left", -1: "right", 0: "both"}[lesion.side],
        "slices": [int(i) for i in slices],
    }
