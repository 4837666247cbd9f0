from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from ichbundles.transforms import ResizeSlices, ResizeSlicesd

ARRAY_TYPES = [np.asarray, torch.as_tensor]


@pytest.mark.parametrize("shape", [(16, 12), (3, 16, 12), (3, 2, 16, 12)])
@pytest.mark.parametrize("mode", ["area", "bilinear"])
@pytest.mark.parametrize("to_type", ARRAY_TYPES)
def test_shape_type_and_constant_image(shape, mode, to_type):
    img = to_type(np.full(shape, 0.7, dtype=np.float32))
    out = ResizeSlices((8, 10), mode=mode)(img)
    assert type(out) is type(img)
    assert out.shape == (*shape[:-2], 8, 10)
    np.testing.assert_allclose(np.asarray(out), 0.7, rtol=1e-6)


def test_area_downsample_averages_2x2_blocks():
    img = np.arange(16, dtype=np.float32).reshape(4, 4)
    expected = [[2.5, 4.5], [10.5, 12.5]]
    np.testing.assert_allclose(ResizeSlices((2, 2))(img), expected)
    # each slice and channel is resized on its own
    scan = np.stack([img, 10 * img])[:, None]  # (S=2, C=1, 4, 4)
    np.testing.assert_allclose(ResizeSlices((2, 2))(scan)[1, 0], 10 * np.array(expected))


def test_integer_input_gives_float32():
    out = ResizeSlices((2, 2))(np.arange(16, dtype=np.int16).reshape(4, 4))
    assert out.dtype == np.float32
    assert out[0, 0] == 2.5


def test_metatensor_stays_metatensor():
    out = ResizeSlices((4, 4))(MetaTensor(torch.ones(2, 3, 8, 8)))
    assert isinstance(out, MetaTensor)
    assert out.shape == (2, 3, 4, 4)


def test_dict_variant():
    data = {"image": np.ones((2, 3, 8, 8), dtype=np.float32), "mask": np.ones((2, 8, 8))}
    out = ResizeSlicesd(
        keys=["image", "mask", "other"], spatial_size=(4, 6), allow_missing_keys=True
    )(data)
    assert out["image"].shape == (2, 3, 4, 6)
    assert out["mask"].shape == (2, 4, 6)
    assert data["image"].shape == (2, 3, 8, 8)
