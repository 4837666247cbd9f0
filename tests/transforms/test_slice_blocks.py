"""Blocks of adjacent slices: edge replication, shared centres across keys, list output."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.transforms import Compose, RandFlipd

from ichbundles.engines import collate_scans
from ichbundles.networks import axial_block_index
from ichbundles.transforms import RandSliceBlocksd, SliceBlock


@pytest.mark.parametrize("as_tensor", [False, True])
@pytest.mark.parametrize(("slices", "centre"), [(10, 5), (10, 0), (10, 9), (2, 1), (1, 0)])
def test_block_matches_the_fusion_index_rule(slices, centre, as_tensor):
    scan = np.arange(slices, dtype=np.float32)[:, None] * np.ones((1, 4), dtype=np.float32)
    img = torch.as_tensor(scan) if as_tensor else scan
    block = SliceBlock(context=3)(img, centre)
    expected = axial_block_index(torch.ones(1, slices, dtype=torch.bool), 3)[0, centre]
    assert type(block) is type(img) and block.shape == (7, 4)
    np.testing.assert_array_equal(np.asarray(block)[:, 0], expected.numpy())


def test_centre_out_of_range_raises():
    with pytest.raises(ValueError, match="outside the 4 slices"):
        SliceBlock()(np.zeros((4, 2)), 4)


def test_blocks_keep_each_slice_with_its_labels():
    slices = 12
    item = {
        "image": np.arange(slices, dtype=np.float32).reshape(slices, 1, 1, 1)
        * np.ones((1, 3, 8, 8)),
        "slice_labels": np.arange(slices, dtype=np.float32)[:, None].repeat(6, axis=1),
        "name": "scan-1",
        "sop_instance_uids": [f"uid-{i}" for i in range(slices)],
    }
    blocks = RandSliceBlocksd(
        ["image", "slice_labels", "sop_instance_uids"], num_samples=5, context=2
    ).set_random_state(0)(item)
    assert len(blocks) == 5
    for block in blocks:
        assert block["image"].shape == (5, 3, 8, 8) and block["name"] == "scan-1"
        np.testing.assert_array_equal(block["image"][:, 0, 0, 0], block["slice_labels"][:, 0])
        assert block["slice_labels"][2, 0] == block["block_centre"]
        expected = [f"uid-{int(i)}" for i in block["slice_labels"][:, 0]]
        assert block["sop_instance_uids"] == expected
    assert len({b["block_centre"] for b in blocks}) > 1


def test_blocks_of_several_scans_collate_into_one_batch():
    rng = np.random.default_rng(0)
    items = [
        {"image": rng.random((n, 3, 8, 8), dtype=np.float32), "slice_labels": np.zeros((n, 6))}
        for n in (3, 20)
    ]
    pipeline = Compose(
        [
            RandSliceBlocksd(["image", "slice_labels"], num_samples=2),
            RandFlipd("image", prob=1.0, spatial_axis=1),  # applied to every block
        ]
    )
    batch = collate_scans([pipeline(item) for item in items])
    assert batch["image"].shape == (4, 7, 3, 8, 8) and bool(batch["mask"].all())


def test_keys_of_different_lengths_raise():
    item = {"image": np.zeros((5, 1, 2, 2)), "slice_labels": np.zeros((4, 6))}
    with pytest.raises(ValueError, match="different slice counts"):
        RandSliceBlocksd(["image", "slice_labels"])(item)


@pytest.mark.parametrize(
    ("fraction", "low", "high"), [(0.0, 0.0, 0.15), (0.5, 0.45, 0.65), (1.0, 1.0, 1.0)]
)
def test_positive_fraction_centres_blocks_on_positive_slices(fraction, low, high):
    labels = np.zeros((40, 6), dtype=np.float32)
    labels[[10, 11], 5] = 1.0  # "any" on two slices of forty
    labels[20, 2] = 1.0  # another class only: not positive for positive_class -1
    blocks = RandSliceBlocksd(
        ["image", "slice_labels"],
        num_samples=2000,
        positive_fraction=fraction,
        label_key="slice_labels",
    ).set_random_state(0)({"image": np.zeros((40, 1, 2, 2)), "slice_labels": labels})
    centres = np.array([block["block_centre"] for block in blocks])
    on_positive = np.isin(centres, [10, 11]).mean()
    # uniform centres land on 2 of 40 slices 5% of the time
    assert low <= on_positive <= high
    assert centres.min() >= 0 and centres.max() < 40


def test_positive_fraction_on_a_negative_scan_draws_uniform_centres():
    labels = np.full((30, 6), np.nan, dtype=np.float32)  # unknown labels are not positive
    labels[:15] = 0.0
    blocks = RandSliceBlocksd(
        "slice_labels", num_samples=500, positive_fraction=1.0, label_key="slice_labels"
    ).set_random_state(0)({"slice_labels": labels})
    assert len({block["block_centre"] for block in blocks}) == 30


def test_positive_fraction_zero_keeps_the_uniform_draws():
    item = {"slice_labels": np.eye(12, 6, dtype=np.float32)}
    plain = RandSliceBlocksd("slice_labels", num_samples=8).set_random_state(3)(item)
    with_key = RandSliceBlocksd(
        "slice_labels", num_samples=8, label_key="slice_labels"
    ).set_random_state(3)(item)
    assert [b["block_centre"] for b in plain] == [b["block_centre"] for b in with_key]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"positive_fraction": 1.5, "label_key": "slice_labels"}, r"in \[0, 1\]"),
        ({"positive_fraction": 0.5}, "needs label_key"),
    ],
)
def test_bad_positive_fraction_raises(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RandSliceBlocksd("image", **kwargs)
