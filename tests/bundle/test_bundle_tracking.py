"""MLflow tracking that warns instead of failing, and the last-checkpoint saver."""

from __future__ import annotations

import logging

import mlflow
import torch
from ignite.engine import Engine, Events

from ichbundles.bundle.handlers import LastCheckpointSaver
from ichbundles.bundle.tracking import SafeMLFlowHandler, default_tracking_uri, log_mlflow_run


def _engine() -> Engine:
    return Engine(lambda e, b: 0.5)


def test_default_uri_is_sqlite_in_output_and_env_overrides(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert default_tracking_uri(tmp_path / "o") == f"sqlite:///{tmp_path}/o/mlruns.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    assert default_tracking_uri(tmp_path) == "sqlite:///elsewhere.db"


def test_rejected_uri_disables_with_a_warning(tmp_path, caplog, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with caplog.at_level(logging.WARNING):
        handler = SafeMLFlowHandler(tracking_uri=str(tmp_path))  # a plain path: rejected
    assert handler.disabled and "tracking disabled" in caplog.text
    engine = _engine()
    handler.attach(engine)
    engine.run([1, 2], max_epochs=2)
    assert engine.state.epoch == 2


def test_failing_store_disables_during_run(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "a_file").write_text("not a folder")
    handler = SafeMLFlowHandler(tracking_uri=f"sqlite:///{tmp_path}/a_file/x.db")
    engine = _engine()
    handler.attach(engine)
    engine.run([1, 2], max_epochs=2)
    assert handler.disabled and engine.state.epoch == 2


def test_working_store_logs_metrics(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path}/mlruns.db"
    handler = SafeMLFlowHandler(
        tracking_uri=uri, experiment_name="t", iteration_log=False, close_on_complete=True
    )
    engine = Engine(lambda e, b: 0.5)

    @engine.on(Events.EPOCH_COMPLETED)
    def score(e: Engine) -> None:
        e.state.metrics = {"val_wll": 1.0 / e.state.epoch}

    handler.attach(engine)
    engine.run([1], max_epochs=3)
    assert not handler.disabled
    client = mlflow.MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("t").experiment_id])
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_wll")] == [1, 2, 3]


def test_last_checkpoint_saver_writes_engine_state(tmp_path):
    net = torch.nn.Linear(2, 1)
    engine = Engine(lambda e, b: 0.0)
    LastCheckpointSaver(tmp_path, {"network": net}, "last.pt").attach(engine)
    engine.run([1, 2], max_epochs=3)
    saved = torch.load(tmp_path / "last.pt", weights_only=True)
    assert saved["trainer"]["iteration"] == 6 and saved["network"]["weight"].shape == (1, 2)
    assert not list(tmp_path.glob("*.tmp"))


def test_log_mlflow_run_logs_params_metrics_and_existing_artifacts(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "model.npz").write_bytes(b"x")
    uri = default_tracking_uri(tmp_path)
    run_id = log_mlflow_run(
        uri,
        "fit",
        "fit_raw",
        params={"input": "raw", "classes": ["any"]},
        metrics={"fit_seconds": 1.5},
        artifacts=[tmp_path / "model.npz", tmp_path / "missing.json"],
    )
    run = mlflow.MlflowClient(uri).get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "fit_raw"
    assert run.data.params == {"input": "raw", "classes": "['any']"}
    assert run.data.metrics == {"fit_seconds": 1.5}
    assert [a.path for a in mlflow.MlflowClient(uri).list_artifacts(run_id)] == ["model.npz"]
    assert (tmp_path / "mlruns").is_dir()  # artifacts beside the SQLite store


def test_log_mlflow_run_warns_instead_of_failing(tmp_path, caplog, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "a_file").write_text("not a folder")
    with caplog.at_level(logging.WARNING):
        run_id = log_mlflow_run(f"sqlite:///{tmp_path}/a_file/x.db", "fit", metrics={"a": 1.0})
    assert run_id is None and "tracking disabled" in caplog.text
