"""Slice features of an attention MIL network gathered by a MONAI evaluator: one row per real
slice, equal to direct ``network.extract`` calls, padding left out."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.engines import SupervisedEvaluator
from monai.inferers import SimpleInferer
from torch import nn
from torch.utils.data import DataLoader

from ichbundles.engines import PrepareScanBatch, collate_scans
from ichbundles.mil import MILFeatureCollector, MILFeatureInferer
from ichbundles.networks import AttentionMIL

LENGTHS = (5, 3, 4)  # with batches of 2, the second and third scans are padded
SIZE = 64


def _network(pooling: str = "attention") -> AttentionMIL:
    torch.manual_seed(0)
    channels = (4, 4, 8, 8, 8, 8)
    return AttentionMIL(image_size=SIZE, features=6, pooling=pooling, channels=channels).eval()


def _scans(labelled: bool = True) -> list[dict]:
    rng = np.random.default_rng(0)
    scans = []
    for i, n in enumerate(LENGTHS):
        slice_labels = (rng.random((n, 6)) < 0.3).astype(np.float32)
        item = {
            "image": torch.rand(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(i)),
            "series_instance_uid": f"1.2.{i}",
            "sop_instance_uids": [f"1.2.{i}.{s}" for s in range(n)],
        }
        if labelled:
            item["slice_labels"] = slice_labels
            item["scan_labels"] = slice_labels.max(axis=0)
        scans.append(item)
    return scans


def _run(network: nn.Module, scans: list[dict], inferer=None, runs: int = 1):
    collector = MILFeatureCollector()
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=DataLoader(scans, batch_size=2, collate_fn=collate_scans),
        network=network,
        inferer=inferer or MILFeatureInferer(),
        prepare_batch=PrepareScanBatch(label_key="scan_labels"),
        decollate=False,
        val_handlers=[collector],
    )
    for _ in range(runs):
        evaluator.run()
    return collector


@pytest.mark.parametrize("pooling", ["attention", "gated", "mean"])
def test_rows_equal_direct_extract_of_each_scan(pooling):
    network, scans = _network(pooling), _scans()
    rows = _run(network, scans).features()

    assert len(rows) == sum(LENGTHS) and rows.n_bags == len(LENGTHS)
    start = 0
    for scan in scans:
        n = len(scan["sop_instance_uids"])
        part = slice(start, start + n)
        with torch.no_grad():
            direct = network.extract(scan["image"][None])
        np.testing.assert_array_equal(rows.bag_ids[part], scan["series_instance_uid"])
        np.testing.assert_array_equal(rows.slice_index[part], np.arange(n))
        np.testing.assert_array_equal(rows.sop_instance_uids[part], scan["sop_instance_uids"])
        np.testing.assert_allclose(rows.features[part], direct["features"][0], atol=1e-5)
        np.testing.assert_allclose(rows.weights[part], direct["weights"][0], atol=1e-6)
        probability = torch.sigmoid(direct["logits"][0]).numpy()
        np.testing.assert_allclose(rows.scan_probability[part], np.tile(probability, (n, 1)))
        np.testing.assert_array_equal(rows.scan_labels[part], np.tile(scan["scan_labels"], (n, 1)))
        np.testing.assert_array_equal(rows.slice_labels[part], scan["slice_labels"])
        start += n
    # padding carries no weight: each scan's real slices hold all of it
    sums = [rows.weights[rows.bag_ids == s["series_instance_uid"]].sum() for s in scans]
    np.testing.assert_allclose(sums, 1.0, atol=1e-5)
    assert rows.features.dtype == np.float32 and rows.features.shape == (sum(LENGTHS), 6)


def test_collector_restarts_with_every_run():
    rows = _run(_network(), _scans(), runs=2).features()
    assert len(rows) == sum(LENGTHS)


def test_batches_without_labels_give_no_label_columns():
    rows = _run(_network(), _scans(labelled=False)).features()
    assert rows.scan_labels is None and rows.slice_labels is None
    assert len(rows) == sum(LENGTHS)


@pytest.mark.parametrize("wrapper", [nn.DataParallel, lambda net: net])
def test_inferer_calls_extract_of_the_unwrapped_network(wrapper):
    network, scans = _network(), _scans()
    batch = collate_scans(scans)
    with torch.no_grad():
        out = MILFeatureInferer()(batch["image"], wrapper(network), mask=batch["mask"])
        direct = network.extract(batch["image"], batch["mask"])
    assert set(out) == {"logits", "features", "weights", "pooled"}
    for key in out:
        torch.testing.assert_close(out[key], direct[key])


def test_collector_needs_the_extract_dictionary():
    with pytest.raises(TypeError, match="MILFeatureInferer"):
        _run(_network(), _scans(), inferer=SimpleInferer())


def test_features_before_any_run_raise():
    with pytest.raises(RuntimeError, match="run the engine"):
        MILFeatureCollector().features()
