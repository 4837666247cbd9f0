"""The preprocessing every bundle applies to a scan, defined once for training and inference."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.transforms import EnsureTyped, MapTransform

from ichbundles.transforms.brain_crop import BrainCropd
from ichbundles.transforms.load import LoadCTSeriesd
from ichbundles.transforms.resize import ResizeSlicesd
from ichbundles.transforms.windowing import CTWindowd

__all__ = ["scan_preprocessing"]


def scan_preprocessing(
    keys: str = "image",
    windows: str | Sequence[Sequence[float]] = "adjacent",
    size: int = 256,
    crop_margin: int = 0,
) -> list[MapTransform]:
    """Read, window, brain-crop and resize a scan: (S, C, size, size) float32 in [0, 1].

    Bundle configs list these transforms (``$ichbundles.transforms.scan_preprocessing(...)``)
    so that training, evaluation and inference cannot drift apart.

    Args:
        keys: the item key holding the series path (DICOM folder, file list or volume).
        windows: a preset of ``ichbundles.constants.WINDOW_PRESETS`` or (level, width) pairs.
        size: output rows and columns.
        crop_margin: pixels kept around the brain box.
    """
    return [
        LoadCTSeriesd(keys),
        CTWindowd(keys, windows=windows),
        BrainCropd(keys, source_key=keys, margin=crop_margin),
        ResizeSlicesd(keys, spatial_size=(size, size)),
        EnsureTyped(keys, data_type="tensor", dtype=torch.float32, track_meta=False),
    ]
