"""read_series on synthetic series written with every archive quirk switched on.

The generator records what it did to each scan in its manifest, and the clean phantom can be
rendered again from the scan's seed, so every fix is checked against the truth: the slices kept
(exactly those of labels.csv), their order, and their Hounsfield units.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ichbundles.data.synthetic import generate_dataset, make_scan
from ichbundles.io import read_series

SIZE = 64
N_SCANS = 5  # the five storage quirks cycle over the scans; so do the four compressed syntaxes


@pytest.fixture(scope="module")
def quirky_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("quirks")
    generate_dataset(out, N_SCANS, size=SIZE, seed=11, quirks=("all",), progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    labels = pd.read_csv(out / "labels.csv")
    sops = labels["ID"].str.slice(3).str.rsplit("_", n=1).str[0].unique()
    return out, manifest["scans"], set(sops)


@pytest.mark.parametrize("index", range(N_SCANS))
def test_quirky_series_reads_back_the_phantom(quirky_set, index):
    out, scans, labelled_sops = quirky_set
    entry = scans[index]
    details = entry["quirk_details"]
    series = read_series(out / entry["folder"])

    assert series.series_instance_uid == entry["series_instance_uid"]
    kept = set(series.sop_instance_uids)
    assert kept <= labelled_sops
    assert len(kept) == len(series.sop_instance_uids) == entry["n_slices"]  # written, gap excluded
    assert details["duplicate_slice"]["copy_sop_instance_uid"] not in kept
    assert np.all(np.diff(series.z_mm) > 0)

    phantom = make_scan(entry["seed"], size=SIZE, tilt=details["tilt"]["degrees"])
    expected = np.delete(phantom.hu, details["gap"]["missing_slice"], axis=0)
    low = -1000.0 if details["storage"]["wrap"] else -1024.0
    expected = np.clip(expected, low, 3071.0)
    assert series.hu.shape == expected.shape
    tissue = expected > -900  # air may be padding or clipped: compare everything else
    if details["storage"]["padding"] is not None:
        # the generator pads outside a circle of radius 0.49 x width: compare inside 0.45
        yy, xx = np.mgrid[:SIZE, :SIZE] - (SIZE - 1) / 2
        tissue &= (yy**2 + xx**2 <= (0.45 * SIZE) ** 2)[None]
    tolerance = 0.5 * max(1.0, details["storage"]["slope"]) + 1e-3  # rounding of stored values
    np.testing.assert_allclose(series.hu[tissue], expected[tissue], atol=tolerance)

    assert series.tilt_degrees == pytest.approx(abs(details["tilt"]["degrees"]), abs=0.5)
    assert len(series.gaps) == 1
    joined = "\n".join(series.warnings)
    for fragment in ("dropped duplicate slice", "gap of", "gantry tilt", "scout/localizer"):
        assert fragment in joined
    assert "empty file" in joined and "not a DICOM file" in joined and "not an image" in joined
    # the junk quirk's half-length copy of a slice is named as damaged, not as a non-image
    assert "truncated or damaged" in joined or "pixel data unreadable" in joined
    storage = details["storage"]
    if storage["wrap"]:
        assert "RSNA BitsStored-12 wrap" in joined
    if storage["monochrome1"]:
        assert "MONOCHROME1" in joined
    if storage["padding"] is not None:
        assert "padding pixels" in joined
        assert series.hu.min() == -1024.0


def test_every_storage_quirk_and_syntax_was_exercised(quirky_set):
    _, scans, _ = quirky_set
    storages = [scan["quirk_details"]["storage"] for scan in scans]
    assert any(s["wrap"] for s in storages)
    assert any(s["monochrome1"] for s in storages)
    assert any(s["padding"] is not None for s in storages)
    assert any(s["slope"] != 1.0 for s in storages)
    assert any(not s["signed"] and not s["wrap"] and not s["monochrome1"] for s in storages)
    syntaxes = {scan["quirk_details"]["compressed"]["name"] for scan in scans}
    assert {"RLE Lossless", "JPEG 2000 Image Compression (Lossless Only)"} <= syntaxes


def test_monochrome1_agrees_with_itk(quirky_set):
    """ITK (GDCM) is the independent reference for MONOCHROME1: it reads the same HU."""
    import itk

    out, scans, _ = quirky_set
    entry = next(s for s in scans if s["quirk_details"]["storage"]["monochrome1"])
    series = read_series(out / entry["folder"])
    # the largest file of the first slice's SOP: the junk quirk also writes a truncated copy
    first = max(
        (p for p in (out / entry["folder"]).iterdir() if _sop_of(p) == series.sop_instance_uids[0]),
        key=lambda p: p.stat().st_size,
    )
    reference = itk.array_from_image(itk.imread(str(first), itk.F))[0]
    np.testing.assert_allclose(series.hu[0], np.maximum(reference, -1024.0), atol=1e-3)


def _sop_of(path) -> str:
    import pydicom

    try:
        return pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID
    except Exception:
        return ""
