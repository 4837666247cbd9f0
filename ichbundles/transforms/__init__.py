"""MONAI-style transforms for head CT: loading, windowing, brain crop, slice resizing,
blocks of adjacent slices and scan-consistent augmentation."""

from __future__ import annotations

from ichbundles.transforms.augment import (
    OpticalDistortion,
    RandCropResize,
    RandCutMixScans,
    RandCutMixScansd,
    RandOpticalDistortion,
    RandScanSpatial,
    RandScanSpatiald,
)
from ichbundles.transforms.brain_crop import BrainCrop, BrainCropd, brain_box
from ichbundles.transforms.load import LoadCTSeries, LoadCTSeriesd
from ichbundles.transforms.presets import scan_preprocessing
from ichbundles.transforms.resize import ResizeSlices, ResizeSlicesd
from ichbundles.transforms.slice_blocks import RandSliceBlocksd, SliceBlock
from ichbundles.transforms.slice_window import RandSliceWindowd, SliceWindow
from ichbundles.transforms.windowing import CTWindow, CTWindowd, resolve_windows

__all__ = [
    "BrainCrop",
    "BrainCropd",
    "CTWindow",
    "CTWindowd",
    "LoadCTSeries",
    "LoadCTSeriesd",
    "OpticalDistortion",
    "RandCropResize",
    "RandCutMixScans",
    "RandCutMixScansd",
    "RandOpticalDistortion",
    "RandScanSpatial",
    "RandScanSpatiald",
    "RandSliceBlocksd",
    "RandSliceWindowd",
    "ResizeSlices",
    "ResizeSlicesd",
    "SliceBlock",
    "SliceWindow",
    "brain_box",
    "resolve_windows",
    "scan_preprocessing",
]
