"""Whole-scan batches: collate, prepare_batch for MONAI engines, and the masked weighted BCE."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import DataLoader, Dataset
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.handlers import from_engine
from torch import nn

from ichbundles.constants import CLASS_WEIGHTS, NUM_CLASSES
from ichbundles.engines import (
    PAD_LABEL,
    MaskedBCEWithLogitsLoss,
    PrepareScanBatch,
    collate_scans,
    pad_scans,
    prepare_scan_batch,
)
from ichbundles.metrics import WeightedLogLoss
from ichbundles.metrics.loss import weighted_log_loss
from ichbundles.transforms.augment import RandCutMixScansd

FRAME = (3, 8, 8)


def make_item(n_slices: int, index: int = 0, as_numpy: bool = False) -> dict:
    gen = torch.Generator().manual_seed(index)
    image = torch.rand(n_slices, *FRAME, generator=gen) + 0.5  # never 0, unlike the padding
    labels = (torch.rand(n_slices, NUM_CLASSES, generator=gen) > 0.5).float()
    item = {
        "image": image.numpy() if as_numpy else image,
        "slice_labels": labels.numpy() if as_numpy else labels,
        "scan_labels": labels.amax(dim=0).numpy() if as_numpy else labels.amax(dim=0),
        "image_meta": {"sop_instance_uids": [f"1.2.{index}.{s}" for s in range(n_slices)]},
        "series_instance_uid": f"1.2.{index}",
        "index": index,
    }
    return item


class TinyScanNet(nn.Module):
    """Per-slice logits (B, S, 6) from the mean of each slice; checks that it gets the mask."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(FRAME[0], NUM_CLASSES)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        assert mask.dtype == torch.bool and mask.shape == image.shape[:2]
        return self.linear(image.mean(dim=(-2, -1))) * mask[..., None]


@pytest.mark.parametrize("lengths", [(3, 5, 2), (4,), (1, 1), (2, 6)])
@pytest.mark.parametrize("as_numpy", [False, True])
def test_pad_scans_shapes_and_padding(lengths, as_numpy):
    items = [make_item(n, i, as_numpy) for i, n in enumerate(lengths)]
    batch = pad_scans(items)
    b, s_max = len(lengths), max(lengths)
    assert batch["image"].shape == (b, s_max, *FRAME) and batch["image"].dtype == torch.float32
    assert batch["mask"].shape == (b, s_max) and batch["mask"].dtype == torch.bool
    assert batch["slice_labels"].shape == (b, s_max, NUM_CLASSES)
    assert batch["slice_labels"].dtype == torch.float32
    assert batch["scan_labels"].shape == (b, NUM_CLASSES)
    for i, (item, n) in enumerate(zip(items, lengths, strict=True)):
        assert batch["mask"][i].tolist() == [True] * n + [False] * (s_max - n)
        np.testing.assert_allclose(batch["image"][i, :n].numpy(), np.asarray(item["image"]))
        assert torch.all(batch["image"][i, n:] == 0)
        np.testing.assert_array_equal(batch["slice_labels"][i, :n], item["slice_labels"])
        assert torch.all(batch["slice_labels"][i, n:] == PAD_LABEL)
    # metadata dicts stay per item, strings are listed, numbers stacked
    assert batch["image_meta"] == [item["image_meta"] for item in items]
    assert batch["series_instance_uid"] == [f"1.2.{i}" for i in range(b)]
    assert batch["index"].tolist() == list(range(b))


def test_pad_scans_without_labels():
    items = [{"image": torch.ones(n, 1, 4, 4)} for n in (2, 3)]
    batch = pad_scans(items)
    assert set(batch) == {"image", "mask"}
    assert batch["mask"].sum().item() == 5


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([], "at least one"),
        (
            [{"image": torch.ones(2, 3, 8, 8)}, {"image": torch.ones(2, 3, 8, 9)}],
            "one per-slice shape",
        ),
        ([{"image": torch.ones(3, 8, 8)}], "\\(S, C, H, W\\)"),
        ([make_item(2), {"image": torch.ones(2, *FRAME)}], "every item or none"),
        ([{"image": torch.ones(2, *FRAME), "slice_labels": torch.zeros(3, 6)}], "rows"),
    ],
)
def test_pad_scans_rejects_bad_items(items, message):
    with pytest.raises(ValueError, match=message):
        pad_scans(items)


def test_collate_scans_flattens_lists_of_samples():
    batch = collate_scans([[make_item(2, 0), make_item(3, 1)], [make_item(4, 2)]])
    assert batch["image"].shape == (3, 4, *FRAME)
    assert batch["index"].tolist() == [0, 1, 2]


def test_monai_dataloader_gives_documented_shapes():
    lengths = [3, 5, 2, 4, 1]
    data = [make_item(n, i, as_numpy=True) for i, n in enumerate(lengths)]
    loader = DataLoader(Dataset(data), batch_size=2, collate_fn=collate_scans, num_workers=0)
    batches = list(loader)
    assert [tuple(b["image"].shape) for b in batches] == [
        (2, 5, *FRAME),
        (2, 4, *FRAME),
        (1, 1, *FRAME),
    ]
    assert [b["mask"].sum(dim=1).tolist() for b in batches] == [[3, 5], [2, 4], [1]]
    assert all(b["slice_labels"].shape[:2] == b["mask"].shape for b in batches)
    assert all(b["scan_labels"].shape == (len(b["mask"]), NUM_CLASSES) for b in batches)


def test_prepare_scan_batch_call_convention():
    batch = pad_scans([make_item(2, 0), make_item(4, 1)])
    image, labels, args, kwargs = prepare_scan_batch(batch, torch.device("cpu"), False)
    assert image is batch["image"] or torch.equal(image, batch["image"])
    assert torch.equal(labels, batch["slice_labels"])
    assert args == ()
    assert set(kwargs) == {"mask"} and torch.equal(kwargs["mask"], batch["mask"])
    # the network is called as network(image, *args, **kwargs)
    assert TinyScanNet()(image, *args, **kwargs).shape == labels.shape


def test_prepare_scan_batch_options():
    batch = pad_scans([make_item(2, 0), make_item(3, 1)])
    del batch["slice_labels"]
    _, labels, _, _ = prepare_scan_batch(batch)
    assert labels is None
    _, labels, _, _ = PrepareScanBatch(label_key="scan_labels")(batch)
    assert labels.shape == (2, NUM_CLASSES)
    _, _, _, kwargs = prepare_scan_batch(batch, dtype=torch.float64)
    assert kwargs["mask"].dtype == torch.bool


def test_prepare_batch_applies_batch_transform():
    batch = pad_scans([make_item(3, 0), make_item(2, 1)])
    seen = []

    def flip_labels(d):
        seen.append(sorted(d))
        return {**d, "slice_labels": 1 - d["slice_labels"]}

    image, labels, _, kwargs = PrepareScanBatch(batch_transform=flip_labels)(batch)
    assert seen == [["image", "mask", "slice_labels"]]
    assert torch.equal(labels, 1 - batch["slice_labels"])
    assert torch.equal(image, batch["image"]) and torch.equal(kwargs["mask"], batch["mask"])


def test_prepare_batch_with_cutmix_keeps_padding():
    batch = pad_scans([make_item(3, 0), make_item(2, 1), make_item(1, 2)])
    cutmix = RandCutMixScansd(prob=1.0).set_random_state(3)
    _, labels, _, kwargs = PrepareScanBatch(batch_transform=cutmix)(batch)
    assert torch.equal(kwargs["mask"], batch["mask"])
    assert torch.all(labels[~batch["mask"]] == PAD_LABEL)
    assert torch.all((labels[batch["mask"]] >= 0) & (labels[batch["mask"]] <= 1))


def test_supervised_trainer_and_evaluator_run_on_scan_batches():
    data = [make_item(n, i) for i, n in enumerate([3, 5, 2, 4])]
    loader = DataLoader(Dataset(data), batch_size=2, collate_fn=collate_scans)
    network = TinyScanNet()
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=1,
        train_data_loader=loader,
        network=network,
        optimizer=torch.optim.Adam(network.parameters(), 1e-2),
        loss_function=MaskedBCEWithLogitsLoss(),
        prepare_batch=prepare_scan_batch,
        decollate=False,
    )
    trainer.run()
    assert torch.isfinite(trainer.state.output["loss"]).item()
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=loader,
        network=network,
        prepare_batch=prepare_scan_batch,
        key_val_metric={
            "wll": WeightedLogLoss(sigmoid=True, output_transform=from_engine(["pred", "label"]))
        },
    )
    evaluator.run()
    net_out, labels = [], []
    with torch.no_grad():
        for batch in loader:
            logits = network(batch["image"], mask=batch["mask"])
            keep = batch["mask"]
            net_out.append(torch.sigmoid(logits[keep]))
            labels.append(batch["slice_labels"][keep])
    expected = weighted_log_loss(torch.cat(labels).numpy(), torch.cat(net_out).numpy())
    assert evaluator.state.metrics["wll"] == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("shape", [(3, 7), (2, 5, 6), (1, 1, 6)])
def test_masked_bce_equals_weighted_log_loss_on_valid_rows(shape):
    shape = (*shape[:-1], NUM_CLASSES)
    gen = torch.Generator().manual_seed(sum(shape))
    logits = torch.randn(shape, generator=gen, dtype=torch.float64) * 2
    labels = (torch.rand(shape, generator=gen) > 0.5).double()
    flat_labels = labels.reshape(-1, NUM_CLASSES)
    if flat_labels.shape[0] > 1:
        flat_labels[-1] = PAD_LABEL  # the last row is padding
    valid = (flat_labels >= 0).all(dim=1)
    loss = MaskedBCEWithLogitsLoss()(logits, labels)
    probs = torch.sigmoid(logits.reshape(-1, NUM_CLASSES))[valid].numpy()
    expected = weighted_log_loss(flat_labels[valid].numpy(), probs)
    assert loss.item() == pytest.approx(expected, rel=1e-9)


def test_masked_bce_ignores_padded_rows():
    batch = pad_scans([make_item(2, 0), make_item(5, 1)])
    logits = torch.randn(2, 5, NUM_CLASSES, requires_grad=True)
    loss_fn = MaskedBCEWithLogitsLoss()
    loss = loss_fn(logits, batch["slice_labels"])
    loss.backward()
    assert torch.all(logits.grad[0, 2:] == 0) and torch.any(logits.grad[0, :2] != 0)
    changed = logits.detach().clone()
    changed[0, 2:] = 100.0
    assert loss_fn(changed, batch["slice_labels"]).item() == pytest.approx(loss.item())


def test_masked_bce_weights_and_edge_cases():
    logits = torch.zeros(4, NUM_CLASSES, requires_grad=True)
    labels = torch.full((4, NUM_CLASSES), PAD_LABEL)
    loss = MaskedBCEWithLogitsLoss()(logits, labels)
    loss.backward()
    assert loss.item() == 0 and logits.grad is not None
    # logits 0 give log(2) per class whatever the weights; only the "any" column is wrong here
    labels = torch.zeros(1, NUM_CLASSES)
    logits = torch.zeros(1, NUM_CLASSES)
    logits[0, -1] = 30.0  # confident "any", label 0: loss about 30 on that class
    value = MaskedBCEWithLogitsLoss()(logits, labels).item()
    assert value == pytest.approx((5 * np.log(2) + 2 * 30.0) / sum(CLASS_WEIGHTS), rel=1e-6)
    uniform = MaskedBCEWithLogitsLoss(weights=[1.0] * NUM_CLASSES)(logits, labels).item()
    assert uniform == pytest.approx((5 * np.log(2) + 30.0) / NUM_CLASSES, rel=1e-6)
    with pytest.raises(ValueError, match="one shape"):
        MaskedBCEWithLogitsLoss()(torch.zeros(2, 6), torch.zeros(2, 5))


def test_masked_bce_follows_the_device_of_the_logits():
    # bundle configs build the loss once and never move it: on CUDA its CPU weight buffer used
    # to meet CUDA logits. The meta device stands in for any device other than the buffer's.
    loss = MaskedBCEWithLogitsLoss()
    logits = torch.zeros(3, 2, NUM_CLASSES, device="meta")
    value = loss(logits, torch.zeros(3, 2, NUM_CLASSES, device="meta"))
    assert value.device.type == "meta" and value.shape == ()
    assert loss.weights.device.type == "cpu"


def test_pad_scans_takes_per_slice_descriptors():
    items = [{"image": torch.rand(n, 6), "slice_labels": torch.zeros(n, 6)} for n in (4, 2)]
    batch = pad_scans(items)
    assert batch["image"].shape == (2, 4, 6) and batch["mask"].sum().item() == 6
    torch.testing.assert_close(batch["image"][1, :2], items[1]["image"])
    assert bool((batch["image"][1, 2:] == 0).all())
