"""Single source of truth for the classes, loss weights and CT window presets."""

from __future__ import annotations

from types import MappingProxyType

__all__ = [
    "ADJACENT_CONTEXT",
    "AIR_HU",
    "CLASS_WEIGHTS",
    "CQ500_READER_COLUMNS",
    "ICH_CLASSES",
    "NUM_CLASSES",
    "PREPROCESSING_VERSION",
    "SUBTYPES",
    "WINDOW_PRESETS",
]

#: Class order everywhere (RSNA 2019 file order); "any" is last.
ICH_CLASSES: tuple[str, ...] = (
    "epidural",
    "intraparenchymal",
    "intraventricular",
    "subarachnoid",
    "subdural",
    "any",
)
NUM_CLASSES = len(ICH_CLASSES)
#: The five subtypes, without "any".
SUBTYPES: tuple[str, ...] = ICH_CLASSES[:-1]

#: Weights of the RSNA weighted multi-label log loss, in ``ICH_CLASSES`` order (sum 7).
CLASS_WEIGHTS: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0, 2.0)

#: Window presets as (level, width) pairs in HU, named after their paper.
WINDOW_PRESETS: MappingProxyType[str, tuple[tuple[float, float], ...]] = MappingProxyType(
    {
        # papers 000 and 003: brain, subdural, bone-ish
        "att_mil": ((40.0, 80.0), (80.0, 200.0), (40.0, 380.0)),
        # papers 001 and 002: brain, subdural, bone
        "adjacent": ((40.0, 80.0), (75.0, 215.0), (600.0, 2800.0)),
        # paper 004
        "alis": ((50.0, 100.0), (50.0, 130.0), (150.0, 300.0)),
    }
)

#: Version of :func:`ichbundles.transforms.scan_preprocessing`'s output. Bundle configs put it in
#: their ``cache_dir``, so a change of output (2: the brain box from the largest 3D component)
#: starts a new cache instead of mixing old preprocessed scans with new ones.
PREPROCESSING_VERSION = 2

#: Slices on each side of a slice in paper 001's blocks of 7 adjacent slices.
ADJACENT_CONTEXT = 3

#: Hounsfield value of air; padding and pixels outside the scanner's field of view map to it.
AIR_HU = -1024.0

#: CQ500 ``reads.csv`` reader columns (without the ``R<k>:`` prefix) for each class.
CQ500_READER_COLUMNS: MappingProxyType[str, str] = MappingProxyType(
    {
        "epidural": "EDH",
        "intraparenchymal": "IPH",
        "intraventricular": "IVH",
        "subarachnoid": "SAH",
        "subdural": "SDH",
        "any": "ICH",
    }
)
