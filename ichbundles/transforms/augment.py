"""Scan-consistent augmentation: one random geometry for all slices, and CutMix for scans.

The paper's augmentations (paper 002: random crop and resize, flips, rotation 0-30 degrees,
optical and grid distortion, Gaussian noise, CutMix with alpha 1) act on 2D slices, but a
scan (S, C, H, W) must keep its slices aligned, so every slice gets the same random geometry.
:class:`RandScanSpatial` does this for any 2D MONAI transform: it views the scan as one 2D
image with S * C channels, (S * C, H, W), so that the wrapped transform draws its random
parameters once and applies them to every channel, hence to every slice, then restores
(S, C, h, w). Intensity transforms that do not depend on the layout (``RandGaussianNoise(d)``)
can be applied to scans directly.

:class:`RandCropResize` and :class:`RandOpticalDistortion` add the two 2D augmentations that
MONAI lacks. :class:`RandCutMixScans` works on collated batches (B, S, C, H, W) with per-slice
labels, which MONAI's ``CutMix`` mixes incorrectly.

A training pipeline in the paper's spirit::

    Compose([
        RandScanSpatiald("image", RandCropResize(prob=0.5)),
        RandScanSpatiald("image", RandFlip(prob=0.5, spatial_axis=1)),
        RandScanSpatiald("image", RandRotate(range_x=np.pi / 6, prob=0.5, padding_mode="zeros")),
        RandScanSpatiald("image", RandOpticalDistortion(prob=0.3)),
        RandScanSpatiald("image", RandGridDistortion(prob=0.3, padding_mode="zeros")),
        RandGaussianNoised("image", prob=0.3, std=0.02),
    ])

and ``RandCutMixScansd(keys="image", label_keys="slice_labels")`` as the ``batch_transform``
of :class:`ichbundles.engines.PrepareScanBatch`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from math import sqrt

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import (
    MapTransform,
    Randomizable,
    RandomizableTransform,
    Resample,
    Resize,
    SpatialCrop,
    Transform,
)
from monai.transforms.utils import create_grid
from monai.utils import (
    GridSampleMode,
    GridSamplePadMode,
    InterpolateMode,
    TransformBackends,
    convert_to_dst_type,
    convert_to_tensor,
    ensure_tuple,
)

__all__ = [
    "OpticalDistortion",
    "RandCropResize",
    "RandCutMixScans",
    "RandCutMixScansd",
    "RandOpticalDistortion",
    "RandScanSpatial",
    "RandScanSpatiald",
]


def _apply_to_slices(
    transform: Callable[[torch.Tensor], NdarrayOrTensor], images: Sequence[NdarrayOrTensor]
) -> list[NdarrayOrTensor]:
    """Apply `transform` once to the (N, H, W) concatenation of (..., H, W) `images`."""
    tensors = [convert_to_tensor(img, track_meta=False) for img in images]
    plane = tensors[0].shape[-2:]
    if any(t.ndim < 2 or t.shape[-2:] != plane for t in tensors):
        raise ValueError(
            "Images must share their last two (H, W) dims, got "
            f"{[tuple(t.shape) for t in tensors]}."
        )
    flat = torch.cat([t.reshape(-1, *plane) for t in tensors])
    out = convert_to_tensor(transform(flat), track_meta=False)
    pieces = out.split([t.shape[:-2].numel() for t in tensors])
    return [
        convert_to_dst_type(p.reshape(*t.shape[:-2], *p.shape[-2:]), img, dtype=p.dtype)[0]
        for p, t, img in zip(pieces, tensors, images, strict=True)
    ]


class RandScanSpatial(Randomizable, Transform):
    """
    Apply a 2D MONAI transform with one random draw to every slice of a scan.

    The scan (S, C, H, W) (or any (..., H, W)) is reshaped to (S * C, H, W), given to
    `transform` as one multi-channel 2D image, and reshaped back to (S, C, h, w); the same
    flip, rotation, crop or distortion field thus applies to every slice. The output has the
    input's type (numpy array, tensor or MetaTensor) and the wrapped transform's dtype;
    MetaTensor metadata passes through unchanged (the transform is not invertible).

    Args:
        transform: a 2D transform of (channels, H, W) images, e.g. ``RandFlip``, ``RandRotate``,
            ``RandAffine``, ``RandGridDistortion``, :class:`RandCropResize`,
            :class:`RandOpticalDistortion`; seeding this wrapper seeds it.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, transform: Callable[[torch.Tensor], NdarrayOrTensor]) -> None:
        self.transform = transform

    def set_random_state(
        self, seed: int | None = None, state: np.random.RandomState | None = None
    ) -> RandScanSpatial:
        if isinstance(self.transform, Randomizable):
            self.transform.set_random_state(seed, state)
        return self

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """Transform `img` of shape (..., H, W), e.g. a scan (S, C, H, W)."""
        return _apply_to_slices(self.transform, [img])[0]


class RandScanSpatiald(Randomizable, MapTransform):
    """
    Dictionary-based version of :class:`RandScanSpatial`.

    All keys share one random draw: their slices are concatenated into one
    (sum of S * C, H, W) image, so they must share (H, W), and one interpolation mode applies
    to them all.

    Args:
        keys: keys of the corresponding items to be transformed.
            See also: monai.transforms.MapTransform
        transform: a 2D transform of (channels, H, W) images; seeding this wrapper seeds it.
        allow_missing_keys: don't raise exception if key is missing.
    """

    backend = RandScanSpatial.backend

    def __init__(
        self,
        keys: KeysCollection,
        transform: Callable[[torch.Tensor], NdarrayOrTensor],
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.scan_transform = RandScanSpatial(transform)

    def set_random_state(
        self, seed: int | None = None, state: np.random.RandomState | None = None
    ) -> RandScanSpatiald:
        self.scan_transform.set_random_state(seed, state)
        return self

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        keys = list(self.key_iterator(d))
        if keys:
            outputs = _apply_to_slices(self.scan_transform.transform, [d[k] for k in keys])
            d.update(zip(keys, outputs, strict=True))
        return d


class RandCropResize(RandomizableTransform):
    """
    Crop a random box and resize it back to the input's (H, W) (2D "random crop and resize").

    Each side of the box is a fraction of the image side drawn uniformly from `scale_range`
    (independently, so the aspect ratio varies); the box position is uniform. The crop is
    MONAI's ``SpatialCrop`` and the resizing its ``Resize``.

    Args:
        prob: probability of cropping.
        scale_range: (min, max) fraction of each side kept, in (0, 1].
        mode: interpolation mode of ``Resize``.
    """

    backend = [TransformBackends.TORCH]

    def __init__(
        self,
        prob: float = 0.1,
        scale_range: tuple[float, float] = (0.75, 1.0),
        mode: str = InterpolateMode.BILINEAR,
    ) -> None:
        RandomizableTransform.__init__(self, prob)
        if not 0 < scale_range[0] <= scale_range[1] <= 1:
            raise ValueError(f"scale_range must satisfy 0 < min <= max <= 1, got {scale_range}.")
        self.scale_range = tuple(scale_range)
        self.mode = mode
        self._roi_start: list[int] = []
        self._roi_end: list[int] = []

    def randomize(self, data: Sequence[int]) -> None:
        """Draw whether to crop and the box in an image of spatial size `data` (H, W)."""
        super().randomize(None)
        if not self._do_transform:
            return
        sizes = [max(1, round(d * self.R.uniform(*self.scale_range))) for d in data]
        self._roi_start = [
            int(self.R.randint(0, d - s + 1)) for d, s in zip(data, sizes, strict=True)
        ]
        self._roi_end = [start + s for start, s in zip(self._roi_start, sizes, strict=True)]

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        """
        Args:
            img: (C, H, W) image.
            randomize: draw new parameters; ``False`` reuses the last ones.
        """
        img_t = convert_to_tensor(img, track_meta=False)
        if randomize:
            self.randomize(img_t.shape[1:])
        if not self._do_transform:
            return img
        cropped = SpatialCrop(roi_start=self._roi_start, roi_end=self._roi_end)(img_t)
        out = Resize(spatial_size=img_t.shape[1:], mode=self.mode)(cropped)
        return convert_to_dst_type(out, img, dtype=out.dtype)[0]


class OpticalDistortion(Transform):
    """
    Radial (barrel or pincushion) distortion of a 2D image, like albumentations'
    ``OpticalDistortion`` without the centre shift.

    The output pixel at normalised radius ``r`` (1 at the middle of each edge) samples the input
    at ``(1 + k * r**2)`` times its distance from the centre: ``k > 0`` shrinks the content
    towards the centre, ``k < 0`` magnifies it. Sampling is MONAI's ``Resample``.

    Args:
        k: distortion coefficient.
        mode: interpolation mode of ``Resample``.
        padding_mode: value outside the image: ``"zeros"`` (air after windowing), ``"border"``,
            ``"reflection"``.
    """

    backend = [TransformBackends.TORCH]

    def __init__(
        self,
        k: float,
        mode: str = GridSampleMode.BILINEAR,
        padding_mode: str = GridSamplePadMode.ZEROS,
    ) -> None:
        self.k = k
        self.resampler = Resample(mode=mode, padding_mode=padding_mode, dtype=torch.float32)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """Distort `img` of shape (C, H, W); the output is float32."""
        img_t = convert_to_tensor(img, track_meta=False)
        size = img_t.shape[1:]
        grid = create_grid(size, dtype=torch.float32, device=img_t.device, backend="torch")
        half = torch.tensor([max((d - 1) / 2, 1.0) for d in size], device=img_t.device)
        r2 = ((grid[:2] / half[:, None, None]) ** 2).sum(dim=0)
        grid[:2] *= 1 + self.k * r2
        out = convert_to_tensor(self.resampler(img_t, grid), track_meta=False)
        return convert_to_dst_type(out, img, dtype=out.dtype)[0]


class RandOpticalDistortion(RandomizableTransform):
    """
    Random :class:`OpticalDistortion` with ``k`` uniform in `distort_limit`.

    Args:
        prob: probability of distorting.
        distort_limit: range of ``k``; a single number ``x`` means ``(-x, x)``.
        mode: interpolation mode of ``Resample``.
        padding_mode: value outside the image, see :class:`OpticalDistortion`.
    """

    backend = OpticalDistortion.backend

    def __init__(
        self,
        prob: float = 0.1,
        distort_limit: float | tuple[float, float] = 0.1,
        mode: str = GridSampleMode.BILINEAR,
        padding_mode: str = GridSamplePadMode.ZEROS,
    ) -> None:
        RandomizableTransform.__init__(self, prob)
        limits = ensure_tuple(distort_limit)
        self.distort_limit = (-abs(limits[0]), abs(limits[0])) if len(limits) == 1 else limits
        self.mode = mode
        self.padding_mode = padding_mode
        self._k = 0.0

    def randomize(self, data: None = None) -> None:
        super().randomize(None)
        if self._do_transform:
            self._k = float(self.R.uniform(*self.distort_limit))

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        """
        Args:
            img: (C, H, W) image.
            randomize: draw new parameters; ``False`` reuses the last ones.
        """
        if randomize:
            self.randomize()
        if not self._do_transform:
            return img
        return OpticalDistortion(self._k, self.mode, self.padding_mode)(img)


class RandCutMixScans(RandomizableTransform):
    """
    CutMix (Yun et al., ICCV 2019) for batches of whole scans with per-slice labels.

    Each scan ``b`` gets a partner ``perm[b]`` (a random permutation of the batch, so a scan may
    be its own partner). ``lam ~ Beta(alpha, alpha)`` and one box of side ratio
    ``sqrt(1 - lam)`` centred uniformly in the (H, W) plane and clipped to it are drawn per
    batch. For every slice index ``s`` real in both scans (``mask[b, s] and mask[perm[b], s]``,
    slices aligned from the first), the partner's slice ``s`` is pasted into the box, for all
    channels, and the slice labels become ``w * own + (1 - w) * partner`` with
    ``w = 1 - clipped box area / (H * W)``. Slices the partner lacks (it is shorter) and padded
    slices keep their pixels and labels, so padded labels stay negative; the mask is unchanged.

    MONAI's ``CutMix`` would mix (B, S, K) labels as if they were images; this class mixes them
    by the pasted area.

    Args:
        alpha: Beta distribution parameter (1: uniform).
        prob: probability of mixing a batch.
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, alpha: float = 1.0, prob: float = 1.0) -> None:
        RandomizableTransform.__init__(self, prob)
        if alpha <= 0:
            raise ValueError(f"alpha must be positive, got {alpha}.")
        self.alpha = alpha
        self._perm: np.ndarray = np.zeros(0, dtype=np.int64)
        self._box: tuple[int, int, int, int] = (0, 0, 0, 0)
        self._weight = 1.0

    def randomize(self, data: Sequence[int]) -> None:
        """Draw the partners, the box and its weight for a batch of shape `data` (B, H, W)."""
        super().randomize(None)
        if not self._do_transform:
            return
        batch_size, height, width = data
        lam = self.R.beta(self.alpha, self.alpha)
        cut = sqrt(1.0 - lam)
        cut_h, cut_w = int(height * cut), int(width * cut)
        cy, cx = int(self.R.randint(height)), int(self.R.randint(width))
        y0, y1 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
        x0, x1 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
        self._perm = self.R.permutation(batch_size)
        self._box = (y0, y1, x0, x1)
        self._weight = 1.0 - (y1 - y0) * (x1 - x0) / (height * width)

    def _both_real(self, mask: torch.Tensor) -> torch.Tensor:
        mask_t = convert_to_tensor(mask, track_meta=False).bool()
        return mask_t & mask_t[torch.as_tensor(self._perm, device=mask_t.device)]

    def apply(self, image: NdarrayOrTensor, mask: NdarrayOrTensor) -> torch.Tensor:
        """Paste the partners' box into (B, S, C, H, W) `image` with the last drawn parameters."""
        img_t = convert_to_tensor(image, track_meta=False)
        if img_t.ndim != 5:
            raise ValueError(f"Expected a (B, S, C, H, W) batch, got {tuple(img_t.shape)}.")
        y0, y1, x0, x1 = self._box
        both = self._both_real(mask).to(img_t.device)[..., None, None, None]
        out = img_t.clone()
        own = img_t[..., y0:y1, x0:x1]
        partner = img_t[torch.as_tensor(self._perm, device=img_t.device)][..., y0:y1, x0:x1]
        out[..., y0:y1, x0:x1] = torch.where(both, partner, own)
        return out

    def apply_on_labels(self, labels: NdarrayOrTensor, mask: NdarrayOrTensor) -> torch.Tensor:
        """Mix (B, S, K) slice `labels` by the pasted area; the result is floating point."""
        labels_t = convert_to_tensor(labels, track_meta=False)
        if not labels_t.is_floating_point():
            labels_t = labels_t.float()
        partner = labels_t[torch.as_tensor(self._perm, device=labels_t.device)]
        mixed = self._weight * labels_t + (1.0 - self._weight) * partner
        both = self._both_real(mask).to(labels_t.device)[..., None]
        return torch.where(both, mixed, labels_t)

    def __call__(
        self,
        image: NdarrayOrTensor,
        mask: NdarrayOrTensor,
        labels: NdarrayOrTensor | None = None,
        randomize: bool = True,
    ) -> NdarrayOrTensor | tuple[NdarrayOrTensor, NdarrayOrTensor]:
        """
        Args:
            image: (B, S, C, H, W) batch.
            mask: (B, S) bool, True for real slices.
            labels: optional (B, S, K) slice labels.
            randomize: draw new parameters; ``False`` reuses the last ones.

        Returns:
            the mixed image, and the mixed labels when `labels` is given (as MONAI's ``CutMix``).
        """
        if randomize:
            shape = convert_to_tensor(image, track_meta=False).shape
            self.randomize((shape[0], shape[-2], shape[-1]))
        if not self._do_transform:
            return image if labels is None else (image, labels)
        out = convert_to_dst_type(self.apply(image, mask), image)[0]
        if labels is None:
            return out
        return out, self.apply_on_labels(labels, mask)


class RandCutMixScansd(RandomizableTransform, MapTransform):
    """
    Dictionary-based version of :class:`RandCutMixScans` for collated scan batches.

    Args:
        keys: keys of the (B, S, C, H, W) images to mix (all with the same partners and box).
        label_keys: keys of the (B, S, K) slice labels to mix.
        mask_key: key of the (B, S) bool mask of real slices.
        alpha: Beta distribution parameter.
        prob: probability of mixing a batch.
        allow_missing_keys: don't raise exception if key is missing.
    """

    backend = RandCutMixScans.backend

    def __init__(
        self,
        keys: KeysCollection = "image",
        label_keys: KeysCollection | None = "slice_labels",
        mask_key: str = "mask",
        alpha: float = 1.0,
        prob: float = 1.0,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.label_keys = ensure_tuple(label_keys) if label_keys is not None else ()
        self.mask_key = mask_key
        self.mixer = RandCutMixScans(alpha=alpha, prob=1.0)

    def set_random_state(
        self, seed: int | None = None, state: np.random.RandomState | None = None
    ) -> RandCutMixScansd:
        super().set_random_state(seed, state)
        self.mixer.set_random_state(seed, state)
        return self

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        self.randomize(None)
        first_key = self.first_key(d)
        if not self._do_transform or first_key == ():
            return d
        shape = convert_to_tensor(d[first_key], track_meta=False).shape
        self.mixer.randomize((shape[0], shape[-2], shape[-1]))
        mask = d[self.mask_key]
        for key in self.key_iterator(d):
            d[key] = convert_to_dst_type(self.mixer.apply(d[key], mask), d[key])[0]
        for key in self.label_keys:
            if key in d or not self.allow_missing_keys:
                d[key] = self.mixer.apply_on_labels(d[key], mask)
        return d
