"""Datalists and the deterministic split of bundle configs."""

from __future__ import annotations

import pytest

from ichbundles.bundle.data import folder_datalist, split_items


def _items(n: int) -> list[dict]:
    return [{"name": f"scan-{i:04d}"} for i in range(n)]


def test_split_is_a_partition_independent_of_order():
    items = _items(10)
    train, val = split_items(items, 0.2, "train"), split_items(items, 0.2, "validation")
    assert len(val) == 2 and len(train) == 8
    assert {i["name"] for i in train} | {i["name"] for i in val} == {i["name"] for i in items}
    assert split_items(items[::-1], 0.2, "validation") == val[::-1]


def test_split_keeps_both_parts_non_empty():
    assert len(split_items(_items(2), 0.9, "train")) == 1
    assert len(split_items(_items(3), 0.01, "validation")) == 1
    assert split_items(_items(3), 0.0, "validation") == []


@pytest.mark.parametrize(("fraction", "part"), [(1.0, "train"), (-0.1, "train"), (0.2, "test")])
def test_split_rejects_bad_arguments(fraction, part):
    with pytest.raises(ValueError):
        split_items(_items(3), fraction, part)


def test_folder_datalist_needs_labels(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"labels\.csv"):
        folder_datalist(tmp_path)
