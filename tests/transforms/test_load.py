"""LoadCTSeries(d): dataset items through a MONAI pipeline, slices aligned with their labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import Dataset
from monai.transforms import Compose

from ichbundles.constants import ICH_CLASSES
from ichbundles.data import folder_items
from ichbundles.data.synthetic import generate_dataset
from ichbundles.io import SeriesReadError, read_series
from ichbundles.transforms import BrainCropd, CTWindowd, LoadCTSeries, LoadCTSeriesd, ResizeSlicesd


@pytest.fixture(scope="module")
def items(tmp_path_factory):
    out = tmp_path_factory.mktemp("load")
    generate_dataset(out, 2, size=64, seed=3, quirks=("shuffled_names", "junk"), progress=False)
    return folder_items(
        out / "dicom",
        scan_labels_csv=out / "scan_labels.csv",
        slice_labels_csv=out / "labels.csv",
    )


def test_array_transform_returns_the_series(items):
    series = LoadCTSeries()(items[0]["image"])
    assert series.hu.dtype == np.float32
    assert list(series.sop_instance_uids) == items[0]["sop_instance_uids"]


def test_pipeline_gives_windowed_cropped_slices_with_aligned_labels(items):
    pipeline = Compose(
        [
            LoadCTSeriesd("image"),
            CTWindowd("image", windows="adjacent"),
            BrainCropd("image", source_key="image"),
            ResizeSlicesd("image", spatial_size=(32, 32)),
        ]
    )
    for item, out in zip(items, Dataset(items, transform=pipeline), strict=True):
        n_slices = len(item["sop_instance_uids"])
        assert tuple(out["image"].shape) == (n_slices, 3, 32, 32)
        assert float(out["image"].min()) >= 0.0 and float(out["image"].max()) <= 1.0
        assert out["slice_labels"].shape == (n_slices, len(ICH_CLASSES))
        meta = out["image_meta"]
        assert meta["sop_instance_uids"] == item["sop_instance_uids"]
        assert np.all(np.diff(meta["z_mm"]) > 0)
        assert meta["series_instance_uid"] == item["series_instance_uid"]
        # the item lists the series' own files, so the folder's junk is never met
        assert meta["warnings"] == []


def test_misaligned_item_raises(items):
    item = dict(items[0])
    item["sop_instance_uids"] = list(reversed(item["sop_instance_uids"]))
    with pytest.raises(SeriesReadError, match="labels would be misaligned"):
        LoadCTSeriesd("image")(item)


def test_hu_equals_read_series(items):
    out = LoadCTSeriesd("image")(items[1])
    np.testing.assert_array_equal(out["image"], read_series(items[1]["image"]).hu)


def test_scan_preprocessing_preset(items):
    from ichbundles.transforms import scan_preprocessing

    out = Compose(scan_preprocessing(size=48))(items[0])
    assert isinstance(out["image"], torch.Tensor) and out["image"].dtype == torch.float32
    assert tuple(out["image"].shape) == (len(items[0]["sop_instance_uids"]), 3, 48, 48)
    assert out["image_meta"]["sop_instance_uids"] == items[0]["sop_instance_uids"]
