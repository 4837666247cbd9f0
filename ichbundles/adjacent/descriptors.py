"""Stage 1 descriptors of paper 001, extracted once per series without leakage, and reused.

The fusion network (stage 2) learns from the stage 1 probabilities of the training scans. Taken
from the stage 1 model that trained on those very scans, they would be over-confident, unlike
the ones it meets on new scans. So with ``folds = k > 1`` the training scans are split in ``k``
folds (:func:`ichbundles.bundle.data.fold_items`), one stage 1 model is trained per fold without
it, and each training scan's descriptors come from the model that never saw it. The validation
scans take theirs from the main stage 1 model (trained on every training scan, validated on
them), which is also the one used at inference. ``folds = 1`` takes all descriptors from the
main model: quick, but leaky.

Each series gets one ``.npz`` file (named by the SHA-256 of its scan name, never by a patient
name) holding its ``(S, 6)`` descriptors, its slice labels and the SHA-256 of the checkpoint
that made them; a file whose checkpoint is unchanged is reused, not recomputed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.data import DataLoader, PersistentDataset
from monai.engines import SupervisedEvaluator

from ichbundles.bundle.checkpoint import load_weights
from ichbundles.bundle.data import fold_items, split_items
from ichbundles.bundle.report import file_sha256, write_atomic
from ichbundles.engines import collate_scans, prepare_scan_batch

__all__ = [
    "DESCRIPTOR_FORMAT",
    "INDEX_FILE",
    "DescriptorSource",
    "DescriptorWriter",
    "descriptor_datalist",
    "descriptor_file",
    "descriptor_sources",
    "extract_descriptors",
    "fold_models",
    "read_descriptors",
]

DESCRIPTOR_FORMAT = "ichbundles.adjacent.descriptors/v1"
#: Summary written beside the descriptor files.
INDEX_FILE = "descriptors.json"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DescriptorSource:
    """A stage 1 checkpoint and the scans whose descriptors it gives.

    Attributes:
        name: ``"stage1"`` (the main model) or ``"fold<i>"``.
        checkpoint: the model's best weights.
        items: datalist items (with ``"name"``) it describes.
    """

    name: str
    checkpoint: Path
    items: list[dict]


def fold_models(folds: int) -> int:
    """How many fold models ``folds`` asks for: ``folds`` when above 1, else none.

    Raises:
        ValueError: ``folds`` below 1, before any stage trains.
    """
    if folds < 1:
        raise ValueError(f"folds must be at least 1 (1: no fold models, leaky), got {folds}")
    return folds if folds > 1 else 0


def descriptor_sources(
    datalist: Sequence[dict],
    val_fraction: float,
    folds: int,
    stage1_checkpoint: str | os.PathLike,
    fold_checkpoint: str,
) -> list[DescriptorSource]:
    """Which stage 1 model describes which scan.

    Args:
        datalist: every scan of the data folder, training and validation parts.
        val_fraction: the train/validation split of :func:`ichbundles.bundle.data.split_items`.
        folds: ``k``; 1 takes every descriptor from the main model (leaky).
        stage1_checkpoint: the main stage 1 model.
        fold_checkpoint: the checkpoint of the model trained without fold ``i``, as a pattern
            with ``{fold}``, e.g. ``"OUT/models/fold{fold}/model.pt"``.

    Returns:
        The main model's source (validation scans; every scan when ``folds == 1``), then one per
        fold (that fold's training scans).
    """
    if folds < 1:
        raise ValueError(f"folds must be at least 1, got {folds}")
    if folds == 1:
        return [DescriptorSource("stage1", Path(stage1_checkpoint), list(datalist))]
    train = split_items(datalist, val_fraction, "train")
    sources = [
        DescriptorSource(
            "stage1", Path(stage1_checkpoint), split_items(datalist, val_fraction, "validation")
        )
    ]
    for fold in range(folds):
        sources.append(
            DescriptorSource(
                f"fold{fold}",
                Path(fold_checkpoint.format(fold=fold)),
                fold_items(train, folds, fold, "validation"),
            )
        )
    return sources


def descriptor_file(descriptor_dir: str | os.PathLike, name: str) -> Path:
    """The descriptor file of scan ``name``: its name's SHA-256, so no identifier shows."""
    digest = hashlib.sha256(str(name).encode()).hexdigest()[:32]
    return Path(descriptor_dir) / f"{digest}.npz"


def read_descriptors(path: str | os.PathLike) -> dict[str, Any]:
    """Read one descriptor file.

    Returns:
        ``name``, ``descriptors`` ``(S, K)`` float32, ``slice_labels`` ``(S, K)`` float32 (or
        ``None``), ``source`` and ``checkpoint_sha256``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a descriptor file of this format, or NaN descriptors.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            content = {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise
    except Exception as error:  # truncated or foreign file
        raise ValueError(f"{path}: not a readable descriptor file ({error})") from None
    if str(content.get("format", "")) != DESCRIPTOR_FORMAT:
        raise ValueError(f"{path}: not a {DESCRIPTOR_FORMAT} file")
    descriptors = content["descriptors"].astype(np.float32)
    if descriptors.ndim != 2 or not np.isfinite(descriptors).all():
        raise ValueError(f"{path}: descriptors must be a finite (S, K) array")
    labels = content.get("slice_labels")
    return {
        "name": str(content["name"]),
        "descriptors": descriptors,
        "slice_labels": None if labels is None else labels.astype(np.float32),
        "source": str(content["source"]),
        "checkpoint_sha256": str(content["checkpoint_sha256"]),
    }


def _up_to_date(path: Path, checkpoint_sha256: str) -> bool:
    try:
        return read_descriptors(path)["checkpoint_sha256"] == checkpoint_sha256
    except (FileNotFoundError, ValueError, KeyError):
        return False


def _save_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    # written beside and renamed: an interrupted run never leaves half a file to be reused
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class DescriptorWriter:
    """Ignite handler that writes each scan's stage 1 probabilities to its descriptor file.

    Attach it to an evaluator whose network outputs per-slice logits ``(B, S, K)`` of batches
    from :func:`ichbundles.engines.collate_scans` (with ``name`` and, for training data,
    ``slice_labels``), without ``decollate``.

    Args:
        descriptor_dir: folder of the files (created).
        source: name of the stage 1 model (``stage1``, ``fold<i>``).
        checkpoint_sha256: its checkpoint's SHA-256, stored so that a later run can reuse the file.
        pred_key: key of the logits in the engine output.
    """

    def __init__(
        self,
        descriptor_dir: str | os.PathLike,
        source: str,
        checkpoint_sha256: str,
        pred_key: str = "pred",
    ) -> None:
        self.descriptor_dir = Path(descriptor_dir)
        self.source = source
        self.checkpoint_sha256 = checkpoint_sha256
        self.pred_key = pred_key
        self.written = 0

    def attach(self, engine: Engine) -> None:
        """Write at every ``ITERATION_COMPLETED``."""
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        """Write the descriptor file of every scan of the engine's current batch."""
        batch, output = engine.state.batch, engine.state.output
        probabilities = torch.sigmoid(output[self.pred_key].detach().float()).cpu().numpy()
        mask = batch["mask"].bool().cpu().numpy()
        labels = batch.get("slice_labels")
        self.descriptor_dir.mkdir(parents=True, exist_ok=True)
        for b, name in enumerate(batch["name"]):
            n = int(mask[b].sum())
            arrays = {
                "format": np.array(DESCRIPTOR_FORMAT),
                "name": np.array(str(name)),
                "descriptors": probabilities[b, :n].astype(np.float32),
                "source": np.array(self.source),
                "checkpoint_sha256": np.array(self.checkpoint_sha256),
            }
            if isinstance(labels, torch.Tensor):
                arrays["slice_labels"] = labels[b, :n].cpu().numpy().astype(np.float32)
            _save_npz(descriptor_file(self.descriptor_dir, name), arrays)
            self.written += 1


def extract_descriptors(
    network: torch.nn.Module,
    sources: Sequence[DescriptorSource],
    preprocessing: Callable,
    descriptor_dir: str | os.PathLike,
    cache_dir: str | os.PathLike,
    device: str | torch.device = "cpu",
    batch_size: int = 4,
    num_workers: int = 0,
) -> dict[str, Any]:
    """Write the descriptors of every source's scans, reusing files that are up to date.

    For each source, the scans whose file is missing or was made by another checkpoint go
    through ``network`` (with the source's weights) in a MONAI ``SupervisedEvaluator``. A summary
    is written to ``descriptors.json``.

    Args:
        network: the stage 1 network (:class:`ichbundles.networks.SliceClassifier`).
        sources: from :func:`descriptor_sources`.
        preprocessing: the deterministic scan preprocessing of training.
        descriptor_dir: folder of the descriptor files.
        cache_dir: the ``PersistentDataset`` cache of the preprocessed scans (training's).
        device: torch device.
        batch_size: scans per batch.
        num_workers: DataLoader workers.

    Returns:
        The summary: per source its checkpoint, SHA-256 and numbers of scans computed and
        reused; totals and seconds.

    Raises:
        FileNotFoundError: a source's checkpoint is missing (its stage has not run).
    """
    descriptor_dir = Path(descriptor_dir)
    descriptor_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    summary: dict[str, Any] = {"format": DESCRIPTOR_FORMAT, "sources": {}}
    for source in sources:
        if not source.checkpoint.is_file():
            raise FileNotFoundError(
                f"{source.checkpoint}: no {source.name} checkpoint; train that stage first"
            )
        sha = file_sha256(source.checkpoint)
        todo = [
            item
            for item in source.items
            if not _up_to_date(descriptor_file(descriptor_dir, item["name"]), sha)
        ]
        writer = DescriptorWriter(descriptor_dir, source.name, sha)
        if todo:
            load_weights(network, source.checkpoint)
            loader = DataLoader(
                PersistentDataset(todo, preprocessing, cache_dir=cache_dir, weights_only=False),
                batch_size=batch_size,
                shuffle=False,
                num_workers=num_workers,
                collate_fn=collate_scans,
            )
            SupervisedEvaluator(
                device=torch.device(device),
                val_data_loader=loader,
                network=network,
                prepare_batch=prepare_scan_batch,
                decollate=False,
                val_handlers=[writer],
            ).run()
        logger.info(
            "descriptors of %s: %d scans computed, %d reused (%s)",
            source.name,
            writer.written,
            len(source.items) - len(todo),
            source.checkpoint,
        )
        summary["sources"][source.name] = {
            "checkpoint": str(source.checkpoint),
            "checkpoint_sha256": sha,
            "scans": len(source.items),
            "computed": writer.written,
            "reused": len(source.items) - len(todo),
        }
    summary["scans"] = sum(s["scans"] for s in summary["sources"].values())
    summary["computed"] = sum(s["computed"] for s in summary["sources"].values())
    summary["reused"] = sum(s["reused"] for s in summary["sources"].values())
    summary["seconds"] = round(time.perf_counter() - start, 3)
    write_atomic(descriptor_dir / INDEX_FILE, json.dumps(summary, indent=2))
    return summary


def descriptor_datalist(
    items: Sequence[dict], descriptor_dir: str | os.PathLike
) -> list[dict[str, Any]]:
    """Fusion training items: each scan's descriptors as ``image`` ``(S, K)`` with its labels.

    Descriptors are small (``S x 6`` numbers per scan), so they are read into memory once.

    Args:
        items: datalist items with ``"name"``.
        descriptor_dir: the folder :func:`extract_descriptors` wrote.

    Raises:
        FileNotFoundError: a scan has no descriptor file (the descriptor stage has not run).
        ValueError: a file is not a descriptor file, has no slice labels or names another scan.
    """
    out = []
    for item in items:
        path = descriptor_file(descriptor_dir, item["name"])
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: no descriptors of scan {item['name']}; run the descriptor stage first"
            )
        content = read_descriptors(path)
        if content["slice_labels"] is None or content["name"] != str(item["name"]):
            raise ValueError(f"{path}: no slice labels, or not the file of {item['name']}")
        out.append(
            {
                "name": content["name"],
                "image": content["descriptors"],
                "slice_labels": content["slice_labels"],
                "source": content["source"],
            }
        )
    return out
