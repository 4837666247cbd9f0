"""Windows of consecutive slices: bound the length of the scans a sequence model trains on."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, RandomizableTransform, Transform
from monai.utils import TransformBackends

__all__ = ["RandSliceWindowd", "SliceWindow"]


class SliceWindow(Transform):
    """The ``length`` consecutive slices from ``start`` on (fewer at the end of the scan).

    Args:
        length: slices in the window.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, length: int) -> None:
        if length < 1:
            raise ValueError(f"length must be at least 1, got {length}")
        self.length = length

    def __call__(
        self, img: NdarrayOrTensor | Sequence[Any], start: int
    ) -> NdarrayOrTensor | list[Any]:
        """Cut the window.

        Args:
            img: slices first: images ``(S, C, H, W)``, labels ``(S, K)`` or a list of ``S``
                per-slice values.
            start: index of the first slice, in ``[0, S)``.

        Returns:
            ``(min(length, S - start), ...)`` of the same type (a list for a list or tuple).
        """
        if not 0 <= start < len(img):
            raise ValueError(f"start {start} is outside the {len(img)} slices")
        window = img[start : start + self.length]
        return list(window) if isinstance(img, tuple) else window


class RandSliceWindowd(RandomizableTransform, MapTransform):
    """Keep a random window of at most ``max_slices`` consecutive slices of a scan.

    Thin-slice series have 5-8 times the slices of thick ones: in a training batch of whole
    scans one of them can take more memory and time than the rest together. A window bounds
    both, keeps the slices' order (the sequence model still sees neighbours) and, drawn anew
    each epoch, shows every part of the scan over the epochs. Scans with at most
    ``max_slices`` slices pass unchanged. The same window applies to every key.

    Args:
        keys: keys of per-slice values: ``(S, ...)`` arrays (images, ``slice_labels``) or lists
            of ``S`` values (``sop_instance_uids``).
        max_slices: the longest window kept.
        allow_missing_keys: don't raise exception if key is missing.
    """

    backend = SliceWindow.backend

    def __init__(
        self, keys: KeysCollection, max_slices: int, allow_missing_keys: bool = False
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob=1.0)
        self.window = SliceWindow(max_slices)
        self._start = 0

    def randomize(self, slices: int) -> None:
        """Draw the first slice of the window among the ``slices - max_slices + 1`` possible."""
        self._start = int(self.R.randint(0, max(1, slices - self.window.length + 1)))

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        lengths = {len(d[key]) for key in self.key_iterator(d)}
        if len(lengths) > 1:
            raise ValueError(f"keys {list(self.keys)} have different slice counts: {lengths}")
        if not lengths or (slices := lengths.pop()) <= self.window.length:
            return d
        self.randomize(slices)
        for key in self.key_iterator(d):
            d[key] = self.window(d[key], self._start)
        return d
