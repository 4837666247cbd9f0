"""Train a slice encoder on random slices drawn from batches of whole scans."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from monai.engines.utils import PrepareBatch

__all__ = ["PrepareSliceBatch"]


class PrepareSliceBatch(PrepareBatch):
    """``prepare_batch`` that turns a batch of scans into a batch of single slices.

    Draws up to ``slices`` of the valid slices of a :func:`ichbundles.engines.collate_scans`
    batch at random, without replacement, so one step sees slices from several scans: far less
    correlated than the slices of one or two whole scans, which is what lets a randomly
    initialised encoder learn in a few hundred steps. Scan-level augmentation and the
    preprocessing cache work unchanged, since the data loader still yields scans.

    Returns ``(slices (N, C, H, W), labels (N, K), (), {})``.

    Args:
        slices: slices per step; all valid ones when the batch has fewer.
        image_key: key of the (B, S, C, H, W) images.
        mask_key: key of the (B, S) bool mask of real slices.
        label_key: key of the (B, S, K) slice labels.
        generator: random generator; the global one (seeded by ``set_determinism``) if ``None``.
    """

    def __init__(
        self,
        slices: int = 64,
        image_key: str = "image",
        mask_key: str = "mask",
        label_key: str = "slice_labels",
        generator: torch.Generator | None = None,
    ) -> None:
        if slices < 1:
            raise ValueError(f"slices must be at least 1, got {slices}")
        self.slices = slices
        self.image_key = image_key
        self.mask_key = mask_key
        self.label_key = label_key
        self.generator = generator

    def __call__(
        self,
        batchdata: Mapping[str, Any],
        device: str | torch.device | None = None,
        non_blocking: bool = False,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor, tuple, dict]:
        """Sample the slices and move them to ``device``.

        Args:
            batchdata: a batch from :func:`ichbundles.engines.collate_scans` with slice labels.
            device: target device.
            non_blocking: see ``Tensor.to``.
            kwargs: further ``Tensor.to`` arguments for the images and labels.
        """
        valid = batchdata[self.mask_key].bool().flatten().nonzero().squeeze(1)
        order = torch.randperm(valid.numel(), generator=self.generator)
        chosen = valid[order[: self.slices]]
        images = batchdata[self.image_key].flatten(0, 1)[chosen]
        labels = batchdata[self.label_key].flatten(0, 1)[chosen]
        return (
            images.to(device=device, non_blocking=non_blocking, **kwargs),
            labels.to(device=device, non_blocking=non_blocking, **kwargs),
            (),
            {},
        )
