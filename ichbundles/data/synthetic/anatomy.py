"""Head phantom: tissue map and Hounsfield values of an axial head CT, built from implicit shapes.

All shapes live in a *head frame* in millimetres at unit scale: ``u`` to the patient's left, ``v``
to posterior, ``z`` to superior, with the skull base near ``z = 0`` and the vertex near
``z = 115``. A scan maps patient coordinates (LPS) into that frame with the head's scale,
in-plane rotation and position, so every slice is rendered directly from its DICOM geometry
(tilted acquisitions included) with vectorised numpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import IntEnum

import numpy as np

__all__ = [
    "CAVITY",
    "HEAD_TOP",
    "AnatomyFields",
    "HeadParams",
    "Tissue",
    "render_anatomy",
    "sample_head",
]

#: Intracranial ellipsoid: centre (u, v, z) and semi-axes in the head frame (mm at scale 1).
CAVITY = ((0.0, 5.0, 30.0), (68.0, 86.0, 72.0))
#: Head frame z of the outer vertex (cavity top + skull + scalp).
HEAD_TOP = 115.0


class Tissue(IntEnum):
    """Tissue codes of the phantom's label map."""

    AIR = 0
    SKIN = 1
    FAT = 2
    MUSCLE = 3
    CORTICAL = 4
    DIPLOE = 5
    GREY = 6
    WHITE = 7
    CSF = 8
    DEEP_GREY = 9
    CEREBELLUM = 10
    BRAINSTEM = 11
    CALCIFICATION = 12
    FALX = 13
    EYE = 14
    TABLE = 15
    TRABECULAR = 16
    OEDEMA = 17
    BLOOD = 18


#: Ranges (HU) each scan draws its tissue values from; blood is drawn per lesion.
_HU_RANGES: dict[Tissue, tuple[float, float]] = {
    Tissue.AIR: (-1000.0, -1000.0),
    Tissue.SKIN: (25.0, 55.0),
    Tissue.FAT: (-110.0, -80.0),
    Tissue.MUSCLE: (40.0, 55.0),
    Tissue.CORTICAL: (1100.0, 1600.0),
    Tissue.DIPLOE: (350.0, 550.0),
    Tissue.GREY: (36.0, 44.0),
    Tissue.WHITE: (21.0, 29.0),
    Tissue.CSF: (3.0, 12.0),
    Tissue.CALCIFICATION: (120.0, 380.0),
    Tissue.FALX: (42.0, 60.0),
    Tissue.EYE: (5.0, 15.0),
    Tissue.TABLE: (-180.0, 80.0),
    Tissue.TRABECULAR: (250.0, 450.0),
    Tissue.OEDEMA: (10.0, 20.0),
    Tissue.BLOOD: (50.0, 90.0),
}


@dataclass(frozen=True)
class HeadParams:
    """Per-scan anatomy parameters.

    Attributes:
        scale: isotropic head size factor (0.85-1.15).
        centre: patient LPS position (mm) of the head-frame origin.
        rotation: in-plane head rotation (radians).
        skull: skull thickness (mm at scale 1); ``scalp`` likewise.
        ventricles: lateral-ventricle size factor (larger = atrophy/age).
        atrophy: 0..1, widens sulci, fissures and the cortical CSF rim.
        sulci: number of sulci around the hemisphere circumference.
        phases: random phases of the cerebellar folia pattern.
        folds: (N, 4) float32 wave vectors (rad/mm) and phases of the random field on the brain
            surface whose zero set is the cortical sulci (meandering, branching curves).
        pineal, choroid: whether those calcifications are present.
        table: ("flat" | "curved" | "both", gap between occiput and support in mm).
        hu: tissue value table (index = Tissue code).
    """

    scale: float
    centre: tuple[float, float, float]
    rotation: float
    skull: float
    scalp: float
    ventricles: float
    atrophy: float
    sulci: int
    phases: tuple[float, ...]
    pineal: bool
    choroid: bool
    table: tuple[str, float]
    hu: np.ndarray = field(repr=False)
    folds: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32), repr=False)


def sample_head(rng: np.random.Generator, centre: tuple[float, float, float]) -> HeadParams:
    """Draw one head's anatomy; ``centre`` is where the caller placed the head in the scanner."""
    hu = np.zeros(len(Tissue), dtype=np.float32)
    for tissue, (low, high) in _HU_RANGES.items():
        hu[tissue] = rng.uniform(low, high)
    # Keep a visible grey/white contrast as on real scanners (6-15 HU).
    hu[Tissue.WHITE] = np.clip(hu[Tissue.WHITE], hu[Tissue.GREY] - 13.0, hu[Tissue.GREY] - 6.0)
    hu[Tissue.DEEP_GREY] = hu[Tissue.GREY] - rng.uniform(1.0, 4.0)
    hu[Tissue.CEREBELLUM] = hu[Tissue.GREY] - rng.uniform(0.0, 3.0)
    hu[Tissue.BRAINSTEM] = hu[Tissue.WHITE] + rng.uniform(2.0, 6.0)
    atrophy = float(rng.beta(1.5, 3.0))
    head = HeadParams(
        scale=float(rng.uniform(0.85, 1.15)),
        centre=centre,
        rotation=float(np.radians(rng.uniform(-15.0, 15.0))),
        skull=float(rng.uniform(5.5, 8.5)),
        scalp=float(rng.uniform(4.0, 7.0)),
        ventricles=float(rng.uniform(0.75, 1.1) + 0.6 * atrophy),
        atrophy=atrophy,
        sulci=int(rng.integers(48, 70)),
        phases=tuple(float(p) for p in rng.uniform(0.0, 2.0 * np.pi, 6)),
        pineal=bool(rng.random() < 0.7),
        choroid=bool(rng.random() < 0.6),
        table=(str(rng.choice(["flat", "curved", "both"])), float(rng.uniform(2.0, 8.0))),
        hu=hu,
    )
    return replace(head, folds=_sample_folds(head.phases, head.sulci))


def _sample_folds(phases: tuple[float, ...], sulci: int, waves: int = 9) -> np.ndarray:
    """Wave vectors and phases of the sulcal field, about ``sulci`` sulci around the head.

    Drawn from a generator seeded by ``phases``, so they leave the scan's main random stream
    (geometry, lesions) as it was.
    """
    rng = np.random.default_rng(np.frombuffer(np.asarray(phases, np.float64).tobytes(), np.uint32))
    # A random wave field crosses zero every ~0.87 wavelengths along a line: this wavelength
    # gives roughly ``sulci`` sulci around the ~470 mm circumference at the cortex.
    wavelength = 760.0 / sulci * rng.uniform(0.8, 1.25, waves)
    k = rng.normal(size=(waves, 3))
    k *= (2.0 * np.pi / wavelength / np.linalg.norm(k, axis=1))[:, None]
    return np.column_stack([k, rng.uniform(0.0, 2.0 * np.pi, waves)]).astype(np.float32)


@dataclass
class AnatomyFields:
    """Head-frame coordinates and masks of a block of slices, shared with the lesion painter.

    Arrays are (c, H, W) unless noted; ``z`` is (c, 1, 1) and ``y`` (patient y) is (c, H, 1).
    """

    u: np.ndarray
    v: np.ndarray
    z: np.ndarray
    y: np.ndarray
    depth: np.ndarray
    cavity: np.ndarray
    csf_space: np.ndarray
    ventricle: np.ndarray
    tissue: np.ndarray


def _ellipsoid(u, v, z, centre, axes) -> np.ndarray:
    """Normalised squared radius of an ellipsoid (< 1 inside)."""
    (cu, cv, cz), (au, av, az) = centre, axes
    return ((u - cu) / au) ** 2 + ((v - cv) / av) ** 2 + ((z - cz) / az) ** 2


def _mirrored(u, v, z, centre, axes) -> np.ndarray:
    """Inside test of a left/right pair of ellipsoids (the head is symmetric in ``u``)."""
    return _ellipsoid(np.abs(u), v, z, centre, axes) < 1.0


def _sigmoid(x) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def cavity_floor(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Height of the cranial floor: anterior fossa high, middle fossae lower, posterior lowest."""
    w_post = _sigmoid((v - 15.0) / 5.0)
    w_ant = _sigmoid((-28.0 - v) / 5.0)
    w_mid = 1.0 - w_post - w_ant
    f_ant = 8.0 + 0.002 * u * u
    f_mid = -15.0 + 17.0 * np.exp(-((u / 16.0) ** 2))
    f_post = -40.0 + 0.004 * u * u + 0.003 * (v - 45.0) ** 2
    return w_ant * f_ant + w_mid * f_mid + w_post * f_post


def _head_outline(z: float, head: HeadParams) -> tuple[float, float, float]:
    """Semi-axes (u, v) and v-centre of the skin outline at head-frame height ``z``."""
    (_, cv, cz), (a, b, c) = CAVITY
    pad = head.skull + head.scalp
    top = max(0.0, 1.0 - ((max(z, cz - 30.0) - cz) / (c + pad)) ** 2) ** 0.5
    ru, rv = (a + pad) * top, (b + pad) * top
    if z >= cz - 30.0:
        return max(ru, 1e-3), max(rv, 1e-3), cv
    # Below the skull base the outline narrows smoothly from face to neck.
    t = float(np.clip((cz - 30.0 - z) / 100.0, 0.0, 1.0))
    t = t * t * (3.0 - 2.0 * t)
    return ru + (56.0 - ru) * t, rv + (60.0 - rv) * t, cv + 12.0 * t


def render_anatomy(
    head: HeadParams, x: np.ndarray, y: np.ndarray, z_patient: np.ndarray, texture: np.ndarray
) -> AnatomyFields:
    """Render the tissue map of a block of slices.

    Only pixels inside the skin outline are evaluated (as 1-D arrays), and the brain's costly
    shapes only inside the cranial cavity: that keeps a 40-slice scan well under a second.

    Args:
        head: the head's parameters.
        x: (W,) patient x of the columns (mm).
        y: (c, H) patient y of the rows of each slice (differs per slice under gantry tilt).
        z_patient: (c,) patient z of each slice.
        texture: (c, H, W) float32 noise in [0, 1) used for bone and air-cell texture.

    Returns:
        The block's fields; ``tissue`` holds Tissue codes.
    """
    s = head.scale
    cx, cy, cz0 = head.centre
    cos, sin = np.float32(np.cos(head.rotation)), np.float32(np.sin(head.rotation))
    dx = ((x - cx) / s).astype(np.float32)[None, None, :]
    dy = ((y - cy) / s).astype(np.float32)[:, :, None]
    u = cos * dx + sin * dy
    v = -sin * dx + cos * dy
    zs = ((np.asarray(z_patient, dtype=np.float32) - cz0) / s)[:, None, None]
    shape = u.shape
    tissue = np.zeros(shape, dtype=np.uint8)
    _paint_table(tissue, head, x, y)

    # Skin outline (one ellipse per slice); everything else is evaluated on its pixels only.
    outline = np.array([_head_outline(float(zk), head) for zk in zs[:, 0, 0]], dtype=np.float32)
    ru, rv, rc = (outline[:, i, None, None] for i in range(3))
    inside = np.flatnonzero((u / ru) ** 2 + ((v - rc) / rv) ** 2 < 1.0)
    uu, vv = u.ravel()[inside], v.ravel()[inside]
    slice_of = inside // (shape[1] * shape[2])
    zz = zs.ravel()[slice_of]
    ru, rv, rc = (outline[slice_of, i] for i in range(3))
    q_head = (uu / ru) ** 2 + ((vv - rc) / rv) ** 2
    head_tissue = np.full(uu.shape, Tissue.SKIN, dtype=np.uint8)
    r_min = np.maximum(np.minimum(ru, rv), 1.0)
    head_tissue[q_head < (1.0 - 1.8 / r_min) ** 2] = Tissue.FAT
    head_tissue[q_head < (1.0 - 4.3 / r_min) ** 2] = Tissue.MUSCLE

    centre, axes = CAVITY
    skull = head.skull
    tex = texture.ravel()[inside]
    q_cav = _ellipsoid(uu, vv, zz, centre, axes)
    floor = cavity_floor(uu, vv)
    bone = (_ellipsoid(uu, vv, zz, centre, tuple(a + skull for a in axes)) < 1.0) & (
        zz > floor - 10.0
    )
    head_tissue[bone] = Tissue.CORTICAL
    diploe = (
        (_ellipsoid(uu, vv, zz, centre, tuple(a + 0.7 * skull for a in axes)) < 1.0)
        & (_ellipsoid(uu, vv, zz, centre, tuple(a + 0.3 * skull for a in axes)) > 1.0)
        & (zz > floor + 4.0)
    )
    head_tissue[bone & (diploe | ((zz < floor - 3.0) & (tex < 0.55)))] = Tissue.DIPLOE
    _paint_face_and_neck(head_tissue, uu, vv, zz, floor, tex)

    # Brain: cavity above the floor, plus the brainstem through the foramen magnum.
    r_stem = np.sqrt(uu * uu + (vv - 18.0) ** 2)
    stem = (r_stem < 12.0) & (zz > -45.0) & (zz < 16.0)
    in_cav = np.flatnonzero(((q_cav < 1.0) & (zz > floor)) | stem)
    bu, bv, bz, b_stem, b_rstem = uu[in_cav], vv[in_cav], zz[in_cav], stem[in_cav], r_stem[in_cav]
    r3 = np.sqrt(bu * bu + (bv - centre[1]) ** 2 + (bz - centre[2]) ** 2)
    depth = np.minimum(
        r3 * (1.0 / np.sqrt(np.maximum(q_cav[in_cav], 1e-6)) - 1.0), bz - floor[in_cav]
    )
    depth = np.where(b_stem, np.maximum(depth, 12.0 - b_rstem), depth)
    brain = np.full(bu.shape, Tissue.WHITE, dtype=np.uint8)
    csf, vent = _paint_brain(brain, head, bu, bv, bz, depth, b_stem, b_rstem)
    head_tissue[in_cav] = brain
    tissue.ravel()[inside] = head_tissue

    cav_idx = inside[in_cav]
    full_depth = np.full(shape, -1.0, dtype=np.float32)
    full_depth.ravel()[cav_idx] = depth
    masks = [np.zeros(shape, dtype=bool) for _ in range(3)]
    for mask, values in zip(masks, (np.ones(in_cav.shape, bool), csf, vent), strict=True):
        mask.ravel()[cav_idx] = values
    return AnatomyFields(
        u=u,
        v=v,
        z=zs,
        y=np.asarray(y, dtype=np.float32)[:, :, None],
        depth=full_depth,
        cavity=masks[0],
        csf_space=masks[1],
        ventricle=masks[2],
        tissue=tissue,
    )


def _paint_table(tissue: np.ndarray, head: HeadParams, x: np.ndarray, y: np.ndarray) -> None:
    """Headrest (a cup under the occiput) and/or flat table below the head, in patient space."""
    kind, gap = head.table
    cx, cy, _ = head.centre
    back = (CAVITY[1][1] + CAVITY[0][1] + head.skull + head.scalp) * head.scale  # occiput
    dx = (x - cx)[None, None, :]
    dy = (y - cy)[:, :, None]
    flat_top = cy + back + gap
    if kind in ("curved", "both"):
        side = (CAVITY[1][0] + head.skull + head.scalp) * head.scale + gap
        radius = back + gap
        r = np.sqrt((dx / side) ** 2 + (dy / radius) ** 2)
        cup = (r > 1.0) & (r < 1.0 + 9.0 / radius) & (dy > 0.3 * radius)
        tissue[cup] = Tissue.TABLE
        flat_top = cy + radius + 11.0
    if kind in ("flat", "both"):
        slab = (y[:, :, None] > flat_top) & (y[:, :, None] < flat_top + 14.0)
        tissue[np.broadcast_to(slab, tissue.shape) & (np.abs(dx) < 200.0)] = Tissue.TABLE


def _paint_face_and_neck(tissue, u, v, zs, floor, texture) -> None:
    """Orbits, sinuses, mastoid air cells, airway, spine and mandible below the cranial floor."""
    soft = tissue == Tissue.MUSCLE
    in_head = tissue != Tissue.AIR
    below = zs < floor - 10.0
    air = Tissue.AIR
    tissue[_mirrored(u, v, zs, (30.0, -66.0, -8.0), (17.0, 17.0, 16.0)) & in_head] = Tissue.FAT
    tissue[_mirrored(u, v, zs, (30.0, -68.0, -8.0), (12.0, 12.0, 12.0)) & in_head] = Tissue.EYE
    tissue[_mirrored(u, v, zs, (22.0, -48.0, -36.0), (13.0, 17.0, 15.0)) & in_head] = air
    nasal = (_ellipsoid(u, v, zs, (0.0, -62.0, -30.0), (9.0, 20.0, 18.0)) < 1.0) & in_head
    tissue[nasal & (np.abs(u) > 1.0)] = air
    tissue[(_ellipsoid(u, v, zs, (0.0, -18.0, -14.0), (12.0, 10.0, 8.0)) < 1.0)] = air
    mastoid = _mirrored(u, v, zs, (50.0, 22.0, -20.0), (9.0, 12.0, 10.0)) & (texture > 0.45)
    tissue[mastoid & in_head] = air
    neck = below & (zs < -40.0) & in_head
    tissue[neck & soft & ((u * u + (v + 18.0) ** 2) < 49.0)] = air
    body = (u / 10.0) ** 2 + ((v - 4.0) / 9.0) ** 2
    tissue[neck & (body < 1.0)] = Tissue.CORTICAL
    tissue[neck & (body < 0.7)] = Tissue.TRABECULAR
    r_canal = np.sqrt(u * u + (v - 22.0) ** 2)
    tissue[neck & (r_canal < 12.0) & (v > 18.0)] = Tissue.CORTICAL
    tissue[neck & (r_canal < 8.0)] = Tissue.CSF
    tissue[neck & (r_canal < 5.0)] = Tissue.BRAINSTEM
    jaw = (u / 46.0) ** 2 + ((v + 20.0) / 58.0) ** 2
    tissue[in_head & (zs < -55.0) & (zs > -105.0) & (v < -25.0) & (jaw < 1.0) & (jaw > 0.8)] = (
        Tissue.CORTICAL
    )


def _sulcal_distance(head: HeadParams, u, v, zs, depth, count: float) -> np.ndarray:
    """Distance (mm) to the nearest sulcus of a wavy, roughly radial sulcal pattern.

    Sulci are the integer level sets of a phase that winds ``count`` times around the head and
    is warped by low-frequency terms in azimuth, height and depth, so gyri meander and bend.
    """
    p = head.phases
    phi = np.arctan2(v - np.float32(CAVITY[0][1]), u)
    pattern = (
        np.float32(count / (2.0 * np.pi)) * phi
        + 1.6 * np.sin(2.0 * phi + zs / 14.0 + p[0])
        + 1.1 * np.sin(5.0 * phi - zs / 9.0 + p[1])
        + 0.8 * np.sin(zs / 7.0 + 3.0 * phi + p[2])
        + 0.45 * np.sin(depth / 3.0 + 7.0 * phi + p[3])
    )
    radius = np.sqrt(u * u + (v - np.float32(CAVITY[0][1])) ** 2) + depth
    return np.abs(pattern - np.round(pattern)) * (np.float32(2.0 * np.pi / count) * radius)


def _cortical_sulci(head: HeadParams, u, v, zs, depth) -> tuple[np.ndarray, np.ndarray]:
    """Distance (mm) to the nearest cortical sulcus and the local sulcal reach (0.6-1.0).

    On 1-D arrays of cortical-shell pixels. Sulci are the zero set of a sum of random plane
    waves (``head.folds``) evaluated at each point's radial projection onto the cavity surface:
    on the surface they are meandering, branching curves around gyri; a depth term bends them
    as they run inwards. The distance is ``|F| / |tangential gradient of F|``, scaled from the
    surface down to the point's depth. The reach (a fraction of the sulcal depth) varies
    smoothly so that some sulci are shallower than others.
    """
    (cu, cv, cz), (a, b, c) = CAVITY
    du, dv, dz = u - np.float32(cu), v - np.float32(cv), zs - np.float32(cz)
    rho = np.sqrt((du / a) ** 2 + (dv / b) ** 2 + (dz / c) ** 2) + np.float32(1e-6)
    su, sv, sz = du / rho, dv / rho, dz / rho
    value = np.zeros_like(su)
    gu, gv, gz = np.zeros_like(su), np.zeros_like(su), np.zeros_like(su)
    for ku, kv, kz, phase in head.folds:
        arg = ku * su + kv * sv + kz * sz + phase
        value += np.sin(arg)
        cos = np.cos(arg)
        gu += ku * cos
        gv += kv * cos
        gz += kz * cos
    # ``arg`` is now the last wave's: reuse it for the bend with depth and the reach.
    value += np.float32(0.7) * np.sin(depth * np.float32(0.3) + arg)
    reach = np.float32(0.8) + np.float32(0.2) * np.sin(np.float32(0.4) * arg + np.float32(1.0))
    # Drop the gradient's component along the surface normal (the field is constant along it).
    nu, nv, nz = su / a**2, sv / b**2, sz / c**2
    along = (gu * nu + gv * nv + gz * nz) / (nu * nu + nv * nv + nz * nz)
    slope = np.sqrt((gu - along * nu) ** 2 + (gv - along * nv) ** 2 + (gz - along * nz) ** 2)
    floor = np.float32(0.25 * np.linalg.norm(head.folds[0, :3]))
    return np.abs(value) / np.maximum(slope, floor) * rho, reach


def _paint_brain(tissue, head, u, v, zs, depth, stem, r_stem) -> tuple[np.ndarray, np.ndarray]:
    """Brain tissues on the cavity's pixels (1-D arrays); returns the CSF and ventricle masks."""
    atrophy = head.atrophy
    tentorium = 4.0 + 0.22 * (v - 20.0)
    infra = (zs < tentorium) & (v > 8.0) & ~stem
    supra = ~infra & ~stem
    sulcus_depth = 12.0 + 6.0 * atrophy
    csf = depth < 0.6 + 1.8 * atrophy
    tissue[supra & (depth < 3.0)] = Tissue.GREY
    # The sulcal pattern is only evaluated in the cortical shell, where it can matter.
    shell = np.flatnonzero(supra & (depth < sulcus_depth + 3.0))
    d = depth[shell]
    g, reach = _cortical_sulci(head, u[shell], v[shell], zs[shell], d)
    width = (1.0 + 1.6 * atrophy) * np.clip(1.0 - d / (sulcus_depth * reach), 0.0, 1.0)
    tissue[shell[(g < width / 2.0 + 2.2) & (d < sulcus_depth * reach + 2.0)]] = Tissue.GREY
    csf[shell[(g < width / 2.0) & (d < sulcus_depth * reach)]] = True
    tissue[_mirrored(u, v, zs, (18.0, 4.0, 27.0), (8.0, 15.0, 9.0)) & supra] = Tissue.DEEP_GREY
    tissue[_mirrored(u, v, zs, (9.0, 15.0, 32.0), (7.0, 10.0, 8.0)) & supra] = Tissue.DEEP_GREY
    tissue[infra] = Tissue.CEREBELLUM
    tissue[stem] = Tissue.BRAINSTEM
    folia = np.flatnonzero(infra & (depth < 6.0))
    g_cb = _sulcal_distance(
        head, u[folia], v[folia], zs[folia] * 1.7, depth[folia], 1.8 * head.sulci
    )
    csf[folia[g_cb < 0.4 + 0.5 * atrophy]] = True
    fissure = supra & (np.abs(u) < 1.0 + 1.5 * atrophy) & (depth < 32.0) & (zs > 12.0)
    csf |= fissure
    sylvian = np.abs(v + 8.0 + 0.55 * (np.abs(u) - 45.0)) < 1.2 + 1.5 * atrophy
    csf |= supra & sylvian & (np.abs(u) > 34.0) & (depth < 24.0) & (zs > 6.0) & (zs < 30.0)
    cistern = (r_stem > 12.0) & (r_stem < 15.5 + 2.0 * atrophy) & (v < 28.0)
    csf |= cistern & (zs > -30.0) & (zs < 16.0)
    suprasellar = _ellipsoid(u, v, zs, (0.0, -6.0, 10.0), (11.0, 8.0, 4.5)) < 1.0
    csf |= suprasellar & (u * u + (v + 6.0) ** 2 > 6.0)
    csf |= _ellipsoid(u, v, zs, (0.0, 32.0, -14.0), (5.0, 4.0, 7.0)) < 1.0  # fourth ventricle
    tissue[csf] = Tissue.CSF
    tissue[fissure & (np.abs(u) < 0.5)] = Tissue.FALX
    vent = _paint_ventricles(tissue, head, u, v, zs)
    return csf | vent, vent


# Left lateral ventricle as ellipsoids (centre, semi-axes), mirrored to the right; the third
# ventricle lies on the midline. Sizes in u grow with the ventricle factor.
_VENTRICLE_PARTS = (
    ((10.0, -2.0, 46.0), (4.5, 26.0, 8.0)),  # body
    ((10.0, -25.0, 40.0), (5.5, 9.0, 9.0)),  # frontal horn
    ((17.0, 29.0, 34.0), (6.0, 12.0, 8.0)),  # atrium
    ((21.0, 44.0, 30.0), (3.5, 9.0, 5.0)),  # occipital horn
    ((31.0, 0.0, 14.0), (2.5, 10.0, 3.5)),  # temporal horn
)


def _paint_ventricles(tissue, head, u, v, zs) -> np.ndarray:
    """Lateral and third ventricles (with septum) and the pineal / choroid calcifications."""
    k = head.ventricles
    vent = np.zeros(u.shape, dtype=bool)
    for (cu, cv, cz), (au, av, az) in _VENTRICLE_PARTS:
        vent |= _mirrored(u, v, zs, (cu * (0.8 + 0.2 * k), cv, cz), (au * k, av, az * k**0.5))
    vent &= np.abs(u) > 1.2  # septum pellucidum
    vent |= _ellipsoid(u, v, zs, (0.0, 3.0, 25.0), (1.5 + 1.5 * k, 12.0, 7.0)) < 1.0
    tissue[vent] = Tissue.CSF
    if head.pineal:
        tissue[_ellipsoid(u, v, zs, (0.0, 22.0, 29.0), (2.5, 2.5, 2.5)) < 1.0] = (
            Tissue.CALCIFICATION
        )
    if head.choroid:
        tissue[_mirrored(u, v, zs, (17.0 * (0.8 + 0.2 * k), 30.0, 33.0), (2.5, 3.0, 2.5))] = (
            Tissue.CALCIFICATION
        )
    return vent
