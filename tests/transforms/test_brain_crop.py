from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from ichbundles.transforms import BrainCrop, BrainCropd, brain_box

ARRAY_TYPES = [np.asarray, torch.as_tensor]
SIZE = 64
# disk "head" of radius 16 centred at (28, 30): rows 12..44, columns 14..46
CENTRE, HEAD_RADIUS = (28, 30), 16
HEAD_BOX = (12, 45, 14, 47)


def phantom(n_slices: int = 3) -> np.ndarray:
    """(S, H, W) HU-like scan: a disk head, a thin table line below it and noise specks."""
    yy, xx = np.mgrid[:SIZE, :SIZE]
    head = (yy - CENTRE[0]) ** 2 + (xx - CENTRE[1]) ** 2 <= HEAD_RADIUS**2
    img = np.full((n_slices, SIZE, SIZE), -1000.0, dtype=np.float32)
    img[:, head] = 40.0
    img[:, 55, 2:62] = 300.0  # table: 1 pixel thick and wider than the head
    img[:, 2, 3] = img[:, 60, 60] = img[:, 5, 50] = 1000.0  # specks
    # a 1-pixel line attached to the head: the opening removes it, the largest component cannot
    img[:, 45:50, 30] = 300.0
    return img


def test_box_is_the_head_ignoring_table_and_specks():
    assert brain_box(phantom(), threshold=-500) == HEAD_BOX


def test_without_largest_component_the_opening_still_removes_table_and_specks():
    assert brain_box(phantom(), threshold=-500, largest_component=False) == HEAD_BOX


def test_without_opening_the_table_widens_the_box():
    y0, y1, x0, x1 = brain_box(phantom(), threshold=-500, radius=0, largest_component=False)
    assert (y0, y1, x0, x1) == (2, 61, 2, 62)


def test_largest_component_removes_a_thick_separate_object():
    scan = phantom()
    scan[:, 57:63, 38:58] = 300.0  # a headrest too thick for the opening
    assert brain_box(scan, threshold=-500) == HEAD_BOX
    assert brain_box(scan, threshold=-500, largest_component=False) == (12, 63, 14, 58)


def test_largest_component_is_taken_over_the_whole_scan():
    # at the vertex the head's cross-section is smaller than the headrest beside it: a largest
    # component per slice would keep the headrest on that slice and stretch the box over it
    scan = phantom(4)
    scan[:, 57:63, 20:62] = 300.0  # thick headrest, 6 x 42 pixels on every slice
    yy, xx = np.mgrid[:SIZE, :SIZE]
    scan[3, (yy - CENTRE[0]) ** 2 + (xx - CENTRE[1]) ** 2 <= HEAD_RADIUS**2] = -1000.0
    scan[3, (yy - CENTRE[0]) ** 2 + (xx - CENTRE[1]) ** 2 <= 6**2] = 40.0  # 113 pixels
    assert brain_box(scan, threshold=-500) == HEAD_BOX
    # each slice alone: the headrest wins on the vertex slice
    assert brain_box(scan[3], threshold=-500) == (57, 63, 20, 62)


def test_channels_are_united_before_the_opening():
    head = phantom()[:, None] > -500  # (S, 1, H, W)
    stripes = np.zeros_like(head)
    stripes[..., ::2] = True
    # each channel alone holds only 1-pixel stripes of the head, which the opening removes
    windowed = np.concatenate([head & stripes, head & ~stripes], axis=1).astype(np.float32)
    assert brain_box(windowed) == HEAD_BOX


def test_margin_is_added_and_clipped_to_the_image():
    y0, y1, x0, x1 = HEAD_BOX
    assert brain_box(phantom(), threshold=-500, margin=3) == (y0 - 3, y1 + 3, x0 - 3, x1 + 3)
    assert brain_box(phantom(), threshold=-500, margin=40) == (0, SIZE, 0, SIZE)


def test_one_box_for_all_slices():
    scan = phantom(3)
    scan[1] = np.roll(scan[1], 5, axis=1)  # the head moves right by 5 pixels on one slice
    y0, y1, x0, x1 = HEAD_BOX
    assert brain_box(scan, threshold=-500) == (y0, y1, x0, x1 + 5)


@pytest.mark.parametrize("to_type", ARRAY_TYPES)
def test_crop_windowed_scan_keeps_slices_and_channels(to_type):
    windowed = np.repeat((phantom() > -500)[:, None], 3, axis=1).astype(np.float32)  # (S, C, H, W)
    windowed[:, 1] *= 0.5
    img = to_type(windowed)
    out = BrainCrop()(img)
    y0, y1, x0, x1 = HEAD_BOX
    assert type(out) is type(img)
    assert out.shape == (3, 3, y1 - y0, x1 - x0)
    np.testing.assert_array_equal(np.asarray(out), windowed[..., y0:y1, x0:x1])


@pytest.mark.parametrize("to_type", [np.asarray, torch.as_tensor, MetaTensor])
def test_crop_keeps_type(to_type):
    img = to_type(phantom())
    assert type(BrainCrop(threshold=-500)(img)) is type(img)


def test_single_slice():
    y0, y1, x0, x1 = HEAD_BOX
    assert BrainCrop(threshold=-500)(phantom()[0]).shape == (y1 - y0, x1 - x0)


@pytest.mark.parametrize("to_type", ARRAY_TYPES)
def test_empty_foreground_returns_input_unchanged(to_type):
    img = to_type(np.zeros((2, 3, 16, 16), dtype=np.float32))
    assert brain_box(img) == (0, 16, 0, 16)
    out = BrainCrop()(img)
    assert out.shape == img.shape


def test_dict_variant_crops_all_keys_with_the_source_box():
    scan = phantom()
    seg = np.arange(scan.size).reshape(scan.shape)
    data = {"image": scan, "seg": seg, "label": 1}
    out = BrainCropd(keys=["image", "seg"], source_key="image", threshold=-500, margin=2)(data)
    y0, y1, x0, x1 = box = brain_box(scan, threshold=-500, margin=2)
    np.testing.assert_array_equal(out["image"], scan[:, y0:y1, x0:x1])
    np.testing.assert_array_equal(out["seg"], seg[:, y0:y1, x0:x1])
    assert out["image_crop_box"] == out["seg_crop_box"] == box
    assert out["label"] == 1
    assert data["image"] is scan


def test_dict_variant_missing_keys():
    data = {"image": phantom()}
    cropper = BrainCropd(keys=["image", "seg"], source_key="image", threshold=-500)
    with pytest.raises(KeyError):
        cropper(data)
    cropper = BrainCropd(
        keys=["image", "seg"], source_key="image", threshold=-500, allow_missing_keys=True
    )
    assert "seg_crop_box" not in cropper(data)


@pytest.mark.parametrize("radius", [1, 3, 5])
def test_opening_equals_scipy_binary_opening_with_a_disk(radius):
    from scipy import ndimage
    from skimage.morphology import disk

    from ichbundles.transforms.brain_crop import _open_with_disk

    rng = np.random.default_rng(radius)
    # blobs of several sizes, touching the edges too, so erosion at the border is exercised
    mask = ndimage.gaussian_filter(rng.random((3, 48, 40)), sigma=(0, 2, 2)) > 0.5
    expected = np.stack(
        [
            ndimage.binary_dilation(ndimage.binary_erosion(m, disk(radius)), disk(radius))
            for m in mask
        ]
    )
    assert expected.any() and not expected.all()
    np.testing.assert_array_equal(_open_with_disk(mask, radius), expected)
