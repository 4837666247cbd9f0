from __future__ import annotations

import numpy as np
import pytest
import torch

from ichbundles.transforms import RandSliceWindowd, SliceWindow


@pytest.mark.parametrize("kind", ["numpy", "torch", "list"])
def test_slice_window_cuts_consecutive_slices(kind):
    values = np.arange(10)
    img = {"numpy": values, "torch": torch.as_tensor(values), "list": list(values)}[kind]
    window = SliceWindow(4)(img, 3)
    assert list(np.asarray(window)) == [3, 4, 5, 6]
    assert type(window) is type(img)
    assert list(np.asarray(SliceWindow(4)(img, 8))) == [8, 9]  # fewer at the end


@pytest.mark.parametrize(("length", "start"), [(0, 0), (3, 10), (3, -1)])
def test_slice_window_rejects_bad_arguments(length, start):
    with pytest.raises(ValueError, match=r"length|start"):
        SliceWindow(length)(np.arange(10), start)


def test_rand_slice_window_keeps_images_and_labels_aligned():
    slices = 40
    image = torch.arange(slices, dtype=torch.float32)[:, None, None, None].expand(slices, 1, 2, 2)
    labels = np.arange(slices)[:, None].repeat(6, axis=1)
    uids = [f"1.2.{i}" for i in range(slices)]
    transform = RandSliceWindowd(["image", "slice_labels", "uids"], max_slices=16)
    starts = set()
    for seed in range(20):
        transform.set_random_state(seed)
        out = transform({"image": image, "slice_labels": labels, "uids": uids, "id": "scan"})
        first = int(out["image"][0, 0, 0, 0])
        assert out["image"].shape == (16, 1, 2, 2)
        np.testing.assert_array_equal(out["slice_labels"][:, 0], np.arange(first, first + 16))
        assert out["uids"] == uids[first : first + 16]
        assert out["id"] == "scan"
        starts.add(first)
    assert len(starts) > 5 and min(starts) >= 0 and max(starts) <= slices - 16


def test_rand_slice_window_passes_short_scans_unchanged():
    image = torch.zeros(8, 1, 2, 2)
    out = RandSliceWindowd("image", max_slices=16)({"image": image})
    assert out["image"] is image


def test_rand_slice_window_rejects_keys_of_different_lengths():
    with pytest.raises(ValueError, match="different slice counts"):
        RandSliceWindowd(["a", "b"], max_slices=4)({"a": np.zeros(10), "b": np.zeros(9)})
