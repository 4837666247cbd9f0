"""Stress factors: one thing a real archive varies, pushed outside the generator's normal range.

A robustness set is a held-out set rendered with a :class:`Stress`: every scan of a seed keeps
its anatomy, lesions, geometry and acquisition, and only the stressed factor takes the given
value. Each override is applied after the generator has drawn its normal value, so the random
streams are consumed exactly as without it; comparing a stressed set with the unstressed set of
the same seed is a controlled experiment.

=============  ==========================================  ==========================  ==========
factor         what the value sets (unit)                  normal range                stressed
=============  ==========================================  ==========================  ==========
noise          factor on the noise SD: realised as the     noise_scale 1.0-2.32 thick  x2.5
               acquisition's ``noise_scale`` (x value)     (1.41-3.6 thin); SD 2.5-8
                                                           HU x noise_scale
hu_offset      HU calibration offset (HU)                  -5 to +5                    +15, -15
sharpening     kernel's unsharp-mask amount                0 (soft), 0.2-0.6           2.5
                                                           (standard), 0.8-1.6 (sharp)
spacing        slice spacing = slab thickness (mm)         3-5 thick, 0.625-2.5 thin   7, 0.5
scale          head size factor                            0.85-1.15                   0.75, 1.25
rotation       in-plane head rotation, magnitude (deg);    -15 to +15                  30
               the drawn sign is kept
tilt           gantry tilt, magnitude (deg); the sign of   0 (``tilt`` quirk: 10-25    30
               the ``tilt`` quirk's draw, else +           either way)
fov            reconstruction field of view (mm), at       205-263                     340
               least 2.2 head extents (the head fits)
pv_blur        in-plane partial-volume blur, Gaussian      0.35-0.7                    1.2
               sigma (mm)
lesion_hu      base attenuation of every bleed (HU); its   50-88 (subtle 50-58)        44
               texture (about +-9 HU) moves with it
lesion_size    factor on every bleed's extent and          x1 (per-subtype ranges in   x0.6
               thickness (ventricular blood: the depth     ``lesions.py``)
               behind its fluid level)
=============  ==========================================  ==========================  ==========

The "stressed" column gives the values of the robustness benchmark
(``benchmarks/bench_robustness.py``); :data:`FACTORS` holds this table.

What stays fixed by design, so each factor is measured alone: a stressed spacing or sharpening
leaves the noise level as drawn (a real thinner slab or sharper kernel would also be noisier);
lesions are drawn over the z range of the unstressed geometry and then placed in the stressed
one, so a scale, spacing or field-of-view stress moves the slices, not the lesions in the head.
A lesion stress can change the labels: a bleed shrunk below 3 mm2 on every slice is no longer
labelled. ``generate_dataset`` gives a stressed scan its own UIDs, so stressed and unstressed
copies of a scan never share a SOPInstanceUID.

Example::

    from ichbundles.data.synthetic import Stress, generate_dataset, make_scan

    scan = make_scan(7, 64, stress=Stress(hu_offset=15.0))
    generate_dataset("robust/fov", 60, seed=7700, stress=["fov=340"])  # as --stress fov=340
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .acquisition import Acquisition, slab_offsets
from .anatomy import HeadParams
from .lesions import Lesion, resize_lesion, with_density

__all__ = ["FACTORS", "Factor", "Stress", "parse_stress"]


@dataclass(frozen=True)
class Factor:
    """One robustness factor.

    Attributes:
        name: its name in :class:`Stress`, ``--stress NAME=VALUE`` and ``SyntheticScan.factors``.
        unit: unit of its values (``"x"`` for a factor on the drawn value).
        normal: (low, high) of the realised value in unstressed thick-slice scans.
        normal_thin: the same for thin-slice scans, where it differs.
        stressed: values outside ``normal`` that the robustness benchmark uses.
        limits: (low, high) of the values accepted, where the phantom still renders sensibly.
    """

    name: str
    unit: str
    normal: tuple[float, float]
    stressed: tuple[float, ...]
    limits: tuple[float, float]
    normal_thin: tuple[float, float] | None = None

    def normal_range(self, thin: bool = False) -> tuple[float, float]:
        """Realised range in unstressed scans, thin-slice ones or thick ones."""
        return (self.normal_thin or self.normal) if thin else self.normal

    def describe(self, value: float | tuple[float, float]) -> str:
        """A value or range with the unit, e.g. ``"0.85-1.15"``, ``"x2.5"``, ``"+15 HU"``."""
        if isinstance(value, tuple):
            low, high = value
            dash = " to " if low < 0 else "-"  # "-5 to 5", not "-5-5"
            text = f"{low:g}" if low == high else f"{low:g}{dash}{high:g}"
        else:
            text = f"{value:+g}" if self.name == "hu_offset" else f"{value:g}"
        if self.unit == "x":
            return f"x{text}"
        return f"{text} {self.unit}" if self.unit else text


#: The factors, in the order of the module table. The realised value of ``noise`` is the
#: acquisition's ``noise_scale``; ``lesion_hu`` and ``lesion_size`` act per lesion (the lesion
#: records' ``hu`` and ``size_mm``), so ``SyntheticScan.factors`` has no entry for them.
FACTORS: dict[str, Factor] = {
    f.name: f
    for f in (
        Factor("noise", "x", (1.0, 2.33), (2.5,), (0.1, 10.0), normal_thin=(1.41, 3.6)),
        Factor("hu_offset", "HU", (-5.0, 5.0), (15.0, -15.0), (-100.0, 100.0)),
        Factor("sharpening", "", (0.0, 1.6), (2.5,), (0.0, 5.0)),
        Factor("spacing", "mm", (3.0, 5.0), (7.0, 0.5), (0.3, 10.0), normal_thin=(0.625, 2.5)),
        Factor("scale", "x", (0.85, 1.15), (0.75, 1.25), (0.5, 1.5)),
        Factor("rotation", "deg", (-15.0, 15.0), (30.0,), (0.0, 90.0)),
        Factor("tilt", "deg", (-25.0, 25.0), (30.0,), (0.0, 40.0)),
        Factor("fov", "mm", (205.0, 263.12), (340.0,), (150.0, 500.0)),
        Factor("pv_blur", "mm", (0.35, 0.7), (1.2,), (0.0, 5.0)),
        Factor("lesion_hu", "HU", (50.0, 88.0), (44.0,), (0.0, 100.0)),
        Factor("lesion_size", "x", (1.0, 1.0), (0.6,), (0.2, 2.0)),
    )
}


@dataclass(frozen=True)
class Stress:
    """Factor values that replace the generator's draws; ``None`` keeps the drawn value.

    See the module docstring for what each sets and its normal range. ``Stress()`` changes
    nothing: its scans are those of ``make_scan`` without a stress.

    Raises:
        ValueError: a value that is not a finite number within the factor's ``limits``.
    """

    noise: float | None = None
    hu_offset: float | None = None
    sharpening: float | None = None
    spacing: float | None = None
    scale: float | None = None
    rotation: float | None = None
    tilt: float | None = None
    fov: float | None = None
    pv_blur: float | None = None
    lesion_hu: float | None = None
    lesion_size: float | None = None

    def __post_init__(self) -> None:
        for name, value in self.values().items():
            low, high = FACTORS[name].limits
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"stress {name}: {value!r} is not a number")
            if not (math.isfinite(value) and low <= value <= high):
                raise ValueError(f"stress {name}={value} is outside {low:g} to {high:g}")
            object.__setattr__(self, name, float(value))

    def values(self) -> dict[str, float]:
        """The factors this stress sets, ``{name: value}`` in table order."""
        return {
            f.name: v for f in dataclasses.fields(self) if (v := getattr(self, f.name)) is not None
        }

    def __bool__(self) -> bool:
        return bool(self.values())

    def tag(self) -> str:
        """``name=value,...`` of the factors set (``""`` for none): a stable key of the stress."""
        return ",".join(f"{name}={value:g}" for name, value in self.values().items())

    @property
    def moves_geometry(self) -> bool:
        """Whether the stress changes the slices' or pixels' placement (not only their values)."""
        return any(v is not None for v in (self.spacing, self.scale, self.fov))

    def acquisition(self, drawn: Acquisition) -> Acquisition:
        """The acquisition with the noise, calibration, kernel and spacing factors applied."""
        changes: dict = {}
        if self.noise is not None:
            changes["noise_scale"] = drawn.noise_scale * self.noise
        if self.hu_offset is not None:
            changes["hu_offset"] = self.hu_offset
        if self.sharpening is not None:
            amount = self.sharpening
            # the kernel's name follows the amount as sample_acquisition draws them
            changes["kernel"] = "soft" if amount == 0 else "standard" if amount < 0.7 else "sharp"
            changes["sharpening"] = amount
        if self.spacing is not None:
            changes["spacing"] = self.spacing
            changes["slab_offsets"] = slab_offsets(self.spacing)
        return dataclasses.replace(drawn, **changes) if changes else drawn

    def head(self, drawn: HeadParams) -> HeadParams:
        """The head with the scale and rotation factors applied (rotation keeps its sign)."""
        changes: dict = {}
        if self.scale is not None:
            changes["scale"] = self.scale
        if self.rotation is not None:
            changes["rotation"] = math.copysign(math.radians(self.rotation), drawn.rotation)
        return dataclasses.replace(drawn, **changes) if changes else drawn

    def tilted(self, drawn: float) -> float:
        """Gantry tilt in degrees: the stressed magnitude with the drawn sign (+ for none)."""
        return drawn if self.tilt is None else math.copysign(self.tilt, drawn or 1.0)

    def lesion(self, drawn: Lesion) -> Lesion:
        """The lesion with the size and density factors applied."""
        lesion = drawn
        if self.lesion_size is not None:
            lesion = resize_lesion(lesion, self.lesion_size)
        if self.lesion_hu is not None:
            lesion = with_density(lesion, self.lesion_hu)
        return lesion


def parse_stress(items: str | Iterable[str] | Mapping[str, float] | Stress | None) -> Stress:
    """A :class:`Stress` from ``NAME=VALUE`` strings (the command line), a mapping or itself.

    Raises:
        ValueError: one line, for an unknown name (listing the names), a repeated one, or a
            value that is not a number within the factor's limits.
    """
    if items is None or isinstance(items, Stress):
        return items or Stress()
    if isinstance(items, str):
        items = [items]
    if isinstance(items, Mapping):
        pairs = [(str(k), v) for k, v in items.items()]
    else:
        pairs = []
        for item in items:
            name, sep, text = str(item).partition("=")
            if not sep:
                raise ValueError(f"stress {item!r} is not NAME=VALUE; names: {', '.join(FACTORS)}")
            try:
                value = float(text)
            except ValueError:
                raise ValueError(f"stress {name}: {text!r} is not a number") from None
            pairs.append((name.strip(), value))
    names = [name for name, _ in pairs]
    unknown = [name for name in names if name not in FACTORS]
    if unknown:
        raise ValueError(f"unknown stress factor {unknown[0]!r}; names: {', '.join(FACTORS)}")
    repeated = [name for name in FACTORS if names.count(name) > 1]
    if repeated:
        raise ValueError(f"stress factor {repeated[0]!r} given twice")
    return Stress(**dict(pairs))
