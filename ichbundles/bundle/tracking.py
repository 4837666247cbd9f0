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

__all__ = ["SafeMLFlowHandler", "default_tracking_uri", "log_mlflow_run"]

logger = logging.getLogger(__name__)


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
        kwargs: keyword arguments of ``MLFlowHandler``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.disabled = False
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

    start = _guarded(MLFlowHandler.start)
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

    Returns:
        The run id, or ``None`` when tracking failed.
    """
    try:
        import mlflow
        from mlflow.entities import Metric, Param

        uri = os.environ.get("MLFLOW_TRACKING_URI") or tracking_uri
        client = mlflow.MlflowClient(uri)
        experiment = client.get_experiment_by_name(experiment_name)
        if experiment is None:
            location = None
            if uri.startswith("sqlite:///"):
                location = path_to_uri(Path(uri[len("sqlite:///") :]).parent / "mlruns")
            experiment_id = client.create_experiment(experiment_name, artifact_location=location)
        else:
            experiment_id = experiment.experiment_id
        run_id = client.create_run(experiment_id, run_name=run_name).info.run_id
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
