"""Brain crop: remove the black edges around the head with one box per scan (paper 003)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Transform
from monai.transforms.utils import (
    generate_spatial_bounding_box,
    get_largest_connected_component_mask,
)
from monai.utils import TransformBackends, convert_data_type
from skimage.morphology import disk

__all__ = ["BrainCrop", "BrainCropd", "brain_box"]

Box = tuple[int, int, int, int]


def brain_box(
    image: NdarrayOrTensor,
    threshold: float = 0.0,
    radius: int | None = None,
    margin: int = 0,
    largest_component: bool = True,
) -> Box:
    """
    Compute one brain bounding box ``(y0, y1, x0, x1)`` (ends exclusive) for a whole scan.

    Foreground is ``image > threshold``. The last two dims are (H, W); the first dim of a 3D or
    larger image indexes slices, and any dims between it and (H, W) (e.g. window channels of an
    (S, C, H, W) scan) are united per slice. Each slice's mask is opened with a disk of `radius`
    pixels, which removes thin lines such as the scanner table or headrest and noise specks;
    optionally only the largest connected component of the whole scan (slices stacked, so in
    3D) is kept. The box encloses the union over all slices
    (:py:func:`monai.transforms.utils.generate_spatial_bounding_box`), grown by `margin` pixels
    and clipped to the image.

    Args:
        image: (H, W), (S, H, W) or (S, C, ..., H, W) array or tensor.
        threshold: foreground is strictly above it: 0.0 suits windowed images in [0, 1],
            about -500 suits HU.
        radius: radius of the opening disk in pixels; ``None``:
            ``max(1, round(min(H, W) / 100))``.
        margin: pixels added on every side of the box.
        largest_component: keep only the largest connected component of the scan (3D).

    Returns:
        ``(y0, y1, x0, x1)``; the whole image ``(0, H, 0, W)`` when there is no foreground.
    """
    img = convert_data_type(image, np.ndarray)[0]
    h, w = img.shape[-2:]
    mask = img > threshold
    if mask.ndim > 3:
        mask = mask.reshape(mask.shape[0], -1, h, w).any(axis=1)
    mask = mask.reshape(-1, h, w)
    if radius is None:
        radius = max(1, round(min(h, w) / 100))
    mask = _open_with_disk(mask, radius)
    if largest_component:
        # in 3D, not per slice: near the vertex the head's cross-section can be smaller than the
        # headrest or table beside it, and one such slice would stretch the box over them (two
        # thirds of the project's synthetic scans)
        mask = get_largest_connected_component_mask(mask)
    if not mask.any():
        return 0, h, 0, w
    (y0, x0), (y1, x1) = generate_spatial_bounding_box(mask, margin=margin, allow_smaller=True)
    return int(y0), int(y1), int(x0), int(x1)


def _line(mask: np.ndarray, axis: int, half: int, erode: bool) -> np.ndarray:
    """Erosion (AND) or dilation (OR) of a boolean array by a centred line of ``2 * half + 1``
    pixels along ``axis``, background beyond the edges."""
    out = mask.copy()
    op = np.logical_and if erode else np.logical_or

    def part(start: int | None, stop: int | None) -> tuple[slice, ...]:
        index = [slice(None)] * mask.ndim
        index[axis] = slice(start, stop)
        return tuple(index)

    for k in range(1, half + 1):
        op(out[part(k, None)], mask[part(None, -k)], out=out[part(k, None)])
        op(out[part(None, -k)], mask[part(k, None)], out=out[part(None, -k)])
    if erode and half:  # a neighbour beyond the edge is background
        out[part(None, half)] = False
        out[part(-half, None)] = False
    return out


def _open_with_disk(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary opening of each (H, W) plane of an (S, H, W) mask with a disk of ``radius``.

    The disk is skimage's exact decomposition into crosses; a cross is the union of a row and a
    column, so eroding or dilating by it is the AND or OR of a row and a column operation on
    shifted views. That gives scipy's binary erosion then dilation (background beyond the edges)
    three to four times faster than ``ndimage.binary_erosion`` with the cross footprints, whose
    generic neighbourhood loop took 0.7 s of the 1.3 s preprocessing of a 40 x 512 x 512 series.
    """
    crosses = []
    for footprint, repeats in disk(radius, decomposition="crosses"):
        h, w = footprint.shape
        cross = np.zeros_like(footprint)
        cross[h // 2, :] = cross[:, w // 2] = 1
        if not np.array_equal(footprint, cross):  # skimage's decomposition changed
            raise RuntimeError(f"disk({radius}) decomposition holds a non-cross footprint")
        crosses.append((h // 2, w // 2, repeats))
    out = np.asarray(mask, dtype=bool)
    for erode, combine in ((True, np.logical_and), (False, np.logical_or)):
        for half_h, half_w, repeats in crosses:
            for _ in range(repeats):
                out = combine(_line(out, -1, half_w, erode), _line(out, -2, half_h, erode))
    return out


def _crop(img: NdarrayOrTensor, box: Box) -> NdarrayOrTensor:
    # plain slicing: MONAI's SpatialCrop would treat the leading (slice, channel) dims as spatial
    y0, y1, x0, x1 = box
    return img[..., y0:y1, x0:x1]


class BrainCrop(Transform):
    """
    Crop the last two (H, W) dims of a CT slice or scan to the brain, with one box for all
    slices and channels so that the slices stay aligned (black-edge removal of paper 003).

    The box comes from :py:func:`ichbundles.transforms.brain_box` (threshold, morphological
    opening, largest component, union over slices). An image without foreground is returned
    unchanged. The output has the input's type (numpy array, torch tensor or MetaTensor);
    MetaTensor metadata is passed through unchanged.

    Args:
        threshold: foreground is strictly above it: 0.0 suits windowed images in [0, 1],
            about -500 suits HU.
        radius: radius of the opening disk in pixels; ``None``:
            ``max(1, round(min(H, W) / 100))``.
        margin: pixels added on every side of the box.
        largest_component: keep only the largest connected component of the scan (3D).
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        threshold: float = 0.0,
        radius: int | None = None,
        margin: int = 0,
        largest_component: bool = True,
    ) -> None:
        self.threshold = threshold
        self.radius = radius
        self.margin = margin
        self.largest_component = largest_component

    def compute_box(self, img: NdarrayOrTensor) -> Box:
        """Return the brain box ``(y0, y1, x0, x1)`` of `img` with this transform's settings."""
        return brain_box(img, self.threshold, self.radius, self.margin, self.largest_component)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """Crop `img` of shape (..., H, W) to its brain box."""
        return _crop(img, self.compute_box(img))


class BrainCropd(MapTransform):
    """
    Dictionary-based version of :py:class:`ichbundles.transforms.BrainCrop`.

    Like :py:class:`monai.transforms.CropForegroundd`, the box is computed from `source_key`
    and applied to every item in `keys`. The box ``(y0, y1, x0, x1)`` is stored as
    ``d[f"{key}_crop_box"]`` for each cropped key, so that outputs can be mapped back to the
    uncropped image.

    Args:
        keys: keys of the corresponding items to be cropped.
            See also: monai.transforms.MapTransform
        source_key: key of the image the box is computed from.
        threshold: foreground is strictly above it: 0.0 suits windowed images in [0, 1],
            about -500 suits HU.
        radius: radius of the opening disk in pixels; ``None``:
            ``max(1, round(min(H, W) / 100))``.
        margin: pixels added on every side of the box.
        largest_component: keep only the largest connected component of the scan (3D).
        allow_missing_keys: don't raise exception if key is missing.
    """

    backend = BrainCrop.backend

    def __init__(
        self,
        keys: KeysCollection,
        source_key: str,
        threshold: float = 0.0,
        radius: int | None = None,
        margin: int = 0,
        largest_component: bool = True,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.source_key = source_key
        self.cropper = BrainCrop(threshold, radius, margin, largest_component)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        box = self.cropper.compute_box(d[self.source_key])
        for key in self.key_iterator(d):
            d[key] = _crop(d[key], box)
            d[f"{key}_crop_box"] = box
        return d
