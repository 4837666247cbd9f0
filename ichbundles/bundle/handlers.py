"""Ignite handlers the bundles need and MONAI lacks.

- :class:`LastCheckpointSaver`: one fixed-name checkpoint, rewritten atomically after every
  epoch, that ``CheckpointLoader`` resumes from (MONAI's ``CheckpointSaver`` numbers its interval
  files and writes its final file only at the end of a run);
- :class:`BestModelRecord`: the best validation score, saved in the last checkpoint and restored
  on resume, so that only a better model replaces the best one;
- :class:`ScanPredictionWriter`: per-slice probabilities of an evaluator as the RSNA-style CSV
  (``ID_<SOPInstanceUID>_<subtype>,<probability>``) and the scan-level CSV of ARCHITECTURE.md,
  then, when labels are given, the ``ichbundles evaluate`` outputs (``metrics.json``,
  ``report.md``, plots) through :func:`ichbundles.metrics.evaluate_files`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.handlers import CheckpointSaver
from torch import nn

from ichbundles.bundle.report import write_atomic, write_prediction_tables
from ichbundles.constants import ICH_CLASSES
from ichbundles.networks import scan_logits

__all__ = ["BestModelRecord", "LastCheckpointSaver", "ScanPredictionWriter", "lower_is_better"]

logger = logging.getLogger(__name__)


def lower_is_better(current: float, best: float) -> bool:
    """``metric_cmp_fn`` of engines whose key metric is a loss: a lower value is the new best."""
    return current < best


def _state_dict(obj: object) -> dict:
    if isinstance(obj, nn.parallel.DistributedDataParallel | nn.DataParallel):
        obj = obj.module
    return obj.state_dict()


class LastCheckpointSaver:
    """Save ``save_dict``'s state dicts and the engine's to one file after every epoch.

    The file is written to a temporary name and renamed, so an interrupted run leaves the
    previous epoch's checkpoint intact. Load it with MONAI's ``CheckpointLoader`` and the same
    keys (``network``, ``optimizer``, ``lr_scheduler``, ``trainer``): the trainer then continues
    from the saved epoch. Attach it on one process only in distributed runs.

    Args:
        save_dir: folder of the checkpoint (created).
        save_dict: objects with ``state_dict()``; (Distributed)DataParallel models are unwrapped.
        filename: checkpoint file name.
        engine_key: key of the attached engine's own state (epoch, iteration); it is taken from
            the engine at save time, so configs need not refer to the trainer from its handlers.
    """

    def __init__(
        self,
        save_dir: str | os.PathLike,
        save_dict: Mapping[str, object],
        filename: str,
        engine_key: str = "trainer",
    ) -> None:
        self.path = Path(save_dir) / filename
        self.save_dict = dict(save_dict)
        self.engine_key = engine_key

    def attach(self, engine: Engine) -> None:
        """Save at every ``EPOCH_COMPLETED`` of ``engine``."""
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        states = {k: _state_dict(v) for k, v in self.save_dict.items()}
        states[self.engine_key] = engine.state_dict()
        torch.save(states, tmp)
        os.replace(tmp, self.path)


class BestModelRecord:
    """A run's best validation score, kept in its last checkpoint: resuming keeps the best model.

    A resumed run is a new process: MONAI's evaluator knows no best metric and the best-model
    ``CheckpointSaver`` no earlier score, so the first validation would replace the best model
    whatever it scored. Put this object in :class:`LastCheckpointSaver`'s ``save_dict`` and call
    :meth:`restore` on resume: the evaluator gets back its ``best_metric`` and
    ``best_metric_epoch``, and the saver the score of the saved model (through
    ``CheckpointSaver.load_state_dict``, as MONAI documents for resuming), so only a better model
    replaces it. The saver's own ``key_metric_save_state`` would write that score into the model
    file, beside the weights and settings that inference reads. Early stopping's patience still
    starts afresh.

    Args:
        evaluator: the MONAI evaluator whose key metric picks the best model.
        saver: its best-model ``CheckpointSaver`` (``save_key_metric=True``), or ``None``.
        filename: the saver's ``key_metric_filename``.
        negative_sign: the saver's ``key_metric_negative_sign`` (lower is better).
    """

    def __init__(
        self,
        evaluator: Engine,
        saver: CheckpointSaver | None = None,
        filename: str = "model.pt",
        negative_sign: bool = False,
    ) -> None:
        self.evaluator = evaluator
        self.saver = saver
        self.filename = filename
        self.negative_sign = negative_sign

    def state_dict(self) -> dict[str, float | int]:
        """The evaluator's best key metric and its epoch (-1 before the first validation)."""
        state = self.evaluator.state
        return {
            "best_metric": float(state.best_metric),
            "best_metric_epoch": int(state.best_metric_epoch),
        }

    def load_state_dict(self, state_dict: Mapping[str, float | int]) -> None:
        """Give the evaluator and the saver the recorded best score."""
        epoch = int(state_dict["best_metric_epoch"])
        if epoch < 1:  # saved before any validation
            return
        best = float(state_dict["best_metric"])
        self.evaluator.state.best_metric = best
        self.evaluator.state.best_metric_epoch = epoch
        if self.saver is not None:
            # ignite Checkpoint's state: (priority, filename) of the files it keeps
            priority = -best if self.negative_sign else best
            self.saver.load_state_dict({"_saved": [(priority, self.filename)]})

    def restore(self, checkpoint: str | os.PathLike, key: str = "best_model") -> None:
        """Load the record saved under ``key`` in ``checkpoint``.

        A missing file (nothing to resume) changes nothing; a checkpoint without the record (an
        older run) is resumed as before, with a warning that its next validation replaces the
        best model.
        """
        path = Path(checkpoint)
        if not path.is_file():
            return
        state = torch.load(path, map_location="cpu", weights_only=True)
        if key not in state:
            logger.warning(
                "%s has no %r record: the next validation replaces the best model", path, key
            )
            return
        self.load_state_dict(state[key])


class ScanPredictionWriter:
    """Write an evaluator's per-slice probabilities as CSV files, and score them.

    The evaluator's ``prepare_batch`` must keep the batch's slice order (as
    :class:`ichbundles.engines.PrepareScanBatch` does); predictions are the network's per-slice
    logits ``(B, S, 6)``, read with the batch's ``mask`` and ``sop_instance_uids``.

    Writes at ``COMPLETED``, into ``output_dir``: ``predictions.csv`` (RSNA ``ID,Label``) and
    ``scan_predictions.csv`` (``series_instance_uid`` and the six classes, the maximum over
    slices); with ``labels``, the ``metrics.json``, ``report.md`` and plots of
    ``ichbundles evaluate --predictions predictions.csv --labels LABELS`` in ``metrics/``, and
    the scan-level ones in ``scan_metrics/``: against ``scan_labels``, or, without them, against
    each scan's maximum slice label (the RSNA rule), written to ``scan_labels.csv``.

    Args:
        output_dir: folder of the outputs (created).
        labels: RSNA-format slice labels to score against, or ``None``.
        scan_labels: per-scan labels (``series_instance_uid`` and the six classes), or ``None``.
        pred_key: key of the logits in the engine output.
        evaluate_options: keyword arguments of :func:`ichbundles.metrics.evaluate_files`,
            e.g. ``{"n_bootstrap": 200}``.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        labels: str | os.PathLike | None = None,
        scan_labels: str | os.PathLike | None = None,
        pred_key: str = "pred",
        evaluate_options: Mapping[str, object] | None = None,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.labels = labels
        self.scan_labels = scan_labels
        self.pred_key = pred_key
        self.evaluate_options = dict(evaluate_options or {})
        self._slices: list[tuple[str, np.ndarray]] = []
        self._scans: list[tuple[str, np.ndarray]] = []
        self._scan_truth: list[tuple[str, np.ndarray]] = []

    def attach(self, engine: Engine) -> None:
        """Collect at every iteration, write when ``engine`` completes."""
        engine.add_event_handler(Events.STARTED, self.reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.collect)
        engine.add_event_handler(Events.COMPLETED, self.write)

    def reset(self) -> None:
        """Forget the predictions of an earlier run."""
        self._slices, self._scans, self._scan_truth = [], [], []

    def collect(self, engine: Engine) -> None:
        """Keep the probabilities of the valid slices of the current batch."""
        batch, output = engine.state.batch, engine.state.output
        logits = output[self.pred_key].detach().float().cpu()
        mask = batch["mask"].bool().cpu()
        probs = torch.sigmoid(logits).numpy()
        scans = torch.sigmoid(scan_logits(logits, mask)).numpy()
        for b, uids in enumerate(batch["sop_instance_uids"]):
            n = int(mask[b].sum())
            if len(uids) != n:
                raise ValueError(f"scan {b} has {n} slices but {len(uids)} sop_instance_uids")
            self._slices.extend(zip(uids, probs[b, :n], strict=True))
            self._scans.append((batch["series_instance_uid"][b], scans[b]))
            if isinstance(batch.get("slice_labels"), torch.Tensor):
                truth = batch["slice_labels"][b, :n].detach().cpu().amax(dim=0).numpy()
                self._scan_truth.append((batch["series_instance_uid"][b], truth))

    def write(self) -> None:
        """Write the CSV files and, with labels, the evaluation outputs."""
        from ichbundles.metrics import evaluate_files, write_outputs

        path, scan_path = write_prediction_tables(self._slices, self._scans, self.output_dir)
        logger.info("wrote %s (%d slices, %d scans)", path, len(self._slices), len(self._scans))
        if self.labels is not None:
            evaluation = evaluate_files([path], labels=self.labels, **self.evaluate_options)
            write_outputs(evaluation, self.output_dir / "metrics")
        scan_labels = self.scan_labels
        if scan_labels is None and self.labels is not None and self._scan_truth:
            scan_labels = self._write_scan_truth()
        if scan_labels is not None:
            opts = self.evaluate_options
            evaluation = evaluate_files([scan_path], scan_labels=scan_labels, **opts)
            write_outputs(evaluation, self.output_dir / "scan_metrics")

    def _write_scan_truth(self) -> Path:
        """Each scan's labels as the maximum of its slice labels, as a scan-label csv."""
        rows = ["series_instance_uid," + ",".join(ICH_CLASSES)]
        for uid, truth in self._scan_truth:
            rows.append(f"{uid}," + ",".join(str(int(v > 0.5)) for v in truth))
        return write_atomic(self.output_dir / "scan_labels.csv", "\n".join(rows) + "\n")
