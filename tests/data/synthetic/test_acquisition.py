from __future__ import annotations

import json

import numpy as np
import pytest

from ichbundles.data.synthetic import generate_dataset
from ichbundles.data.synthetic.acquisition import (
    THICK_SPACINGS,
    THIN_SPACINGS,
    Acquisition,
    sample_acquisition,
    sharpen,
)
from ichbundles.data.synthetic.scan import make_scan


@pytest.mark.parametrize("thin", [False, True])
def test_acquisitions_vary_within_their_ranges(thin):
    drawn = [sample_acquisition(np.random.default_rng(seed), thin) for seed in range(200)]
    spacings = {a.spacing for a in drawn}
    assert spacings == set(THIN_SPACINGS if thin else THICK_SPACINGS)
    assert {a.kernel for a in drawn} == {"soft", "standard", "sharp"}
    offsets = [a.hu_offset for a in drawn]
    assert -5.0 <= min(offsets) < -3.0 and 3.0 < max(offsets) <= 5.0
    for a in drawn:
        planes = np.asarray(a.slab_offsets)
        assert len(planes) % 2 == 1 and planes[len(planes) // 2] == pytest.approx(0.0)
        # the planes sample the slab evenly, at most 1.7 mm apart
        assert planes.max() - planes.min() < a.spacing
        assert len(planes) == 1 or np.diff(planes).max() <= 1.7
        assert (a.sharpening == 0.0) == (a.kernel == "soft")
        assert a.noise_scale >= 1.0 if a.spacing <= 5.0 else a.noise_scale > 0


def _acquisition(sharpening: float) -> Acquisition:
    return Acquisition(5.0, (0.0,), "sharp", sharpening, 1.0, 1.0, 0.0)


def test_sharp_kernels_overshoot_at_edges_and_soft_ones_do_not():
    step = np.zeros((1, 32, 32), dtype=np.float32)
    step[:, :, 16:] = 100.0
    soft = sharpen(step.copy(), _acquisition(0.0), pixel_mm=1.0)
    np.testing.assert_array_equal(soft, step)
    sharp = sharpen(step.copy(), _acquisition(1.0), pixel_mm=1.0)
    assert sharp.max() > 110.0 and sharp.min() < -10.0  # bright rim and dark halo
    np.testing.assert_allclose(sharp[:, :, :8], 0.0, atol=1e-3)  # flat regions unchanged


def test_scans_carry_their_acquisition_and_calibration_offset():
    scan = make_scan(7, 64)
    acquisition = scan.acquisition
    assert scan.spacing[0] == acquisition.spacing
    outside = scan.hu[:, :3, :3]  # air in the image corners, offset by the calibration
    assert abs(float(np.median(outside)) - (-1000.0 + acquisition.hu_offset)) < 3.0


def test_thin_fraction_mixes_thin_and_thick_scans_reproducibly(tmp_path):
    manifest = generate_dataset(
        tmp_path / "a", 8, size=32, seed=4, thin_fraction=0.5, progress=False
    )
    scans = json.loads(manifest.read_text())["scans"]
    thin = [s["thin"] for s in scans]
    assert any(thin) and not all(thin)
    for record in scans:
        spacing = record["acquisition"]["spacing"]
        assert spacing in (THIN_SPACINGS if record["thin"] else THICK_SPACINGS)
    again = generate_dataset(tmp_path / "b", 8, size=32, seed=4, thin_fraction=0.5, progress=False)
    assert [s["thin"] for s in json.loads(again.read_text())["scans"]] == thin


@pytest.mark.parametrize("fraction", [-0.1, 1.5])
def test_thin_fraction_outside_0_1_is_refused(tmp_path, fraction):
    with pytest.raises(ValueError, match="thin_fraction"):
        generate_dataset(tmp_path, 2, size=32, thin_fraction=fraction, progress=False)
    assert not any(tmp_path.iterdir())
