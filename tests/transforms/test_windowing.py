from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from ichbundles.constants import WINDOW_PRESETS
from ichbundles.transforms import CTWindow, CTWindowd

PRESETS = sorted(WINDOW_PRESETS)
ARRAY_TYPES = [np.asarray, torch.as_tensor]


def edge_values(level: float, width: float) -> np.ndarray:
    """HU values at: below the window, lower edge, centre, upper edge, above the window."""
    return np.array([level - width, level - width / 2, level, level + width / 2, level + width])


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("to_type", ARRAY_TYPES)
def test_preset_edges_centre_and_clipping(preset, to_type):
    windows = WINDOW_PRESETS[preset]
    # row c of the (C, 5) image holds the probe values of window c; W = 5, H = C
    hu = np.stack([edge_values(level, width) for level, width in windows]).astype(np.float32)
    out = np.asarray(CTWindow(preset)(to_type(hu)))
    assert out.shape == (len(windows), len(windows), 5)
    for c in range(len(windows)):
        np.testing.assert_allclose(out[c, c], [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-6)


def test_explicit_pairs_and_intermediate_value():
    out = CTWindow([(0, 100), (50, 20)])(np.array([[25.0]]))
    np.testing.assert_allclose(out[:, 0, 0], [0.75, 0.0])


@pytest.mark.parametrize("shape", [(8, 6), (4, 8, 6), (2, 4, 8, 6)])
@pytest.mark.parametrize("to_type", ARRAY_TYPES)
def test_shape_dtype_and_type(shape, to_type):
    img = to_type(np.random.default_rng(0).integers(-1024, 3000, shape).astype(np.int16))
    out = CTWindow("att_mil")(img)
    assert type(out) is type(img)
    assert out.shape == (*shape[:-2], 3, *shape[-2:])
    assert str(out.dtype).endswith("float32")
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_metatensor_stays_metatensor():
    out = CTWindow("alis")(MetaTensor(torch.zeros(4, 8, 6)))
    assert isinstance(out, MetaTensor)
    assert out.shape == (4, 3, 8, 6)


def test_channels_follow_window_order():
    hu = np.full((2, 2), 40.0)
    # 40 HU is the centre of the brain window and near the bottom of the bone window
    np.testing.assert_allclose(CTWindow("adjacent")(hu)[:, 0, 0], [0.5, 0.5 - 35 / 215, 840 / 2800])


def test_dict_variant():
    hu = np.full((3, 4, 4), 40.0, dtype=np.float32)
    data = {"image": hu, "label": np.array([1])}
    out = CTWindowd(keys="image", windows="att_mil")(data)
    np.testing.assert_allclose(out["image"], CTWindow("att_mil")(hu))
    assert out["label"] is data["label"]
    assert data["image"] is hu  # input dict not modified
    missing_ok = CTWindowd(keys=["image", "other"], allow_missing_keys=True)(data)
    assert missing_ok["image"].shape == (3, 3, 4, 4)
    assert "other" not in missing_ok
    with pytest.raises(KeyError):
        CTWindowd(keys="other")(data)


@pytest.mark.parametrize(
    "windows, match",
    [
        ("lung", re.escape("['adjacent', 'alis', 'att_mil']")),
        ([(40, 0)], "positive"),
        ([(40, -80)], "positive"),
        ([], "At least one"),
    ],
)
def test_bad_windows_raise(windows, match):
    with pytest.raises(ValueError, match=match):
        CTWindow(windows)


@pytest.mark.parametrize("to_type", ARRAY_TYPES)
def test_nan_raises(to_type):
    hu = np.zeros((4, 4), dtype=np.float32)
    hu[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        CTWindow()(to_type(hu))


@pytest.mark.parametrize("preset", sorted(WINDOW_PRESETS))
def test_matches_monai_scale_intensity_range(preset):
    """Each channel equals MONAI's ScaleIntensityRange(L - W/2, L + W/2, 0, 1, clip=True)."""
    from monai.transforms import ScaleIntensityRange

    hu = np.random.default_rng(0).uniform(-1100, 3000, size=(3, 16, 16)).astype(np.float32)
    out = CTWindow(preset)(hu)
    for channel, (level, width) in enumerate(WINDOW_PRESETS[preset]):
        reference = ScaleIntensityRange(level - width / 2, level + width / 2, 0.0, 1.0, clip=True)
        np.testing.assert_allclose(out[:, channel], np.asarray(reference(hu)), atol=1e-6)
