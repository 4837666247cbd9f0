"""Intracranial hemorrhages: sampling in the head frame and soft membership maps per slice block.

Each subtype has its real shape and place: epidural = biconvex lens against the inner table with
a limited extent (sutures); subdural = long thin crescent over one hemisphere; intraparenchymal =
irregular blob with an oedema rim; intraventricular = blood layering in the occipital horns with a
horizontal fluid level (gravity along patient +y, supine); subarachnoid = blood in sulci, fissures
and basal cisterns. Memberships are soft at the edges so thin and small lesions lose contrast
through partial volume as they do on real scanners.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ichbundles.constants import SUBTYPES

from .anatomy import CAVITY, AnatomyFields, Tissue

__all__ = [
    "ACUTE_BLOOD_HU",
    "Lesion",
    "blood_hu",
    "lesion_membership",
    "resize_lesion",
    "sample_lesions",
    "with_density",
]

_EDGE = 1.0  # mm over which membership goes from 1 to 0
#: HU range of acute blood; the texture inside a bleed stays within it.
ACUTE_BLOOD_HU = (50.0, 90.0)
# Subtype frequencies among bleeds, in SUBTYPES order (subdural and parenchymal most common).
_WEIGHTS = dict(zip(SUBTYPES, (0.15, 0.25, 0.13, 0.20, 0.27), strict=True))
_BRAIN = (Tissue.GREY, Tissue.WHITE, Tissue.DEEP_GREY, Tissue.CEREBELLUM, Tissue.BRAINSTEM)
#: Head-frame v (mm) of the back of the occipital horns (centre 44 + semi-axis 9): ventricular
#: blood layers from there forward to its fluid level.
_HORN_BACK_V = 53.0


@dataclass(frozen=True)
class Lesion:
    """One hemorrhage in the head frame.

    Attributes:
        subtype: one of ``SUBTYPES``.
        centre: head-frame centre (u, v, z) in mm; for the extra-axial ones a point on the inner
            table.
        size: subtype-specific sizes in mm (extent, thickness, ...).
        hu: base attenuation of the blood (``blood_hu`` adds its internal texture).
        subtle: small and low-contrast.
        z_range: head-frame z interval outside which the membership is zero.
        side: +1 left, -1 right, 0 both or midline.
        phase: shape irregularity phase.
        hu_shift: HU added to the whole bleed, texture and clipping range included (a stressed
            density, see ``with_density``); 0 for every drawn lesion.
    """

    subtype: str
    centre: tuple[float, float, float]
    size: tuple[float, ...]
    hu: float
    subtle: bool
    z_range: tuple[float, float]
    side: int = 0
    phase: float = 0.0
    hu_shift: float = 0.0


def _surface_point(phi: float, z: float) -> tuple[float, float, float]:
    """Point of the inner skull table (cavity ellipsoid) at azimuth ``phi`` and height ``z``."""
    (_, cv, cz), (a, b, c) = CAVITY
    k = max(0.0, 1.0 - ((z - cz) / c) ** 2) ** 0.5
    return a * k * np.cos(phi), cv + b * k * np.sin(phi), z


def _azimuth(rng: np.random.Generator, side: int) -> float:
    """Azimuth over one hemisphere (u > 0 is the patient's left)."""
    phi = rng.uniform(-1.25, 1.25)
    return float(phi if side > 0 else np.pi - phi)


def _sample_one(rng: np.random.Generator, subtype: str, z_lo: float, z_hi: float) -> Lesion | None:
    """Draw one lesion of ``subtype`` whose centre lies in the scanned head-frame z range."""
    subtle = bool(rng.random() < 0.25)
    hu = float(rng.uniform(50.0, 58.0) if subtle else rng.uniform(60.0, 88.0))
    side = int(rng.choice([-1, 1]))

    def pick_z(low: float, high: float) -> float | None:
        low, high = max(low, z_lo), min(high, z_hi)
        return float(rng.uniform(low, high)) if high > low else None

    if subtype == "epidural":
        z0 = pick_z(15.0, 90.0)
        if z0 is None:
            return None
        extent = rng.uniform(8.0, 13.0) if subtle else rng.uniform(16.0, 34.0)
        thick = rng.uniform(2.5, 4.0) if subtle else rng.uniform(6.0, min(22.0, 0.7 * extent))
        centre = _surface_point(_azimuth(rng, side), z0)
        size = (extent, thick)
        return Lesion(subtype, centre, size, hu, subtle, _z_range(subtype, centre, size), side)
    if subtype == "subdural":
        z0 = pick_z(15.0, 90.0)
        if z0 is None:
            return None
        extent = rng.uniform(14.0, 28.0) if subtle else rng.uniform(38.0, 80.0)
        thick = rng.uniform(1.8, 3.0) if subtle else rng.uniform(3.0, 14.0)
        centre = _surface_point(_azimuth(rng, side), z0)
        size = (extent, thick)
        return Lesion(subtype, centre, size, hu, subtle, _z_range(subtype, centre, size), side)
    if subtype == "intraparenchymal":
        radius = rng.uniform(2.5, 5.0) if subtle else rng.uniform(6.0, 22.0)
        if rng.random() < 0.45 and z_lo < 28.0 < z_hi:
            # Hypertensive bleeds: basal ganglia or thalamus.
            u0, v0, z0 = (18.0, 4.0, 27.0) if rng.random() < 0.6 else (10.0, 15.0, 32.0)
            centre = (side * u0 + rng.normal(0, 2), v0 + rng.normal(0, 3), z0 + rng.normal(0, 2))
        else:
            z0 = pick_z(20.0, 80.0)
            if z0 is None:
                return None
            su, sv, _ = _surface_point(_azimuth(rng, side), z0)
            cu, cv = CAVITY[0][0], CAVITY[0][1]
            dist = np.hypot(su - cu, sv - cv)
            inward = min(0.8, (radius + rng.uniform(8.0, 22.0)) / max(dist, 1.0))
            centre = (su + (cu - su) * inward, sv + (cv - sv) * inward, z0)
        ratio = tuple(rng.uniform(0.75, 1.25, 2))
        size = (radius, radius * ratio[0], radius * ratio[1], 1.0 + 0.25 * radius)
        phase = float(rng.uniform(0, 2 * np.pi))
        return Lesion(
            subtype, centre, size, hu, subtle, _z_range(subtype, centre, size), side, phase
        )
    if subtype == "intraventricular":
        if not (z_lo < 36.0 and z_hi > 26.0):
            return None
        level = rng.uniform(44.0, 50.0) if subtle else rng.uniform(28.0, 42.0)
        hu = float(rng.uniform(50.0, 58.0) if subtle else rng.uniform(55.0, 82.0))
        side = int(rng.choice([-1, 0, 1]))
        centre = (19.0 * (side or 1), 40.0, 32.0)
        return Lesion(subtype, centre, (level,), hu, subtle, _z_range(subtype, centre, ()), side)
    # subarachnoid: convexity sulci or basal cisterns
    hu = float(rng.uniform(50.0, 56.0) if subtle else rng.uniform(56.0, 72.0))
    radius = rng.uniform(10.0, 16.0) if subtle else rng.uniform(18.0, 40.0)
    if rng.random() < 0.4 and z_lo < 10.0 < z_hi:
        centre = (rng.normal(0, 4), -4.0 + rng.normal(0, 4), 8.0)
        side = 0
    else:
        z0 = pick_z(25.0, 95.0)
        if z0 is None:
            return None
        centre = _surface_point(_azimuth(rng, side), z0)
    size = (radius,)
    return Lesion(subtype, centre, size, hu, subtle, _z_range(subtype, centre, size), side)


def _z_range(
    subtype: str, centre: tuple[float, float, float], size: tuple[float, ...]
) -> tuple[float, float]:
    """Head-frame z interval outside which a lesion of this centre and size has no blood."""
    if subtype == "intraventricular":
        return (20.0, 44.0)  # the atria and occipital horns
    # parenchymal: lobed radius, then the oedema rim; others: extent or radius
    parenchymal = subtype == "intraparenchymal"
    reach = max(size[:3]) * 1.3 + size[3] if parenchymal else size[0]
    return (centre[2] - reach, centre[2] + reach)


def resize_lesion(lesion: Lesion, factor: float) -> Lesion:
    """The lesion with its extent and thickness times ``factor``, in the same place.

    A parenchymal bleed's oedema rim follows its radius as when drawn; ventricular blood keeps
    its horns, with the layer behind its fluid level ``factor`` times as deep.
    """
    if lesion.subtype == "intraventricular":
        size = (_HORN_BACK_V - factor * (_HORN_BACK_V - lesion.size[0]),)
    elif lesion.subtype == "intraparenchymal":
        radii = tuple(factor * r for r in lesion.size[:3])
        size = (*radii, 1.0 + 0.25 * radii[0])
    else:
        size = tuple(factor * d for d in lesion.size)
    z_range = _z_range(lesion.subtype, lesion.centre, size)
    return replace(lesion, size=size, z_range=z_range)


def with_density(lesion: Lesion, hu: float) -> Lesion:
    """The lesion with base attenuation ``hu``: the whole bleed moves, its texture unchanged."""
    return replace(lesion, hu_shift=hu - lesion.hu)


def sample_lesions(rng: np.random.Generator, z_lo: float, z_hi: float) -> list[Lesion]:
    """Draw the hemorrhages of one scan; about half the scans get none.

    Args:
        rng: random generator.
        z_lo, z_hi: head-frame z range covered by the slices.
    """
    if rng.random() >= 0.5:
        return []
    count = int(rng.choice([1, 2, 3], p=[0.6, 0.28, 0.12]))
    names = list(_WEIGHTS)
    weights = np.array([_WEIGHTS[n] for n in names])
    lesions: list[Lesion] = []
    for _ in range(20 * count):
        if len(lesions) >= count:
            break
        lesion = _sample_one(rng, str(rng.choice(names, p=weights / weights.sum())), z_lo, z_hi)
        if lesion is None:
            continue
        lesions.append(lesion)
        if lesion.subtype == "intraparenchymal" and not lesion.subtle and rng.random() < 0.25:
            # Ventricular extension of a large parenchymal bleed.
            extension = _sample_one(rng, "intraventricular", z_lo, z_hi)
            if extension is not None:
                lesions.append(extension)
    return lesions


def blood_hu(lesion: Lesion, u: np.ndarray, v: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Attenuation of a bleed at head-frame points: ``lesion.hu`` with mild internal texture.

    A smooth random field (plane waves of 5-12 mm wavelength, about +-6 HU; half that for
    subtle bleeds) plus denser clotted patches (+3 to +7 HU over roughly a third of the
    volume), clipped to ``ACUTE_BLOOD_HU``, then moved by ``lesion.hu_shift``. The field is
    seeded by the lesion's drawn values, so it is deterministic, leaves the scan's random stream
    untouched and stays the same when a stress moves the density.
    """
    key = [int(abs(x) * 1000.0) for x in (*lesion.centre, lesion.hu, *lesion.size)]
    rng = np.random.default_rng(key)
    k = rng.normal(size=(6, 3))
    k *= (2.0 * np.pi / rng.uniform(5.0, 12.0, 6) / np.linalg.norm(k, axis=1))[:, None]
    k = k.astype(np.float32)
    phase = rng.uniform(0.0, 2.0 * np.pi, 6).astype(np.float32)
    waves = [np.sin(u * k[i, 0] + v * k[i, 1] + z * k[i, 2] + phase[i]) for i in range(6)]
    amplitude = np.float32(1.2 if lesion.subtle else 2.2)
    texture = amplitude * (waves[0] + waves[1] + waves[2] + waves[3])
    clot = np.clip((waves[4] + waves[5]) * np.float32(0.6) - np.float32(0.2), 0.0, 1.0)
    texture += np.float32(rng.uniform(3.0, 7.0)) * clot
    blood = np.clip(np.float32(lesion.hu) + texture, *ACUTE_BLOOD_HU).astype(np.float32)
    if lesion.hu_shift:
        blood += np.float32(lesion.hu_shift)
    return blood


def _soft(signed_mm: np.ndarray) -> np.ndarray:
    """Membership from a signed inside-distance (mm): 1 deep inside, 0 outside."""
    return np.clip(0.5 + signed_mm / _EDGE, 0.0, 1.0).astype(np.float32)


def _extra_axial(lesion: Lesion, f: AnatomyFields) -> np.ndarray:
    """Lens (epidural) or crescent (subdural) hugging the inner table around ``lesion.centre``."""
    (cu, cv, cz), (a, b, c) = CAVITY
    du, dv, dz = f.u - cu, f.v - cv, f.z - cz
    rho = np.sqrt((du / a) ** 2 + (dv / b) ** 2 + (dz / c) ** 2) + 1e-6
    su, sv, sz = lesion.centre
    s = np.sqrt((cu + du / rho - su) ** 2 + (cv + dv / rho - sv) ** 2 + (cz + dz / rho - sz) ** 2)
    extent, thick = lesion.size
    frac = np.clip(1.0 - (s / extent) ** 2, 0.0, None)
    # A lens is thickest at the centre; a subdural crescent keeps its thickness and tapers late.
    local = thick * (frac if lesion.subtype == "epidural" else np.sqrt(frac))
    m = _soft(local - f.depth) * (frac > 0) * f.cavity
    if lesion.subtype == "subdural":
        m *= f.u * lesion.side > 1.5  # the falx stops it at the midline
    return m


def _parenchymal(lesion: Lesion, f: AnatomyFields) -> tuple[np.ndarray, np.ndarray]:
    """Irregular blob and its oedema rim."""
    cu, cv, cz = lesion.centre
    ru, rv, rz, rim = lesion.size
    du, dv, dz = (f.u - cu) / ru, (f.v - cv) / rv, (f.z - cz) / rz
    r = np.sqrt(du * du + dv * dv + dz * dz) + 1e-6
    alpha = np.arctan2(dv, du)
    lobes = 1.0 + 0.16 * np.sin(3.0 * alpha + lesion.phase) * np.cos(2.5 * dz / r + lesion.phase)
    mean_r = (ru + rv + rz) / 3.0
    inside = (lobes - r) * mean_r  # approximately mm
    brain = np.isin(f.tissue, _BRAIN) | (f.tissue == Tissue.CSF)
    blood = _soft(inside) * f.cavity
    oedema = _soft(inside + rim) * brain * (1.0 - blood)
    return blood, oedema


def _ventricular(lesion: Lesion, f: AnatomyFields, y_level: float) -> np.ndarray:
    """Dependent blood in the occipital horns / atria below a horizontal fluid level."""
    horn = f.ventricle & (f.v > 18.0) & (np.abs(f.u) > 6.0)
    if lesion.side:
        horn &= f.u * lesion.side > 0
    return _soft(f.y - y_level) * horn


def _subarachnoid(lesion: Lesion, f: AnatomyFields) -> np.ndarray:
    """Blood filling the CSF spaces (sulci, fissures, cisterns) near ``lesion.centre``."""
    cu, cv, cz = lesion.centre
    dist = np.sqrt((f.u - cu) ** 2 + (f.v - cv) ** 2 + (f.z - cz) ** 2)
    return _soft(lesion.size[0] - dist) * (f.csf_space & ~f.ventricle)


def lesion_membership(
    lesion: Lesion, fields: AnatomyFields, y_level: float
) -> tuple[np.ndarray, np.ndarray | None]:
    """Soft blood membership (and oedema for parenchymal bleeds) on a block of slices.

    Args:
        lesion: the hemorrhage.
        fields: anatomy of the block (only the slices within ``lesion.z_range``).
        y_level: patient y (mm) of the fluid level, used by intraventricular blood.
    """
    if lesion.subtype in ("epidural", "subdural"):
        return _extra_axial(lesion, fields), None
    if lesion.subtype == "intraparenchymal":
        return _parenchymal(lesion, fields)
    if lesion.subtype == "intraventricular":
        return _ventricular(lesion, fields, y_level), None
    return _subarachnoid(lesion, fields), None
