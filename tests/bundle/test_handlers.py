"""The best-model record that a resumed training run restores."""

from __future__ import annotations

import logging

import pytest
import torch
from ignite.engine import Engine
from ignite.metrics import Metric
from monai.engines import SupervisedEvaluator
from monai.handlers import CheckpointSaver

from ichbundles.bundle.handlers import BestModelRecord, LastCheckpointSaver, lower_is_better


class _Score(Metric):
    """A key metric whose value the test sets."""

    value = 0.0

    def reset(self) -> None:
        pass

    def update(self, output) -> None:
        pass

    def compute(self) -> float:
        return self.value


class _Process:
    """What one process of a bundle's training builds: a network, an evaluator with val_wll as
    key metric (lower is better), its best-model saver (validate#best_model_saver) and the
    record (train#best_model_record)."""

    def __init__(self, folder) -> None:
        self.folder = folder
        self.net = torch.nn.Linear(3, 1)
        self.score = _Score()
        self.saver = CheckpointSaver(
            save_dir=str(folder),
            save_dict={"model": self.net},
            save_key_metric=True,
            key_metric_filename="model.pt",
            key_metric_negative_sign=True,
        )
        self.evaluator = SupervisedEvaluator(
            device=torch.device("cpu"),
            val_data_loader=[{"image": torch.zeros(1, 3), "label": torch.zeros(1, 1)}],
            network=self.net,
            key_val_metric={"val_wll": self.score},
            metric_cmp_fn=lower_is_better,
            val_handlers=[self.saver],
        )
        self.record = BestModelRecord(self.evaluator, self.saver, "model.pt", negative_sign=True)

    def validate(self, epoch: int, val_wll: float) -> torch.Tensor:
        """Validate new weights, scored ``val_wll``, at trainer epoch ``epoch``; return them."""
        torch.nn.init.normal_(self.net.weight)
        self.score.value = val_wll
        self.evaluator.run(global_epoch=epoch)
        return self.net.weight.detach().clone()

    def save_last(self) -> None:
        LastCheckpointSaver(self.folder, {"best_model": self.record}, "checkpoint_last.pt")(
            Engine(lambda e, b: None)
        )

    def best_weight(self) -> torch.Tensor:
        return torch.load(self.folder / "model.pt", weights_only=True)["weight"]


@pytest.mark.parametrize(("score_after_resume", "replaced"), [(0.3, False), (0.1, True)])
def test_resumed_run_replaces_the_best_model_only_with_a_better_one(
    tmp_path, score_after_resume, replaced
):
    first = _Process(tmp_path)
    best = first.validate(1, 0.2)
    first.validate(2, 0.25)  # worse: model.pt keeps epoch 1
    first.save_last()
    assert torch.equal(first.best_weight(), best)

    resumed = _Process(tmp_path)  # a new process knows no earlier score
    resumed.record.restore(tmp_path / "checkpoint_last.pt")
    assert resumed.evaluator.state.best_metric == pytest.approx(0.2)
    assert resumed.evaluator.state.best_metric_epoch == 1
    latest = resumed.validate(3, score_after_resume)

    assert torch.equal(resumed.best_weight(), latest if replaced else best)
    assert resumed.evaluator.state.best_metric_epoch == (3 if replaced else 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_last.pt", "model.pt"]


def test_without_the_record_a_worse_model_replaces_the_best(tmp_path):
    _Process(tmp_path).validate(1, 0.2)
    latest = _Process(tmp_path).validate(2, 0.3)  # not restored: the saver knows no score
    assert torch.equal(_Process(tmp_path).best_weight(), latest)


def test_record_of_a_run_stopped_before_validating_changes_nothing(tmp_path):
    first = _Process(tmp_path)
    first.save_last()
    assert torch.load(tmp_path / "checkpoint_last.pt", weights_only=True)["best_model"] == {
        "best_metric": -1.0,
        "best_metric_epoch": -1,
    }
    resumed = _Process(tmp_path)
    resumed.record.restore(tmp_path / "checkpoint_last.pt")
    latest = resumed.validate(1, 0.4)
    assert torch.equal(resumed.best_weight(), latest)


def test_missing_checkpoint_or_record(tmp_path, caplog):
    process = _Process(tmp_path)
    process.record.restore(tmp_path / "checkpoint_last.pt")  # nothing to resume: no-op
    assert process.evaluator.state.best_metric_epoch == -1
    torch.save({"network": {}}, tmp_path / "old.pt")  # written before the record existed
    with caplog.at_level(logging.WARNING):
        process.record.restore(tmp_path / "old.pt")
    assert "old.pt has no 'best_model' record" in caplog.text
    assert process.evaluator.state.best_metric_epoch == -1
