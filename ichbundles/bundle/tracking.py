"""MLflow tracking that never stops training: MONAI's ``MLFlowHandler`` with its failures caught.

Bundle configs add :class:`SafeMLFlowHandler` to the trainer's and the evaluator's handler lists
(and call :func:`log_mlflow_run` for steps that run outside an engine), so tracking is on by
default, to ``sqlite:///<output_dir>/mlruns.db`` (MONAI 1.6 and MLflow 3 accept SQLite, not
``file:`` stores). ``MLFLOW_TRACKING_URI`` overrides the configured URI. When MLflow is missing,
the URI is rejected or any tracking call fails, the handler logs one warning and disables
itself; the run goes on.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from functools import wraps
from pathlib import Path
from typing import Any

from ignite.engine import Engine
from monai.handlers import MLFlowHandler
from monai.utils import path_to_sqlite_uri, path_to_uri

__all__ = [
    "PARENT_RUN_TAG",
    "SafeMLFlowHandler",
    "default_tracking_uri",
    "end_parent_run",
    "log_mlflow_run",
    "reopen_parent_run",
    "start_parent_run",
]

logger = logging.getLogger(__name__)

#: MLflow's tag that nests a run under another in the UI and in ``search_runs``.
PARENT_RUN_TAG = "mlflow.parentRunId"


def default_tracking_uri(output_dir: str | os.PathLike) -> str:
    """``MLFLOW_TRACKING_URI`` when set, else ``sqlite:///<output_dir>/mlruns.db`` (absolute)."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    return path_to_sqlite_uri(os.path.join(os.path.abspath(output_dir), "mlruns.db"))


def _guarded(method: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(method)
    def call(self: SafeMLFlowHandler, *args: Any) -> None:
        if self.disabled:
            return
        try:
            method(self, *args)
        except Exception as error:  # tracking must never stop training
            self.disable(f"{method.__name__} failed: {error}")

    return call


class SafeMLFlowHandler(MLFlowHandler):
    """:class:`monai.handlers.MLFlowHandler` that warns and disables itself on any failure.

    Takes the arguments of ``MLFlowHandler`` (``tracking_uri``, ``experiment_name``, ``run_name``,
    ``experiment_param``, ``artifacts``, ...); artifacts missing when the engine completes are
    skipped, as ``MLFlowHandler`` does. After a failure ``disabled`` is True and every event is
    a no-op. The wrapped event methods keep ``MLFlowHandler``'s signatures (``functools.wraps``),
    so Ignite passes the engine to exactly those that take it.

    Args:
        args: positional arguments of ``MLFlowHandler``.
        parent_run_id: nest the run under this MLflow run (a stage of ``ichbundles train``), or
            ``None``.
        kwargs: keyword arguments of ``MLFlowHandler``.
    """

    def __init__(self, *args: Any, parent_run_id: str | None = None, **kwargs: Any) -> None:
        self.disabled = False
        self.parent_run_id = parent_run_id
        try:
            super().__init__(*args, **kwargs)
        except Exception as error:  # missing mlflow, rejected URI, unreachable store
            self.disable(f"cannot start: {error}")

    def disable(self, reason: str) -> None:
        """Stop tracking for the rest of the run, with one warning saying why."""
        if not self.disabled:
            logger.warning("MLflow tracking disabled, training goes on (%s)", reason)
        self.disabled = True

    def attach(self, engine: Engine) -> None:
        """Register the event handlers unless tracking is disabled."""
        if not self.disabled:
            super().attach(engine)

    @_guarded
    def start(self, engine: Engine) -> None:
        """Start or pick up the run, as ``MLFlowHandler`` does, and nest it under the parent."""
        MLFlowHandler.start(self, engine)
        if self.parent_run_id and self.cur_run is not None:
            self.client.set_tag(self.cur_run.info.run_id, PARENT_RUN_TAG, self.parent_run_id)

    complete = _guarded(MLFlowHandler.complete)
    close = _guarded(MLFlowHandler.close)
    epoch_completed = _guarded(MLFlowHandler.epoch_completed)
    iteration_completed = _guarded(MLFlowHandler.iteration_completed)


def log_mlflow_run(
    tracking_uri: str,
    experiment_name: str,
    run_name: str | None = None,
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, float] | None = None,
    artifacts: Iterable[str | os.PathLike] = (),
    parent_run_id: str | None = None,
) -> str | None:
    """Log one finished run: parameters, metrics and artifact files.

    For workflow steps that run outside an Ignite engine (the VGPMIL fit of
    ``ich_attention_mil``), where :class:`SafeMLFlowHandler` has no events to follow. Like the
    handler, it prefers ``MLFLOW_TRACKING_URI``, creates a missing experiment with its artifacts
    in ``mlruns/`` beside a SQLite store, and on any failure logs one warning and returns.

    Args:
        tracking_uri: the MLflow store, e.g. from :func:`default_tracking_uri`.
        experiment_name: experiment of the run (created when missing).
        run_name: name of the run.
        params: parameters; values are logged as strings.
        metrics: metric values.
        artifacts: files to attach; missing ones are skipped.
        parent_run_id: nest the run under this MLflow run, or ``None``.

    Returns:
        The run id, or ``None`` when tracking failed.
    """
    try:
        from mlflow.entities import Metric, Param

        client, experiment_id = _client_and_experiment(tracking_uri, experiment_name)
        tags = {PARENT_RUN_TAG: parent_run_id} if parent_run_id else None
        run_id = client.create_run(experiment_id, run_name=run_name, tags=tags).info.run_id
        now = int(time.time() * 1000)
        client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in (metrics or {}).items()],
            params=[Param(k, str(v)) for k, v in (params or {}).items()],
        )
        for artifact in artifacts:
            if Path(artifact).is_file():
                client.log_artifact(run_id, str(artifact))
        client.set_terminated(run_id)
    except Exception as error:  # tracking must never stop the workflow
        logger.warning("MLflow tracking disabled, training goes on (log_mlflow_run: %s)", error)
        return None
    return run_id


def _client_and_experiment(tracking_uri: str, experiment_name: str) -> tuple[Any, str]:
    """An MLflow client (``MLFLOW_TRACKING_URI`` first) and the experiment's id, created with
    its artifacts in ``mlruns/`` beside a SQLite store when missing."""
    import mlflow

    uri = os.environ.get("MLFLOW_TRACKING_URI") or tracking_uri
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is not None:
        return client, experiment.experiment_id
    location = None
    if uri.startswith("sqlite:///"):
        location = path_to_uri(Path(uri[len("sqlite:///") :]).parent / "mlruns")
    return client, client.create_experiment(experiment_name, artifact_location=location)


def start_parent_run(
    tracking_uri: str,
    experiment_name: str,
    run_name: str,
    params: Mapping[str, Any] | None = None,
) -> str | None:
    """Open the run that a multi-stage training nests its stages' runs under.

    Args:
        tracking_uri: the MLflow store (``MLFLOW_TRACKING_URI`` overrides it).
        experiment_name: experiment of the run (created when missing).
        run_name: name of the run.
        params: parameters; values are logged as strings.

    Returns:
        The run id, or ``None`` (with one warning) when tracking failed.
    """
    try:
        from mlflow.entities import Param

        client, experiment_id = _client_and_experiment(tracking_uri, experiment_name)
        run_id = client.create_run(experiment_id, run_name=run_name).info.run_id
        client.log_batch(run_id, params=[Param(k, str(v)) for k, v in (params or {}).items()])
    except Exception as error:  # tracking must never stop the workflow
        logger.warning("MLflow tracking disabled, training goes on (parent run: %s)", error)
        return None
    return run_id


def reopen_parent_run(tracking_uri: str, run_id: str) -> None:
    """Mark a parent run ``RUNNING`` again, for a resumed training; failures only warn."""
    try:
        import mlflow

        client = mlflow.MlflowClient(os.environ.get("MLFLOW_TRACKING_URI") or tracking_uri)
        client.update_run(run_id, status="RUNNING")
    except Exception as error:  # tracking must never stop the workflow
        logger.warning("MLflow parent run %s not reopened: %s", run_id, error)


def end_parent_run(tracking_uri: str, run_id: str, status: str = "FINISHED") -> None:
    """Close the parent run with ``status`` (``FINISHED``, ``FAILED`` or ``KILLED``); failures
    only warn."""
    try:
        import mlflow

        client = mlflow.MlflowClient(os.environ.get("MLFLOW_TRACKING_URI") or tracking_uri)
        client.set_terminated(run_id, status=status)
    except Exception as error:  # tracking must never stop the workflow
        logger.warning("MLflow parent run %s not closed: %s", run_id, error)
