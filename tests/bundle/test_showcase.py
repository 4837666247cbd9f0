"""The demo's scan picture: written slices map to the re-rendered phantom's, quirks or not."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from ichbundles.bundle.showcase import rendered_index, scan_picture
from ichbundles.data.synthetic import generate_dataset, make_scan
from ichbundles.io import read_series


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Scans of 64 px with a dropped slice (gap) and a duplicated one, and without quirks."""
    root = tmp_path_factory.mktemp("showcase")
    quirky = generate_dataset(
        root / "quirky", 3, size=64, seed=2026, quirks=("gap", "duplicate_slice"), progress=False
    )
    plain = generate_dataset(root / "plain", 2, size=64, seed=2026, progress=False)
    return quirky, plain


def test_rendered_index_matches_the_written_slices(dataset):
    quirky, plain = dataset
    gaps = 0
    for manifest in (quirky, plain):
        for record in json.loads(manifest.read_text())["scans"]:
            scan = make_scan(record["seed"], 64, record["thin"])
            series = read_series(manifest.parent / record["folder"])
            index = rendered_index(scan, series.z_mm)
            assert len(index) == record["n_slices"]
            gap = "gap" in record["quirk_details"]
            assert len(scan.hu) - len(index) == gap  # the gap quirk drops one slice
            gaps += gap
            # the manifest's lesion slices (written numbering) are the rendered ones, mapped
            for written, rendered in zip(record["lesions"], scan.lesions, strict=True):
                kept = [i for i in rendered["slices"] if i in set(index)]
                assert [int(index[i]) for i in written["slices"]] == kept
            assert series.hu.shape[1:] == scan.hu.shape[1:]
    assert gaps == 3


def test_rendered_index_refuses_slices_off_the_phantom():
    scan = make_scan(1, 64)
    with pytest.raises(ValueError, match="from every rendered slice"):
        rendered_index(scan, [scan.positions[0, 2] - scan.spacing[0]])


def test_scan_picture_draws_tiles_and_curve(dataset, tmp_path):
    _, plain = dataset
    record = next(r for r in json.loads(plain.read_text())["scans"] if r["scan_labels"][-1])
    series = read_series(plain.parent / record["folder"])
    probabilities = np.linspace(0.1, 0.9, len(series.z_mm))
    report = {
        "scan": {"probabilities": {"any": 0.9}, "thresholds": {"any": 0.5}},
        "slices": [
            {"z_mm": float(z), "probabilities": {"any": float(p)}}
            for z, p in zip(series.z_mm, probabilities, strict=True)
        ],
    }
    path = scan_picture(report, record, 64, tmp_path / "scan.png", tiles=3)
    with Image.open(path) as image:
        assert image.size[0] >= 800 and image.size[1] >= 500
        assert np.asarray(image.convert("L")).std() > 10
    tilted = {**record, "quirks": ["tilt"]}
    with pytest.raises(ValueError, match="tilted"):
        scan_picture(report, tilted, 64, tmp_path / "tilted.png")
