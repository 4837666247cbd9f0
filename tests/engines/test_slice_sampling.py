"""Tests for drawing random slices, or blocks of adjacent slices, from whole-scan batches."""

from __future__ import annotations

import pytest
import torch

from ichbundles.engines import PrepareBlockBatch, PrepareSliceBatch, collate_scans


def _batch(lengths=(5, 2, 4)):
    items = []
    for b, n in enumerate(lengths):
        # every slice carries its (scan, index) in its pixels and labels, to trace it back
        image = torch.zeros(n, 1, 4, 4)
        labels = torch.zeros(n, 2)
        for i in range(n):
            image[i] = 10 * b + i
            labels[i] = torch.tensor([b, i], dtype=torch.float32)
        items.append({"image": image, "slice_labels": labels})
    return collate_scans(items)


@pytest.mark.parametrize(("slices", "expected"), [(4, 4), (11, 11), (50, 11)])
def test_draws_distinct_valid_slices_with_their_labels(slices, expected):
    batch = _batch()
    images, labels, args, kwargs = PrepareSliceBatch(slices)(batch)
    assert images.shape == (expected, 1, 4, 4) and labels.shape == (expected, 2)
    assert args == () and kwargs == {}
    traced = {(int(b), int(i)) for b, i in labels.tolist()}
    assert len(traced) == expected  # without replacement
    lengths = (5, 2, 4)
    assert all(i < lengths[b] for b, i in traced)  # never a padded slice
    torch.testing.assert_close(images[:, 0, 0, 0], 10 * labels[:, 0] + labels[:, 1])


def test_generator_makes_draws_reproducible_and_varied():
    batch = _batch()
    first = PrepareSliceBatch(3, generator=torch.Generator().manual_seed(1))(batch)[1]
    again = PrepareSliceBatch(3, generator=torch.Generator().manual_seed(1))(batch)[1]
    torch.testing.assert_close(first, again)
    sampler = PrepareSliceBatch(3, generator=torch.Generator().manual_seed(1))
    draws = {tuple(map(tuple, sampler(batch)[1].tolist())) for _ in range(10)}
    assert len(draws) > 1


def test_rejects_zero_slices():
    with pytest.raises(ValueError, match="at least 1"):
        PrepareSliceBatch(0)


@pytest.mark.parametrize(("blocks", "context", "expected"), [(3, 1, 3), (20, 3, 11), (11, 0, 11)])
def test_blocks_are_adjacent_slices_of_one_scan_with_edges_replicated(blocks, context, expected):
    lengths = (5, 2, 4)
    width = 2 * context + 1
    gen = torch.Generator().manual_seed(0)
    images, labels, args, kwargs = PrepareBlockBatch(blocks, context, generator=gen)(_batch())
    assert images.shape == (expected * width, 1, 4, 4) and labels.shape == (expected * width, 2)
    assert args == () and kwargs == {}
    torch.testing.assert_close(images[:, 0, 0, 0], 10 * labels[:, 0] + labels[:, 1])
    centres = set()
    for block in labels.reshape(expected, width, 2).tolist():
        scans = {int(b) for b, _ in block}
        assert len(scans) == 1  # one scan per block
        scan = scans.pop()
        centre = int(block[context][1])
        assert centre < lengths[scan]  # never a padded slice
        expected_slices = [
            min(max(centre + k, 0), lengths[scan] - 1) for k in range(-context, context + 1)
        ]
        assert [int(i) for _, i in block] == expected_slices
        centres.add((scan, centre))
    assert len(centres) == expected  # centres drawn without replacement


def test_block_batch_rejects_no_blocks():
    with pytest.raises(ValueError, match="at least 1"):
        PrepareBlockBatch(0)
