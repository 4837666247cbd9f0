"""Scan-consistent augmentation and CutMix for scan batches with per-slice labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import (
    Compose,
    RandAffine,
    RandFlip,
    RandGaussianNoised,
    RandGridDistortion,
    RandRotate,
    RandZoom,
    Resize,
)
from monai.transforms.transform import RandomizableTrait

from ichbundles.transforms.augment import (
    OpticalDistortion,
    RandCropResize,
    RandCutMixScans,
    RandCutMixScansd,
    RandOpticalDistortion,
    RandScanSpatial,
    RandScanSpatiald,
)

SPATIAL = {
    "flip": lambda: RandFlip(prob=1.0, spatial_axis=1),
    "rotate": lambda: RandRotate(range_x=np.pi / 6, prob=1.0, padding_mode="zeros"),
    "affine": lambda: RandAffine(prob=1.0, rotate_range=0.5, translate_range=(3, 3)),
    "grid": lambda: RandGridDistortion(num_cells=4, prob=1.0, distort_limit=0.2),
    "zoom": lambda: RandZoom(prob=1.0, min_zoom=0.8, max_zoom=1.2, keep_size=True),
    "crop_resize": lambda: RandCropResize(prob=1.0, scale_range=(0.6, 0.9)),
    "optical": lambda: RandOpticalDistortion(prob=1.0, distort_limit=0.3),
}


def identical_slices(n_slices: int = 4, channels: int = 3, size: int = 24) -> torch.Tensor:
    """A scan whose slices are one random (C, H, W) image, repeated."""
    image = torch.rand(1, channels, size, size, generator=torch.Generator().manual_seed(0))
    return image.repeat(n_slices, 1, 1, 1)


@pytest.mark.parametrize("name", sorted(SPATIAL))
def test_every_slice_gets_the_same_geometry(name):
    scan = identical_slices()
    out = RandScanSpatial(SPATIAL[name]()).set_random_state(7)(scan)
    assert out.shape == scan.shape
    assert not torch.allclose(out, scan)  # it did transform
    torch.testing.assert_close(out, out[:1].expand_as(out), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", sorted(SPATIAL))
def test_seeds_reproduce_and_differ(name):
    scan = torch.rand(3, 2, 20, 20, generator=torch.Generator().manual_seed(1))
    first = RandScanSpatial(SPATIAL[name]()).set_random_state(3)(scan)
    again = RandScanSpatial(SPATIAL[name]()).set_random_state(3)(scan)
    other = RandScanSpatial(SPATIAL[name]()).set_random_state(4)(scan)
    torch.testing.assert_close(first, again)
    if name != "flip":  # a flip has one outcome
        assert not torch.allclose(first, other)


def test_flip_is_exact_and_keeps_type():
    scan = torch.rand(3, 2, 6, 5, generator=torch.Generator().manual_seed(2))
    out = RandScanSpatial(RandFlip(prob=1.0, spatial_axis=1))(scan.numpy())
    assert isinstance(out, np.ndarray) and out.shape == (3, 2, 6, 5)
    np.testing.assert_array_equal(out, scan.flip(-1).numpy())
    meta = MetaTensor(scan, meta={"series": "1.2.3"})
    out = RandScanSpatial(RandFlip(prob=1.0, spatial_axis=0))(meta)
    assert isinstance(out, MetaTensor) and out.meta["series"] == "1.2.3"
    torch.testing.assert_close(out.as_tensor(), scan.flip(-2))


@pytest.mark.parametrize("shape", [(5, 3, 16, 12), (4, 16, 16), (1, 1, 8, 8)])
def test_rotation_preserves_shape(shape):
    scan = torch.rand(shape)
    out = RandScanSpatial(RandRotate(range_x=np.pi / 6, prob=1.0))(scan)
    assert out.shape == scan.shape and out.dtype == torch.float32


def test_dict_version_shares_one_draw_across_keys():
    scan = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    transform = RandScanSpatiald(["image", "copy"], RandRotate(range_x=np.pi / 6, prob=1.0))
    out = transform.set_random_state(0)({"image": scan, "copy": scan[:1].clone(), "id": "x"})
    assert out["id"] == "x" and out["image"].shape == scan.shape
    torch.testing.assert_close(out["copy"][0], out["image"][0])
    array = RandScanSpatial(RandRotate(range_x=np.pi / 6, prob=1.0)).set_random_state(0)
    torch.testing.assert_close(array(scan), out["image"])
    with pytest.raises(ValueError, match="share"):
        transform({"image": scan, "copy": torch.rand(3, 3, 8, 8)})


def test_compose_seeds_wrappers_and_they_are_random_for_caching():
    def pipeline():
        return Compose(
            [
                RandScanSpatiald("image", RandCropResize(prob=1.0)),
                RandScanSpatiald("image", RandRotate(range_x=np.pi / 6, prob=1.0)),
                RandGaussianNoised("image", prob=1.0, std=0.05),
            ]
        ).set_random_state(11)

    scan = identical_slices()
    first, again = pipeline()({"image": scan}), pipeline()({"image": scan})
    torch.testing.assert_close(first["image"], again["image"])
    assert all(isinstance(t, RandomizableTrait) for t in pipeline().transforms)


def test_crop_resize_is_resize_of_the_drawn_box():
    image = torch.rand(2, 20, 16, generator=torch.Generator().manual_seed(3))
    transform = RandCropResize(prob=1.0, scale_range=(0.5, 0.5)).set_random_state(0)
    out = transform(image)
    (y0, x0), (y1, x1) = transform._roi_start, transform._roi_end
    assert (y1 - y0, x1 - x0) == (10, 8)
    expected = Resize((20, 16), mode="bilinear")(image[:, y0:y1, x0:x1])
    torch.testing.assert_close(out, torch.as_tensor(expected))
    assert RandCropResize(prob=0.0)(image) is image
    with pytest.raises(ValueError, match="scale_range"):
        RandCropResize(scale_range=(0.0, 1.0))


def test_optical_distortion():
    image = torch.zeros(1, 33, 33)
    image[:, 8:25, 8:25] = 1.0  # a centred square
    torch.testing.assert_close(OpticalDistortion(0.0)(image), image)
    shrunk, grown = OpticalDistortion(0.3)(image), OpticalDistortion(-0.3)(image)
    assert shrunk.sum() < image.sum() < grown.sum()
    torch.testing.assert_close(shrunk, shrunk.flip(-1))  # radial: symmetric
    transform = RandOpticalDistortion(prob=1.0, distort_limit=0.2).set_random_state(0)
    transform(image)
    assert -0.2 <= transform._k <= 0.2
    assert RandOpticalDistortion(prob=0.0)(image) is image


# ---------------------------------------------------------------------------------------------
# CutMix


class FixedDraws:
    """Stands in for the transform's RandomState: a known lambda, box centre and partners."""

    def __init__(self, lam: float, centre: tuple[int, int], perm: list[int]) -> None:
        self.lam, self.centre, self.perm = lam, list(centre), perm

    def rand(self) -> float:
        return 0.0

    def beta(self, a: float, b: float) -> float:
        return self.lam

    def randint(self, high: int) -> int:
        return self.centre.pop(0)

    def permutation(self, n: int) -> np.ndarray:
        return np.asarray(self.perm)


def scan_batch(lengths: tuple[int, ...], size: int = 8, channels: int = 2) -> dict:
    b, s_max = len(lengths), max(lengths)
    image = torch.zeros(b, s_max, channels, size, size)
    labels = torch.full((b, s_max, 6), -1.0)
    mask = torch.zeros(b, s_max, dtype=torch.bool)
    for i, n in enumerate(lengths):
        image[i, :n] = torch.arange(1, n + 1, dtype=torch.float32)[:, None, None, None] + 10 * i
        labels[i, :n] = torch.tensor([[float((s + i) % 2)] * 5 + [1.0] for s in range(n)])
        mask[i, :n] = True
    return {"image": image, "slice_labels": labels, "mask": mask}


@pytest.mark.parametrize(
    ("centre", "box", "weight"),
    [
        ((4, 4), (2, 6, 2, 6), 1 - 16 / 64),  # a 4 x 4 box inside the 8 x 8 plane
        ((0, 7), (0, 2, 5, 8), 1 - 6 / 64),  # clipped at the top and right edges
    ],
)
def test_cutmix_known_box_labels_and_pixels(centre, box, weight):
    batch = scan_batch((3, 3))
    mixer = RandCutMixScans(alpha=1.0)
    mixer.R = FixedDraws(lam=0.75, centre=centre, perm=[1, 0])  # sqrt(1 - 0.75) = 1/2 side
    image, labels = mixer(batch["image"], batch["mask"], batch["slice_labels"])
    assert mixer._box == box and mixer._weight == pytest.approx(weight)
    own, partner = batch["slice_labels"], batch["slice_labels"][[1, 0]]
    torch.testing.assert_close(labels, weight * own + (1 - weight) * partner)
    y0, y1, x0, x1 = box
    inside = torch.zeros(8, 8, dtype=torch.bool)
    inside[y0:y1, x0:x1] = True
    torch.testing.assert_close(image[..., inside], batch["image"][[1, 0]][..., inside])
    torch.testing.assert_close(image[..., ~inside], batch["image"][..., ~inside])


def test_cutmix_shorter_partner_and_padding():
    batch = scan_batch((4, 2))
    mixer = RandCutMixScans()
    mixer.R = FixedDraws(lam=0.75, centre=(4, 4), perm=[1, 0])
    image, labels = mixer(batch["image"], batch["mask"], batch["slice_labels"])
    w = 0.75
    # slices 0-1 are real in both scans: mixed
    expected = w * batch["slice_labels"][0, :2] + (1 - w) * batch["slice_labels"][1, :2]
    torch.testing.assert_close(labels[0, :2], expected)
    # scan 0's slices 2-3 have no partner slice: unchanged pixels and labels
    torch.testing.assert_close(labels[0, 2:], batch["slice_labels"][0, 2:])
    torch.testing.assert_close(image[0, 2:], batch["image"][0, 2:])
    # scan 1's padded rows stay padding
    assert torch.all(labels[1, 2:] == -1) and torch.all(image[1, 2:] == 0)
    assert torch.equal(image[1, :2, :, 2:6, 2:6], batch["image"][0, :2, :, 2:6, 2:6])


def test_cutmix_with_self_as_partner_changes_nothing():
    batch = scan_batch((3, 2))
    mixer = RandCutMixScans()
    mixer.R = FixedDraws(lam=0.5, centre=(3, 3), perm=[0, 1])
    image, labels = mixer(batch["image"], batch["mask"], batch["slice_labels"])
    torch.testing.assert_close(image, batch["image"])
    torch.testing.assert_close(labels, batch["slice_labels"])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_cutmix_dict_seeded_reproducible_and_consistent(seed):
    batch = scan_batch((3, 1, 2, 3), size=16)
    transform = RandCutMixScansd(alpha=1.0).set_random_state(seed)
    first = transform(batch)
    again = RandCutMixScansd(alpha=1.0).set_random_state(seed)(batch)
    for key in ("image", "slice_labels", "mask"):
        torch.testing.assert_close(first[key], again[key])
    assert torch.equal(first["mask"], batch["mask"])
    assert torch.all(first["slice_labels"][~batch["mask"]] == -1)
    assert torch.all(first["image"][~batch["mask"]] == 0)
    # every slice real in both scans mixes its labels by the share of pixels from each
    partners, w = transform.mixer._perm, transform.mixer._weight
    both = batch["mask"] & batch["mask"][partners]
    mixed = w * batch["slice_labels"] + (1 - w) * batch["slice_labels"][partners]
    torch.testing.assert_close(first["slice_labels"][both], mixed[both])
    pasted = (first["image"] != batch["image"]).any(dim=2)  # (B, S, H, W)
    own_pixels = 1 - pasted.flatten(2).float().mean(dim=2)
    differ = both & (batch["image"] != batch["image"][partners]).flatten(2).all(dim=2)
    torch.testing.assert_close(own_pixels[differ], torch.full_like(own_pixels[differ], w))


def test_cutmix_prob_zero_and_missing_labels():
    batch = scan_batch((2, 3))
    out = RandCutMixScansd(prob=0.0)(batch)
    assert all(out[k] is batch[k] for k in batch)
    image = RandCutMixScans().set_random_state(0)(batch["image"], batch["mask"])
    assert image.shape == batch["image"].shape
    out = RandCutMixScansd(label_keys="scan_labels", allow_missing_keys=True)(batch)
    assert "scan_labels" not in out
    with pytest.raises(ValueError, match="alpha"):
        RandCutMixScans(alpha=0.0)
    with pytest.raises(ValueError, match=r"\(B, S, C, H, W\)"):
        RandCutMixScans()(batch["image"][0], batch["mask"][0])
