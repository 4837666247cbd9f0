"""Stage 1 descriptors: which model describes which scan, files written once and reused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ichbundles.adjacent import (
    descriptor_datalist,
    descriptor_file,
    descriptor_sources,
    extract_descriptors,
    read_descriptors,
)
from ichbundles.bundle.data import fold_items, split_items
from ichbundles.networks import SliceClassifier


def _items(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        slices = int(rng.integers(3, 7))
        items.append(
            {
                "name": f"Doe^Jane-{i}",
                "image": rng.random((slices, 3, 16, 16), dtype=np.float32),
                "slice_labels": (rng.random((slices, 6)) > 0.7).astype(np.float32),
            }
        )
    return items


def _checkpoint(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(SliceClassifier("resnet10_tiny").state_dict(), path)
    return path


def _identity(item: dict) -> dict:
    return item


@pytest.mark.parametrize("folds", [2, 3])
def test_k_fold_sources_never_describe_a_scan_with_a_model_that_trained_on_it(folds):
    items = [{"name": f"scan-{i}"} for i in range(20)]
    sources = descriptor_sources(items, 0.2, folds, "s1.pt", "fold{fold}.pt")
    assert [s.name for s in sources] == ["stage1"] + [f"fold{f}" for f in range(folds)]
    described = [i["name"] for s in sources for i in s.items]
    assert sorted(described) == sorted(i["name"] for i in items)  # each scan exactly once
    assert sources[0].items == split_items(items, 0.2, "validation")
    train = split_items(items, 0.2, "train")
    for f, source in enumerate(sources[1:]):
        assert source.checkpoint == Path(f"fold{f}.pt")
        trained_on = {i["name"] for i in fold_items(train, folds, f, "train")}
        assert trained_on.isdisjoint(i["name"] for i in source.items)


def test_one_fold_takes_every_descriptor_from_the_main_model():
    items = [{"name": f"scan-{i}"} for i in range(5)]
    (source,) = descriptor_sources(items, 0.2, 1, "s1.pt", "fold{fold}.pt")
    assert source.name == "stage1" and source.items == items


def test_descriptors_are_the_source_models_probabilities(tmp_path):
    items = _items(5)
    sources = descriptor_sources(items, 0.2, 2, tmp_path / "s1.pt", str(tmp_path / "f{fold}.pt"))
    for seed, source in enumerate(sources):
        _checkpoint(source.checkpoint, seed)
    out = tmp_path / "descriptors"
    net = SliceClassifier("resnet10_tiny")
    summary = extract_descriptors(net, sources, _identity, out, tmp_path / "cache")
    assert summary["computed"] == 5 and summary["reused"] == 0
    assert (out / "descriptors.json").is_file()
    for seed, source in enumerate(sources):
        torch.manual_seed(seed)
        reference = SliceClassifier("resnet10_tiny").eval()
        for item in source.items:
            content = read_descriptors(descriptor_file(out, item["name"]))
            with torch.inference_mode():
                expected = torch.sigmoid(reference(torch.from_numpy(item["image"]))).numpy()
            assert content["source"] == source.name and content["name"] == item["name"]
            np.testing.assert_allclose(content["descriptors"], expected, atol=1e-5)
            np.testing.assert_array_equal(content["slice_labels"], item["slice_labels"])
    # file names never show the scan name (it may hold a patient name)
    assert not any("Doe" in p.name for p in out.iterdir())


def test_files_are_reused_until_their_checkpoint_changes(tmp_path):
    items = _items(4)
    (source,) = descriptor_sources(items, 0.2, 1, _checkpoint(tmp_path / "s1.pt", 0), "")
    net = SliceClassifier("resnet10_tiny")
    out, cache = tmp_path / "descriptors", tmp_path / "cache"
    assert extract_descriptors(net, [source], _identity, out, cache)["computed"] == 4
    again = extract_descriptors(net, [source], _identity, out, cache)
    assert again["computed"] == 0 and again["reused"] == 4
    descriptor_file(out, items[0]["name"]).write_bytes(b"truncated")
    assert extract_descriptors(net, [source], _identity, out, cache)["computed"] == 1
    _checkpoint(source.checkpoint, 1)  # stage 1 retrained: every file is stale
    assert extract_descriptors(net, [source], _identity, out, cache)["computed"] == 4


def test_missing_checkpoint_names_the_stage(tmp_path):
    (source,) = descriptor_sources(_items(2), 0.2, 1, tmp_path / "none.pt", "")
    with pytest.raises(FileNotFoundError, match=r"none\.pt: no stage1 checkpoint"):
        extract_descriptors(
            SliceClassifier("resnet10_tiny"), [source], _identity, tmp_path, tmp_path
        )


def test_fusion_datalist_reads_descriptors_and_labels(tmp_path):
    items = _items(3)
    (source,) = descriptor_sources(items, 0.2, 1, _checkpoint(tmp_path / "s1.pt", 0), "")
    net = SliceClassifier("resnet10_tiny")
    extract_descriptors(net, [source], _identity, tmp_path / "d", tmp_path / "cache")
    loaded = descriptor_datalist(items, tmp_path / "d")
    for item, row in zip(items, loaded, strict=True):
        assert row["image"].shape == (len(item["image"]), 6) and row["name"] == item["name"]
        np.testing.assert_array_equal(row["slice_labels"], item["slice_labels"])


def test_fusion_datalist_names_a_missing_or_bad_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no descriptors of scan Doe"):
        descriptor_datalist(_items(1), tmp_path)
    path = descriptor_file(tmp_path, "scan-0")
    path.write_bytes(b"\x00" * 10)
    with pytest.raises(ValueError, match=f"{path}: not a readable descriptor file"):
        descriptor_datalist([{"name": "scan-0"}], tmp_path)
