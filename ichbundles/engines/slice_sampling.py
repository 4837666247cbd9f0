"""Train a slice encoder on random slices, or blocks of adjacent slices, drawn from batches of
whole scans."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from monai.engines.utils import PrepareBatch

from ichbundles.constants import ADJACENT_CONTEXT
from ichbundles.networks.axial_fusion import axial_block_index

__all__ = ["PrepareBlockBatch", "PrepareSliceBatch"]


class PrepareBlockBatch(PrepareBatch):
    """``prepare_batch`` that turns a batch of scans into blocks of adjacent slices (paper 001).

    Draws up to ``blocks`` centre slices among the valid slices of a
    :func:`ichbundles.engines.collate_scans` batch, at random without replacement, and takes each
    with its ``context`` neighbours on both sides (edge slices replicated,
    :func:`ichbundles.networks.axial_block_index`): paper 001 trains its stage-1 CNN on batches
    of 16 such 7-slice blocks. Every slice keeps its own labels; the CNN classifies single
    slices.

    Returns ``(slices (N * (2 * context + 1), C, H, W), labels (same N, K), (), {})``, the
    slices of one block consecutive and in axial order.

    Args:
        blocks: blocks per step; one per valid slice when the batch has fewer.
        context: neighbours on each side (3: blocks of 7).
        image_key: key of the (B, S, C, H, W) images.
        mask_key: key of the (B, S) bool mask of real slices.
        label_key: key of the (B, S, K) slice labels.
        generator: random generator; the global one (seeded by ``set_determinism``) if ``None``.
    """

    def __init__(
        self,
        blocks: int = 16,
        context: int = ADJACENT_CONTEXT,
        image_key: str = "image",
        mask_key: str = "mask",
        label_key: str = "slice_labels",
        generator: torch.Generator | None = None,
    ) -> None:
        if blocks < 1:
            raise ValueError(f"the number of blocks or slices must be at least 1, got {blocks}")
        self.blocks = blocks
        self.context = context
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
        """Sample the blocks (or slices) and move them to ``device``.

        Args:
            batchdata: a batch from :func:`ichbundles.engines.collate_scans` with slice labels.
            device: target device.
            non_blocking: see ``Tensor.to``.
            kwargs: further ``Tensor.to`` arguments for the images and labels.
        """
        mask = batchdata[self.mask_key].bool()
        index = axial_block_index(mask, self.context)  # (B, S, 2c+1)
        scan, centre = mask.nonzero(as_tuple=True)
        order = torch.randperm(scan.numel(), generator=self.generator)[: self.blocks]
        scan, centre = scan[order], centre[order]
        rows = scan[:, None].expand(-1, index.shape[-1]).flatten()
        slices = index[scan, centre].flatten()
        images = batchdata[self.image_key][rows, slices]
        labels = batchdata[self.label_key][rows, slices]
        return (
            images.to(device=device, non_blocking=non_blocking, **kwargs),
            labels.to(device=device, non_blocking=non_blocking, **kwargs),
            (),
            {},
        )


class PrepareSliceBatch(PrepareBlockBatch):
    """``prepare_batch`` that turns a batch of scans into a batch of single slices.

    Draws up to ``slices`` of the valid slices of a :func:`ichbundles.engines.collate_scans`
    batch at random, without replacement, so one step sees slices from several scans: far less
    correlated than the slices of one or two whole scans, which is what lets a randomly
    initialised encoder learn in a few hundred steps. Scan-level augmentation and the
    preprocessing cache work unchanged, since the data loader still yields scans. It is
    :class:`PrepareBlockBatch` with blocks of one slice.

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
        super().__init__(slices, 0, image_key, mask_key, label_key, generator)
