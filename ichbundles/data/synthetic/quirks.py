"""Archive quirks: names, which ones each scan gets, and the UID styles of the layouts."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np
from pydicom.uid import (
    UID,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

__all__ = [
    "COMPRESSED_SYNTAXES",
    "QUIRKS",
    "QUIRK_CHOICES",
    "STORAGE_QUIRKS",
    "UidFactory",
    "available_syntaxes",
    "expand_quirks",
    "scan_quirks",
    "tilt_for",
]

#: Every quirk name, in the order the manifest lists them.
QUIRKS: tuple[str, ...] = (
    "shuffled_names",
    "instance_numbers",
    "rsna_wrap",
    "unsigned",
    "slope",
    "monochrome1",
    "padding",
    "compressed",
    "extra_series",
    "duplicate_slice",
    "gap",
    "tilt",
    "junk",
)
#: What ``generate_dataset(quirks=...)`` accepts: every quirk name and ``"all"`` (argparse
#: ``choices``).
QUIRK_CHOICES: tuple[str, ...] = (*QUIRKS, "all")
#: Quirks that each define how pixels are stored; they exclude each other, so a scan gets one.
STORAGE_QUIRKS: tuple[str, ...] = ("rsna_wrap", "unsigned", "slope", "monochrome1", "padding")
#: Encapsulated transfer syntaxes the ``compressed`` quirk cycles through, per scan.
COMPRESSED_SYNTAXES: tuple[UID, ...] = (
    RLELossless,
    JPEG2000Lossless,
    JPEGLSLossless,
    JPEGLosslessSV1,
)
# Quirks that need a folder per series (the flat RSNA layout has none).
_FOLDER_QUIRKS = frozenset({"shuffled_names", "extra_series", "junk"})


def expand_quirks(requested: str | Iterable[str]) -> tuple[str, ...]:
    """Validate quirk names; ``"all"`` stands for every quirk; a single name may be a string.

    Raises:
        ValueError: for an unknown name (one line naming the accepted ones).
    """
    names = {requested} if isinstance(requested, str) else set(requested)
    unknown = sorted(str(n) for n in names - set(QUIRK_CHOICES))
    if unknown:
        raise ValueError(
            f"unknown quirk(s) {', '.join(map(repr, unknown))}; choose from "
            f"{', '.join(QUIRK_CHOICES)}"
        )
    if "all" in names:
        return QUIRKS
    return tuple(q for q in QUIRKS if q in names)


def scan_quirks(requested: tuple[str, ...], index: int, layout: str) -> frozenset[str]:
    """Quirks scan ``index`` gets: all requested ones, but one storage quirk (cycled by index).

    The RSNA layout is flat, so the quirks that need a series folder do not apply there.
    """
    storage = [q for q in requested if q in STORAGE_QUIRKS]
    chosen = {q for q in requested if q not in STORAGE_QUIRKS}
    if storage:
        chosen.add(storage[index % len(storage)])
    if layout == "rsna":
        chosen -= _FOLDER_QUIRKS
    return frozenset(chosen)


def available_syntaxes() -> tuple[UID, ...]:
    """The compressed syntaxes an installed encoder can write (pydicom's encoders or GDCM)."""
    from pydicom.pixels import get_encoder

    found = []
    for uid in COMPRESSED_SYNTAXES:
        if uid == JPEGLosslessSV1:
            # pydicom has no encoder for it; GDCM's ImageChangeTransferSyntax writes it.
            try:
                import gdcm  # noqa: F401
            except ImportError:
                continue
            found.append(uid)
        elif get_encoder(uid).is_available:
            found.append(uid)
    return tuple(found)


class UidFactory:
    """Deterministic UIDs for one scan.

    ``style="dicom"`` gives real UIDs (``generate_uid`` with entropy sources, so the same key
    always yields the same UIDs); ``style="rsna"`` gives RSNA 2019 style identifiers
    (``ID_`` + 9 hex digits for instances, 10 for studies and series), which are not valid
    DICOM UIDs but are what that archive holds.
    """

    def __init__(self, key: str, style: str = "dicom") -> None:
        self.key = key
        self.style = style

    def __call__(self, kind: str, *, dicom: bool = False) -> str:
        """UID for ``kind`` (e.g. ``"study"``, ``"sop-3"``); ``dicom=True`` forces a real UID."""
        if self.style == "dicom" or dicom or kind == "frame":
            return str(generate_uid(entropy_srcs=["ichbundles-synth", self.key, kind]))
        digest = hashlib.sha256(f"{self.key}/{kind}".encode()).hexdigest()
        return "ID_" + digest[: 9 if kind.startswith("sop") else 10]


def tilt_for(rng: np.random.Generator) -> float:
    """Gantry tilt of the ``tilt`` quirk: 10-25 degrees, either direction."""
    return float(rng.uniform(10.0, 25.0) * rng.choice([-1.0, 1.0]))
