"""Batches of whole scans for MONAI's Ignite engines: collate, ``prepare_batch`` and loss.

A batch of ``B`` scans with ``S_i`` slices each is the dictionary

=================  =====================  ===================================================
key                shape, dtype           content
=================  =====================  ===================================================
``image``          (B, S, C, H, W) float  slices, zero-padded at the end to ``S = max S_i``
``mask``           (B, S) bool            True for real slices (a prefix of each row)
``slice_labels``   (B, S, K) float        per-slice labels; padded rows are ``PAD_LABEL``
``scan_labels``    (B, K) float           per-scan labels
other keys                                collated as MONAI does, dicts and lists per item
=================  =====================  ===================================================

``slice_labels`` and ``scan_labels`` appear only when the items have them. Padded rows carry
negative labels so that :class:`MaskedBCEWithLogitsLoss` and the metrics of
:mod:`ichbundles.metrics.ignite` (which drop rows with negative labels) ignore them.

:class:`PrepareScanBatch` turns such a batch into the ``(inputs, targets, args, kwargs)`` that
``SupervisedTrainer`` and ``SupervisedEvaluator`` unpack: the network is called as
``network(image, mask=mask)`` and the loss as ``loss(network_output, slice_labels)``. In a
bundle config::

    train_loader: {_target_: DataLoader, collate_fn: "$ichbundles.engines.collate_scans", ...}
    trainer:
      _target_: SupervisedTrainer
      prepare_batch:
        _target_: ichbundles.engines.PrepareScanBatch
        batch_transform: {_target_: ichbundles.transforms.augment.RandCutMixScansd, prob: 0.5}
      loss_function: {_target_: ichbundles.engines.MaskedBCEWithLogitsLoss}
    evaluator:
      _target_: SupervisedEvaluator
      prepare_batch: "$ichbundles.engines.prepare_scan_batch"
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from monai.data.utils import collate_meta_tensor
from monai.engines.utils import PrepareBatch
from monai.utils import convert_to_tensor
from torch import nn

from ichbundles.constants import CLASS_WEIGHTS

__all__ = [
    "PAD_LABEL",
    "MaskedBCEWithLogitsLoss",
    "PrepareScanBatch",
    "collate_scans",
    "pad_scans",
    "prepare_scan_batch",
]

#: Label of padded slices; any negative label marks a row that losses and metrics drop.
PAD_LABEL = -1.0

_LABEL_KEYS = ("slice_labels", "scan_labels")


def _as_float_tensor(value: Any) -> torch.Tensor:
    return convert_to_tensor(value, dtype=torch.float32, track_meta=False)


def pad_scans(items: Sequence[Mapping[Hashable, Any]]) -> dict[Hashable, Any]:
    """Collate scans of different lengths into one zero-padded batch (see the module docstring).

    Args:
        items: dictionaries with ``"image"`` of shape (S_i, C, H, W) (numpy array, tensor or
            MetaTensor; the same (C, H, W) for all), or (S_i, K) per-slice vectors such as the
            slice descriptors of ``ich_adjacent_slices``; optionally
            ``"slice_labels"`` (S_i, K) and ``"scan_labels"`` (K,). Every item must have the
            keys of the first one.

    Returns:
        ``"image"`` (B, S, C, H, W) float32 plain tensor, zero-padded after each scan's last slice;
        ``"mask"`` (B, S) bool; ``"slice_labels"`` (B, S, K) float32 padded with
        :data:`PAD_LABEL`; ``"scan_labels"`` (B, K) float32. Any other key whose values are
        dictionaries, lists or tuples (metadata, UID lists) becomes the list of the items'
        values, ``batch[key][b]`` being item ``b``'s; the rest is collated by MONAI's
        ``collate_meta_tensor`` (tensors and arrays stacked, strings listed).

    Raises:
        ValueError: no items, an image neither (S, C, H, W) nor (S, K), images of different
            per-slice shapes, slice labels on only some items or of a length other than the image's.
    """
    if not items:
        raise ValueError("pad_scans needs at least one item.")
    images = [_as_float_tensor(item["image"]) for item in items]
    frame = images[0].shape[1:]
    for image in images:
        if image.ndim not in (2, 4) or image.shape[1:] != frame:
            raise ValueError(
                f"Scan images must be (S, C, H, W) (or (S, K) descriptors) with one per-slice "
                f"shape; got {tuple(image.shape)} beside {tuple(images[0].shape)}."
            )
    lengths = [image.shape[0] for image in images]
    batch: dict[Hashable, Any] = {
        "image": images[0].new_zeros((len(images), max(lengths), *frame)),
        "mask": torch.zeros((len(images), max(lengths)), dtype=torch.bool),
    }
    for b, (image, length) in enumerate(zip(images, lengths, strict=True)):
        batch["image"][b, :length] = image
        batch["mask"][b, :length] = True

    has_slice_labels = ["slice_labels" in item for item in items]
    if any(has_slice_labels):
        if not all(has_slice_labels):
            raise ValueError("Either every item or none has 'slice_labels'.")
        labels = [_as_float_tensor(item["slice_labels"]) for item in items]
        batch["slice_labels"] = torch.full(
            (len(items), max(lengths), labels[0].shape[-1]), PAD_LABEL, dtype=torch.float32
        )
        for b, (label, length) in enumerate(zip(labels, lengths, strict=True)):
            if label.shape[0] != length:
                raise ValueError(
                    f"Item {b} has {length} slices but {label.shape[0]} rows of slice_labels."
                )
            batch["slice_labels"][b, :length] = label
    if "scan_labels" in items[0]:
        batch["scan_labels"] = torch.stack([_as_float_tensor(i["scan_labels"]) for i in items])

    for key in items[0]:
        if key in batch:
            continue
        values = [item[key] for item in items]
        if isinstance(values[0], Mapping | list | tuple):
            batch[key] = values
        else:
            batch[key] = collate_meta_tensor(values)
    return batch


def collate_scans(batch: Sequence[Mapping[Hashable, Any] | Sequence[Mapping[Hashable, Any]]]):
    """``collate_fn`` for a DataLoader of scans: :func:`pad_scans` over the items.

    As with MONAI's ``list_data_collate``, items that are lists of dictionaries (transforms
    that return several samples per scan) are flattened first.

    Args:
        batch: the items the DataLoader fetched.
    """
    items = [s for item in batch for s in item] if isinstance(batch[0], list) else list(batch)
    return pad_scans(items)


class PrepareScanBatch(PrepareBatch):
    """``prepare_batch`` of ``SupervisedTrainer``/``SupervisedEvaluator`` for scan batches.

    Returns ``(image, labels, (), {"mask": mask})``: the engines call the network (through the
    inferer) as ``network(image, mask=mask)`` and the loss as ``loss(pred, labels)``; ``labels``
    is also the engine output's ``"label"`` that metric handlers read. ``labels`` is ``None``
    when the batch has no ``label_key`` (inference).

    Args:
        image_key: key of the (B, S, C, H, W) images.
        mask_key: key of the (B, S) bool mask of real slices.
        label_key: key of the targets: ``"slice_labels"`` (B, S, K) for networks with per-slice
            outputs, ``"scan_labels"`` (B, K) for scan-level ones.
        batch_transform: optional callable applied to the dictionary of the three tensors after
            they are on the device, for batch-level augmentation such as
            :class:`ichbundles.transforms.augment.RandCutMixScansd` in training. It runs in the
            main process, where its random state is not duplicated across DataLoader workers.
    """

    def __init__(
        self,
        image_key: str = "image",
        mask_key: str = "mask",
        label_key: str = "slice_labels",
        batch_transform: Callable[[dict], Mapping] | None = None,
    ) -> None:
        self.image_key = image_key
        self.mask_key = mask_key
        self.label_key = label_key
        self.batch_transform = batch_transform

    def __call__(
        self,
        batchdata: Mapping[str, Any],
        device: str | torch.device | None = None,
        non_blocking: bool = False,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor | None, tuple, dict[str, torch.Tensor]]:
        """Move image, mask and labels to `device` and split them as the engines expect.

        Args:
            batchdata: a batch from :func:`collate_scans`.
            device: target device.
            non_blocking: see ``Tensor.to``.
            kwargs: further ``Tensor.to`` arguments (the engine's ``to_kwargs``), applied to the
                image and the labels; the bool mask is only moved.
        """
        batch = {
            self.image_key: batchdata[self.image_key].to(
                device=device, non_blocking=non_blocking, **kwargs
            ),
            self.mask_key: batchdata[self.mask_key].to(device=device, non_blocking=non_blocking),
        }
        if isinstance(batchdata.get(self.label_key), torch.Tensor):
            batch[self.label_key] = batchdata[self.label_key].to(
                device=device, non_blocking=non_blocking, **kwargs
            )
        if self.batch_transform is not None:
            batch = dict(self.batch_transform(batch))
        return batch[self.image_key], batch.get(self.label_key), (), {"mask": batch[self.mask_key]}


def prepare_scan_batch(
    batchdata: Mapping[str, Any],
    device: str | torch.device | None = None,
    non_blocking: bool = False,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor | None, tuple, dict[str, torch.Tensor]]:
    """:class:`PrepareScanBatch` with its defaults, as a function.

    Returns ``(image, slice_labels, (), {"mask": mask})``: the network is called as
    ``network(image, mask=mask)`` and the loss as ``loss(pred, slice_labels)``.
    """
    return PrepareScanBatch()(batchdata, device, non_blocking, **kwargs)


class MaskedBCEWithLogitsLoss(nn.Module):
    """Class-weighted binary cross-entropy over the valid rows of per-slice logits.

    A row (one slice) is valid when all its labels are non-negative; padded slices
    (:data:`PAD_LABEL`) are ignored. The loss is normalised like the RSNA weighted log loss:
    ``mean over valid rows of sum_c w_c * bce_c / sum_c w_c``, so on binary labels it equals
    :func:`ichbundles.metrics.loss.weighted_log_loss` of the sigmoid probabilities. Soft labels
    in [0, 1] (CutMix) are allowed. With no valid row it returns a zero that still has a
    gradient.

    Args:
        weights: per-class weights, ``CLASS_WEIGHTS`` (2 for "any") by default.
    """

    def __init__(self, weights: Sequence[float] = CLASS_WEIGHTS) -> None:
        super().__init__()
        self.register_buffer(
            "weights", torch.as_tensor(weights, dtype=torch.float32), persistent=False
        )

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """
        Args:
            input: logits (..., K), e.g. (B, S, K) or (N, K).
            target: labels of the same shape; rows with a negative label are ignored.

        Raises:
            ValueError: shapes differ or K is not the number of weights.
        """
        if input.shape != target.shape or input.shape[-1] != self.weights.numel():
            raise ValueError(
                f"Expected logits and labels of one shape (..., {self.weights.numel()}), got "
                f"{tuple(input.shape)} and {tuple(target.shape)}."
            )
        logits = input.reshape(-1, input.shape[-1])
        labels = target.reshape(-1, target.shape[-1]).to(logits.dtype)
        valid = (labels >= 0).all(dim=1)
        # a mask rather than boolean indexing: no host-device sync on CUDA
        bce = F.binary_cross_entropy_with_logits(logits, labels.clamp(min=0), reduction="none")
        # the loss module is rarely moved with the network, so follow the logits' device
        weights = self.weights.to(device=bce.device, dtype=bce.dtype)
        per_row = torch.where(valid, bce @ (weights / weights.sum()), 0.0)
        return per_row.sum() / valid.sum().clamp(min=1)
