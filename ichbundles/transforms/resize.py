"""Resize the (H, W) plane of slices, scans and windowed scans."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Resize, Transform
from monai.utils import InterpolateMode, TransformBackends, convert_to_dst_type, convert_to_tensor

__all__ = ["ResizeSlices", "ResizeSlicesd"]


class ResizeSlices(Transform):
    """
    Resize the last two (H, W) dims of an (..., H, W) image, e.g. a scan (S, H, W) or a
    windowed scan (S, C, H, W).

    The leading dims are flattened into the channel dim of :py:class:`monai.transforms.Resize`,
    which does the resizing, and restored afterwards. The output is float32, like ``Resize``'s,
    of the input's type (numpy array, torch tensor or MetaTensor); MetaTensor metadata is passed
    through unchanged (``Resize``'s affine update would treat the flattened slices as channels
    of one 2D image).

    Args:
        spatial_size: output (h, w).
        mode: interpolation mode of :py:class:`monai.transforms.Resize`: ``"area"`` (default,
            suits downsampling), ``"bilinear"``, ``"bicubic"``, ``"nearest"``, ``"nearest-exact"``.
        align_corners: see :py:class:`monai.transforms.Resize`.
        anti_aliasing: see :py:class:`monai.transforms.Resize`.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        spatial_size: Sequence[int],
        mode: str = InterpolateMode.AREA,
        align_corners: bool | None = None,
        anti_aliasing: bool = False,
    ) -> None:
        self.spatial_size = tuple(spatial_size)
        self.resizer = Resize(
            self.spatial_size, mode=mode, align_corners=align_corners, anti_aliasing=anti_aliasing
        )

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """Resize `img` of shape (..., H, W) to (..., h, w)."""
        img_t = convert_to_tensor(img, track_meta=False)
        flat = img_t.reshape(-1, *img_t.shape[-2:])
        out = self.resizer(flat).reshape(*img_t.shape[:-2], *self.spatial_size)
        return convert_to_dst_type(out, img, dtype=out.dtype)[0]


class ResizeSlicesd(MapTransform):
    """
    Dictionary-based wrapper of :py:class:`ichbundles.transforms.ResizeSlices`.

    Args:
        keys: keys of the corresponding items to be transformed.
            See also: monai.transforms.MapTransform
        spatial_size: output (h, w).
        mode: interpolation mode of :py:class:`monai.transforms.Resize`.
        align_corners: see :py:class:`monai.transforms.Resize`.
        anti_aliasing: see :py:class:`monai.transforms.Resize`.
        allow_missing_keys: don't raise exception if key is missing.
    """

    backend = ResizeSlices.backend

    def __init__(
        self,
        keys: KeysCollection,
        spatial_size: Sequence[int],
        mode: str = InterpolateMode.AREA,
        align_corners: bool | None = None,
        anti_aliasing: bool = False,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.resizer = ResizeSlices(spatial_size, mode, align_corners, anti_aliasing)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.resizer(d[key])
        return d
