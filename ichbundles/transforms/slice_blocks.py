"""Blocks of adjacent slices cut from a scan: paper 001 samples every slice with its neighbours."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, RandomizableTransform, Transform
from monai.utils import TransformBackends

from ichbundles.constants import ADJACENT_CONTEXT

__all__ = ["RandSliceBlocksd", "SliceBlock"]


class SliceBlock(Transform):
    """The block of ``2 * context + 1`` slices centred on one slice, edges replicated.

    A neighbour beyond the first or last slice is that slice again, as paper 001 pads its
    blocks (the index rule of :func:`ichbundles.networks.axial_block_index`).

    Args:
        context: slices on each side (3: blocks of 7).
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, context: int = ADJACENT_CONTEXT) -> None:
        if context < 0:
            raise ValueError(f"context must be non-negative, got {context}")
        self.context = context

    def __call__(
        self, img: NdarrayOrTensor | Sequence[Any], centre: int
    ) -> NdarrayOrTensor | list[Any]:
        """Cut the block around ``centre``.

        Args:
            img: slices first: images ``(S, C, H, W)``, labels ``(S, K)`` or a list of ``S``
                per-slice values (SOP Instance UIDs).
            centre: index of the middle slice, in ``[0, S)``.

        Returns:
            ``(2 * context + 1, ...)`` of the same type (a list for a list or tuple).
        """
        slices = len(img)
        if not 0 <= centre < slices:
            raise ValueError(f"centre {centre} is outside the {slices} slices")
        index = np.clip(np.arange(centre - self.context, centre + self.context + 1), 0, slices - 1)
        if isinstance(img, torch.Tensor):
            return img[torch.as_tensor(index, device=img.device)]
        if isinstance(img, list | tuple):
            return [img[i] for i in index]
        return img[index]


class RandSliceBlocksd(RandomizableTransform, MapTransform):
    """Cut ``num_samples`` blocks of adjacent slices at random centres from a scan.

    The same centres apply to every key (images and per-slice labels), so each block keeps its
    slices' labels. Returns a list of dictionaries, one per block, with the other keys copied;
    :func:`ichbundles.engines.collate_scans` flattens such lists. Cutting blocks before the
    augmentation means only the slices that are trained on are augmented, and a batch of 16
    blocks can come from 16 scans, as paper 001 draws slices from the whole training set.

    With ``positive_fraction`` above 0, that share of the blocks (on average) is centred on a
    slice whose label in ``label_key``'s ``positive_class`` column is positive, when the scan has
    one, as MONAI's ``RandCropByPosNegLabeld`` balances its crops: hemorrhage covers a few
    slices of a scan, small bleeds one or two, and uniform centres rarely land on them.

    Args:
        keys: keys of per-slice values to cut: ``(S, ...)`` arrays (images, ``slice_labels``) or
            lists of ``S`` values (``sop_instance_uids``), so that nothing per slice is left
            that no longer matches the block.
        num_samples: blocks per scan.
        context: slices on each side of the centre (3: blocks of 7).
        positive_fraction: probability, per block, of a centre drawn among the positive slices
            (0: uniform centres, as paper 001).
        label_key: the ``(S, K)`` per-slice labels that define positive slices; needed when
            ``positive_fraction`` is above 0.
        positive_class: the label column that defines a positive slice (-1: "any").
        allow_missing_keys: don't raise exception if key is missing.
    """

    backend = SliceBlock.backend

    def __init__(
        self,
        keys: KeysCollection,
        num_samples: int = 1,
        context: int = ADJACENT_CONTEXT,
        positive_fraction: float = 0.0,
        label_key: str | None = None,
        positive_class: int = -1,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob=1.0)
        if num_samples < 1:
            raise ValueError(f"num_samples must be at least 1, got {num_samples}")
        if not 0.0 <= positive_fraction <= 1.0:
            raise ValueError(f"positive_fraction must be in [0, 1], got {positive_fraction}")
        if positive_fraction > 0 and label_key is None:
            raise ValueError("positive_fraction above 0 needs label_key")
        self.num_samples = num_samples
        self.positive_fraction = positive_fraction
        self.label_key = label_key
        self.positive_class = positive_class
        self.block = SliceBlock(context)
        self._centres: list[int] = []

    def randomize(self, slices: int, positives: Sequence[int] = ()) -> None:
        """Draw ``num_samples`` centres among ``slices`` slices (with replacement).

        Args:
            slices: the scan's slice count.
            positives: indices of its positive slices; each centre is one of them with
                probability ``positive_fraction``.
        """
        uniform = self.R.randint(0, slices, size=self.num_samples)
        if self.positive_fraction == 0 or len(positives) == 0:
            self._centres = [int(c) for c in uniform]
            return
        on_positive = self.R.random_sample(self.num_samples) < self.positive_fraction
        chosen = self.R.choice(np.asarray(positives), size=self.num_samples)
        self._centres = [int(c) for c in np.where(on_positive, chosen, uniform)]

    def _positive_slices(self, data: Mapping[Hashable, Any]) -> list[int]:
        if self.positive_fraction == 0 or self.label_key not in data:
            return []
        labels = np.asarray(data[self.label_key], dtype=np.float32)[:, self.positive_class]
        # unknown labels (NaN) are not positive
        return np.flatnonzero(np.nan_to_num(labels) > 0.5).tolist()

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> list[dict]:
        """Cut the blocks of one scan.

        Returns:
            ``num_samples`` dictionaries, each with the keys cut to one block and
            ``block_centre``, the index of its middle slice in the scan.
        """
        d = dict(data)
        lengths = {len(d[key]) for key in self.key_iterator(d)}
        if len(lengths) != 1:
            raise ValueError(f"keys {list(self.keys)} have different slice counts: {lengths}")
        self.randomize(lengths.pop(), self._positive_slices(d))
        blocks = []
        for centre in self._centres:
            block = dict(d)
            for key in self.key_iterator(d):
                block[key] = self.block(d[key], centre)
            block["block_centre"] = centre
            blocks.append(block)
        return blocks
