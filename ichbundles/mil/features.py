"""Per-slice features of an attention MIL network, gathered by a MONAI evaluator (paper 000,
Phase 2 input).

:class:`MILFeatureInferer` makes ``SupervisedEvaluator`` call ``network.extract`` instead of
``network``, so the engine output's ``"pred"`` is the dictionary of
:meth:`ichbundles.networks.AttentionMIL.extract` (``logits`` (B, K), ``features`` (B, S, M),
``weights`` (B, S)). :class:`MILFeatureCollector` turns each batch of such outputs into one row
per real slice (padding dropped) and :meth:`MILFeatureCollector.features` returns them as a
:class:`MILFeatures`. In a bundle config::

    collector: {_target_: ichbundles.mil.MILFeatureCollector}
    evaluator:
      _target_: SupervisedEvaluator
      inferer: {_target_: ichbundles.mil.MILFeatureInferer}
      prepare_batch: {_target_: ichbundles.engines.PrepareScanBatch, label_key: scan_labels}
      decollate: false
      val_handlers: ["@collector"]

then ``@collector.features()`` after ``@evaluator.run()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.inferers import Inferer
from torch import nn

__all__ = ["MILFeatureCollector", "MILFeatureInferer", "MILFeatures"]


class MILFeatureInferer(Inferer):
    """Inferer that returns ``network.extract(inputs, *args, **kwargs)``.

    MONAI's ``SimpleInferer`` can only call the network itself, whose output is the scan
    logits; Phase 2 needs the slice features and pooling weights behind them as well.
    (Distributed)DataParallel wrappers are unwrapped, since ``extract`` lives on the module.
    """

    def __call__(
        self, inputs: torch.Tensor, network: nn.Module, *args: Any, **kwargs: Any
    ) -> Mapping[str, torch.Tensor]:
        """
        Args:
            inputs: ``(B, S, C, H, W)`` padded scans.
            network: a network with an ``extract`` method, e.g. ``AttentionMIL``, possibly
                wrapped in ``DistributedDataParallel`` or ``DataParallel``.
            args: further positional arguments of ``extract``.
            kwargs: further keyword arguments of ``extract`` (the ``mask``).
        """
        if isinstance(network, nn.parallel.DistributedDataParallel | nn.DataParallel):
            network = network.module
        return network.extract(inputs, *args, **kwargs)


@dataclass(frozen=True)
class MILFeatures:
    """One row per real slice: the instances of Phase 2, grouped into bags (scans).

    Rows of a bag are contiguous and in slice order. ``K`` is the number of network outputs,
    ``C`` the number of label columns in the data (6 for RSNA-style data: the subtypes, then
    "any").

    Attributes:
        bag_ids: ``(N,)`` str, the scan of each slice (its SeriesInstanceUID).
        slice_index: ``(N,)`` int, position of the slice in its scan.
        sop_instance_uids: ``(N,)`` str, the slice's SOPInstanceUID, or ``None`` when the
            batches have none.
        features: ``(N, M)`` float32 slice features (before pooling).
        weights: ``(N,)`` float32 pooling (attention) weight of the slice in its scan.
        scan_probability: ``(N, K)`` float32 network scan probabilities (sigmoid of the logits),
            repeated on every slice of the scan.
        scan_labels: ``(N, C)`` float32 scan labels repeated per slice, or ``None``.
        slice_labels: ``(N, C)`` float32 slice labels, or ``None``.
    """

    bag_ids: np.ndarray
    slice_index: np.ndarray
    sop_instance_uids: np.ndarray | None
    features: np.ndarray
    weights: np.ndarray
    scan_probability: np.ndarray
    scan_labels: np.ndarray | None = None
    slice_labels: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.bag_ids)

    @property
    def n_bags(self) -> int:
        """Number of distinct scans."""
        return len(np.unique(self.bag_ids))


def _rows(arrays: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(arrays).astype(dtype, copy=False)


class MILFeatureCollector:
    """Ignite handler that keeps the per-slice outputs of :class:`MILFeatureInferer`.

    Reads the engine output's ``pred_key`` (the ``extract`` dictionary; the evaluator must run
    with ``decollate=False``) and, from the batch of :func:`ichbundles.engines.collate_scans`,
    the mask, the bag ids, the slice UIDs and the labels. Restarts empty at every run of the
    engine. In distributed runs each process keeps only the rows of its own batches.

    Args:
        pred_key: key of the ``extract`` dictionary in the engine output.
        mask_key: batch key of the (B, S) bool mask of real slices.
        bag_key: batch key of the per-scan bag ids (a list of str).
        uid_key: batch key of the per-scan lists of slice UIDs; missing keys give ``None``.
        scan_label_key: batch key of the (B, C) scan labels; optional.
        slice_label_key: batch key of the (B, S, C) slice labels; optional.
    """

    def __init__(
        self,
        pred_key: str = "pred",
        mask_key: str = "mask",
        bag_key: str = "series_instance_uid",
        uid_key: str = "sop_instance_uids",
        scan_label_key: str = "scan_labels",
        slice_label_key: str = "slice_labels",
    ) -> None:
        self.pred_key = pred_key
        self.mask_key = mask_key
        self.bag_key = bag_key
        self.uid_key = uid_key
        self.scan_label_key = scan_label_key
        self.slice_label_key = slice_label_key
        self.reset()

    def attach(self, engine: Engine) -> None:
        """Start empty at ``STARTED``, collect at every ``ITERATION_COMPLETED``."""
        engine.add_event_handler(Events.STARTED, self.reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.collect)

    def reset(self) -> None:
        """Forget the rows of an earlier run."""
        self._columns: dict[str, list] = {
            "bag_ids": [],
            "slice_index": [],
            "sop_instance_uids": [],
            "features": [],
            "weights": [],
            "scan_probability": [],
            "scan_labels": [],
            "slice_labels": [],
        }

    def collect(self, engine: Engine) -> None:
        """Keep the rows of the real slices of the current batch.

        Raises:
            TypeError: the engine output's prediction is not an ``extract`` dictionary.
            ValueError: a scan whose number of slice UIDs differs from its number of slices.
        """
        batch, pred = engine.state.batch, engine.state.output[self.pred_key]
        if not isinstance(pred, Mapping) or "features" not in pred:
            raise TypeError(
                "MILFeatureCollector needs the dictionary of network.extract as the engine "
                "output (use MILFeatureInferer and decollate=False)"
            )
        features = pred["features"].detach().float().cpu().numpy()
        weights = pred["weights"].detach().float().cpu().numpy()
        probability = torch.sigmoid(pred["logits"].detach().float()).cpu().numpy()
        mask = batch[self.mask_key].bool().cpu().numpy()
        scan_labels = batch.get(self.scan_label_key)
        slice_labels = batch.get(self.slice_label_key)
        uids = batch.get(self.uid_key)
        columns = self._columns
        for b, bag in enumerate(batch[self.bag_key]):
            index = np.flatnonzero(mask[b])
            n = len(index)
            columns["bag_ids"].append(np.full(n, str(bag), dtype=object))
            columns["slice_index"].append(index)
            columns["features"].append(features[b, index])
            columns["weights"].append(weights[b, index])
            columns["scan_probability"].append(np.repeat(probability[b][None], n, axis=0))
            if uids is not None:
                if len(uids[b]) != n:
                    raise ValueError(f"scan {bag} has {n} slices but {len(uids[b])} UIDs")
                columns["sop_instance_uids"].append(np.asarray(uids[b], dtype=object))
            if isinstance(scan_labels, torch.Tensor):
                row = scan_labels[b].float().cpu().numpy()
                columns["scan_labels"].append(np.repeat(row[None], n, axis=0))
            if isinstance(slice_labels, torch.Tensor):
                columns["slice_labels"].append(slice_labels[b, index].float().cpu().numpy())

    def features(self) -> MILFeatures:
        """The rows collected so far, in batch order.

        Raises:
            RuntimeError: nothing was collected.
        """
        c = self._columns
        if not c["bag_ids"]:
            raise RuntimeError("no features collected: run the engine first")
        n_bags = len(c["bag_ids"])

        def optional(name: str) -> np.ndarray | None:
            # a key present in only some batches would misalign rows: keep it only if complete
            return _rows(c[name], np.float32) if len(c[name]) == n_bags else None

        return MILFeatures(
            bag_ids=_rows(c["bag_ids"], object).astype(str),
            slice_index=_rows(c["slice_index"], np.int64),
            sop_instance_uids=(
                _rows(c["sop_instance_uids"], object).astype(str)
                if len(c["sop_instance_uids"]) == n_bags
                else None
            ),
            features=_rows(c["features"], np.float32),
            weights=_rows(c["weights"], np.float32),
            scan_probability=_rows(c["scan_probability"], np.float32),
            scan_labels=optional("scan_labels"),
            slice_labels=optional("slice_labels"),
        )
