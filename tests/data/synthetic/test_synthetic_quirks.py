"""Each archive quirk is really in the written files, and labels list only the kept slices."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pydicom
import pytest

from ichbundles.data.synthetic import available_syntaxes, generate_dataset, make_scan
from ichbundles.io.geometry import gantry_tilt_degrees


def _make(reader, tmp_path: Path, quirk: str, n: int = 1):
    generate_dataset(tmp_path, n, size=40, seed=4, quirks=(quirk,), progress=False)
    manifest, scans, labels = reader.load(tmp_path)
    out = []
    for entry, row in zip(manifest["scans"], scans, strict=True):
        folder = tmp_path / entry["folder"]
        assert quirk in entry["quirks"]
        out.append((entry, folder, reader.main_series(folder, row["series_instance_uid"])))
    return out, labels


def _expected(entry: dict) -> np.ndarray:
    tilt = entry["quirk_details"].get("tilt", {}).get("degrees", 0.0)
    return np.rint(make_scan(entry["seed"], 40, tilt=tilt).hu)


def _kept_sops(labels: dict[str, int]) -> set[str]:
    return {key.rsplit("_", 1)[0][3:] for key in labels}


@pytest.mark.parametrize("quirk", ["unsigned", "slope", "monochrome1", "padding", "rsna_wrap"])
def test_storage_quirks_decode_to_the_phantom(reader, tmp_path, quirk):
    ((entry, _, images),), _ = _make(reader, tmp_path, quirk)
    ds = images[0]
    if quirk == "unsigned":
        assert ds.PixelRepresentation == 0 and float(ds.RescaleIntercept) == -1024.0
    elif quirk == "slope":
        assert float(ds.RescaleSlope) in (0.5, 2.0)
    elif quirk == "monochrome1":
        assert ds.PhotometricInterpretation == "MONOCHROME1" and ds.PixelRepresentation == 0
    elif quirk == "padding":
        assert ds.PixelPaddingValue == -2000 and ds.pixel_array[0, 0] == -2000
    else:
        assert (ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (12, 11, 0)
        assert float(ds.RescaleIntercept) > -100 and ds.pixel_array.max() < 4096
    decoded = np.stack([reader.hu_of(d) for d in images])
    expected = _expected(entry)
    if quirk == "rsna_wrap":
        expected = np.clip(expected, -1000, 3095)
    inside = decoded > -1024 if quirk == "padding" else np.ones_like(decoded, bool)
    # 1 HU: float32 rounding of (HU - intercept) / slope at .5 ties, and slope 2 quantisation
    np.testing.assert_allclose(decoded[inside], expected[inside], atol=1.0)


def test_shuffled_names_and_instance_numbers(reader, tmp_path):
    ((_, _folder, images),), _ = _make(reader, tmp_path, "shuffled_names")
    assert all(re.fullmatch(r"[0-9a-f]{32}", Path(ds.filename).name) for ds in images)
    by_name = sorted(images, key=lambda ds: Path(ds.filename).name)
    assert [ds.SOPInstanceUID for ds in by_name] != [ds.SOPInstanceUID for ds in images]
    ((_, _, images),), _ = _make(reader, tmp_path / "n", "instance_numbers")
    numbers = np.array([int(ds.InstanceNumber) for ds in images])
    steps = np.diff(numbers)
    assert not (np.all(steps > 0) or np.all(steps < 0))


def test_compressed_cycles_syntaxes(reader, tmp_path):
    syntaxes = available_syntaxes()
    assert len(syntaxes) >= 2
    scans, labels = _make(reader, tmp_path, "compressed", n=len(syntaxes))
    assert _kept_sops(labels) == {ds.SOPInstanceUID for _, _, images in scans for ds in images}
    seen = set()
    for entry, _, images in scans:
        seen.add(images[0].file_meta.TransferSyntaxUID)
        decoded = np.stack([reader.hu_of(d) for d in images])
        np.testing.assert_allclose(decoded, _expected(entry), atol=1.0)
    assert seen == set(syntaxes)


def test_extra_series(reader, tmp_path):
    ((_entry, folder, images),), labels = _make(reader, tmp_path, "extra_series")
    everything = reader.read_images(folder)
    series = {ds.SeriesInstanceUID for ds in everything}
    assert len(series) == 3
    scouts = [ds for ds in everything if "LOCALIZER" in ds.ImageType]
    assert 1 <= len(scouts) <= 3
    assert all(abs(float(ds.ImageOrientationPatient[5])) == 1.0 for ds in scouts)
    reformat = [ds for ds in everything if ds.SeriesNumber == 3]
    assert 0 < len(reformat) < len(images)
    assert _kept_sops(labels) == {ds.SOPInstanceUID for ds in images}


def test_duplicate_slice(reader, tmp_path):
    ((entry, _folder, images),), labels = _make(reader, tmp_path, "duplicate_slice")
    positions = [tuple(ds.ImagePositionPatient) for ds in images]
    assert len(positions) == len(set(positions)) + 1
    assert len(_kept_sops(labels)) == len(images) - 1 == entry["n_slices"]


def test_gap(reader, tmp_path):
    ((_entry, _folder, images),), labels = _make(reader, tmp_path, "gap")
    z = np.array([float(ds.ImagePositionPatient[2]) for ds in images])
    steps = np.round(np.diff(z), 3)
    assert sorted(set(steps)) == [5.0, 10.0] and list(steps).count(10.0) == 1
    assert _kept_sops(labels) == {ds.SOPInstanceUID for ds in images}


def test_tilt(reader, tmp_path):
    ((_entry, _folder, images),), _ = _make(reader, tmp_path, "tilt")
    tilt = float(images[0].GantryDetectorTilt)
    assert 10.0 <= abs(tilt) <= 25.0
    positions = np.array([ds.ImagePositionPatient for ds in images], dtype=float)
    measured = gantry_tilt_degrees(positions, images[0].ImageOrientationPatient)
    assert measured == pytest.approx(abs(tilt), abs=0.05)
    assert list(images[0].ImageOrientationPatient) == [1, 0, 0, 0, 1, 0]


def test_junk(reader, tmp_path):
    ((_entry, folder, images),), labels = _make(reader, tmp_path, "junk")
    files = list(folder.iterdir())
    assert any(p.stat().st_size == 0 for p in files)
    assert (folder / "README.txt").read_text().startswith("Exported")
    reports = []
    for path in files:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:
            continue
        if ds.get("Modality") == "SR":
            reports.append(ds)
    assert len(reports) == 1 and "PixelData" not in reports[0]
    # Not images: the empty file, the note, the truncated copy and the report.
    assert len(files) - len(reader.read_images(folder)) == 4
    assert _kept_sops(labels) == {ds.SOPInstanceUID for ds in images}
