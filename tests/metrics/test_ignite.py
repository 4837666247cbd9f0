from __future__ import annotations

import numpy as np
import pytest
import torch
from ignite.engine import Engine

from ichbundles.metrics import MeanAUC, MeanAUCMetric, WeightedLogLoss, WeightedLogLossMetric
from ichbundles.metrics.loss import weighted_log_loss
from ichbundles.metrics.roc import roc_auc

from .conftest import random_data


def _batches(y, p, size):
    return [
        (torch.as_tensor(p[i : i + size]), torch.as_tensor(y[i : i + size]))
        for i in range(0, len(y), size)
    ]


@pytest.mark.parametrize("size", [1, 7, 64])
def test_metrics_equal_the_command_figures(size):
    y, p = random_data(64, 0)
    loss, auc = WeightedLogLossMetric(), MeanAUCMetric()
    for pred, label in _batches(y, p, size):
        loss(y_pred=pred, y=label)
        auc(y_pred=pred, y=label)
    assert loss.aggregate().item() == pytest.approx(weighted_log_loss(y, p), rel=1e-12)
    assert auc.aggregate().item() == pytest.approx(np.nanmean(roc_auc(y, p)), rel=1e-12)


def test_logits_sequences_and_padding():
    y, p = random_data(12, 1)
    logits = torch.logit(torch.as_tensor(p)).reshape(2, 6, 6)  # (B, S, classes)
    labels = torch.as_tensor(y, dtype=torch.float32).reshape(2, 6, 6)
    padded_pred = torch.cat([logits, torch.zeros(2, 2, 6)], dim=1)
    padded_label = torch.cat([labels, -torch.ones(2, 2, 6)], dim=1)  # padded slices: -1
    metric = WeightedLogLossMetric(sigmoid=True)
    metric(y_pred=padded_pred, y=padded_label)
    assert metric.aggregate().item() == pytest.approx(weighted_log_loss(y, p), rel=1e-6)


def test_decollated_items():
    y, p = random_data(5, 2)
    metric = MeanAUCMetric()
    metric(y_pred=[torch.as_tensor(r) for r in p], y=[torch.as_tensor(r) for r in y])
    assert metric.aggregate().item() == pytest.approx(np.nanmean(roc_auc(y, p)))


def test_undefined_mean_auc_warns():
    metric = MeanAUCMetric()
    metric(y_pred=torch.rand(4, 6), y=torch.zeros(4, 6))
    with pytest.warns(UserWarning, match="undefined"):
        assert np.isnan(metric.aggregate().item())


def test_handlers_in_an_ignite_evaluator():
    y, p = random_data(40, 3)
    engine = Engine(lambda engine, batch: batch)
    WeightedLogLoss().attach(engine, "wll")
    MeanAUC().attach(engine, "mean_auc")
    state = engine.run(_batches(y, p, 8))
    assert state.metrics["wll"] == pytest.approx(weighted_log_loss(y, p))
    assert state.metrics["mean_auc"] == pytest.approx(np.nanmean(roc_auc(y, p)))
