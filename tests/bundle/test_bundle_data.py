"""Datalists and the deterministic split and folds of bundle configs."""

from __future__ import annotations

import pytest

from ichbundles.bundle.data import fold_items, folder_datalist, split_items


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


@pytest.mark.parametrize(("n", "folds"), [(10, 2), (23, 5), (7, 3)])
def test_folds_partition_the_items_in_balanced_parts(n, folds):
    items = [{"name": f"scan-{i:03d}"} for i in range(n)]
    held = [fold_items(items, folds, f, "validation") for f in range(folds)]
    names = [item["name"] for part in held for item in part]
    assert sorted(names) == sorted(i["name"] for i in items)  # each item in exactly one fold
    assert max(map(len, held)) - min(map(len, held)) <= 1
    for f, part in enumerate(held):
        kept = fold_items(items, folds, f, "train")
        assert {i["name"] for i in kept} == {i["name"] for i in items} - {i["name"] for i in part}


def test_folds_depend_on_names_not_order():
    items = [{"name": f"scan-{i}"} for i in range(12)]
    first = fold_items(items, 4, 1, "validation")
    assert {i["name"] for i in fold_items(items[::-1], 4, 1, "validation")} == {
        i["name"] for i in first
    }


@pytest.mark.parametrize(("folds", "fold", "part"), [(1, 0, "train"), (3, 3, "train"), (3, 0, "x")])
def test_bad_folds_raise(folds, fold, part):
    with pytest.raises(ValueError):
        fold_items([{"name": "a"}, {"name": "b"}], folds, fold, part)
