"""The models the bundles ship are the ones their metadata records, and they predict.

A bundle that ships a model records it in ``configs/metadata.json``::

    "shipped_model": {
        "file": "models/model.pt",
        "sha256": "...",
        "size_bytes": 12345678,
        "settings": {...},            # what read_checkpoint returns for the file
        "results": {...},             # its figures on held-out phantoms
        "extra_files": {              # optional: files the model needs beside it
            "models/vgpmil.json": {"sha256": "...", "size_bytes": 1234}
        }
    }

(``ichbundles.bundle.checkpoint.package_model`` writes the file and gives its SHA-256 and size.)
Every file under a bundle's ``models/`` must be recorded there: no unrecorded binaries.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ichbundles.bundle.checkpoint import read_checkpoint
from ichbundles.bundle.paths import available_bundles, bundle_path
from ichbundles.bundle.predict import Predictor
from ichbundles.bundle.report import file_sha256
from ichbundles.constants import ICH_CLASSES
from ichbundles.data.synthetic import generate_dataset

#: The most a bundle's shipped model (with its extra files) may weigh.
MAX_BYTES = 25_000_000
RECORD_KEYS = {"file", "sha256", "size_bytes", "settings", "results"}


def _metadata(bundle: str) -> dict:
    return json.loads((bundle_path(bundle) / "configs" / "metadata.json").read_text())


def _recorded_files(bundle: str) -> dict[str, dict]:
    """Relative path to ``{"sha256", "size_bytes"}`` of every file the record names."""
    record = _metadata(bundle).get("shipped_model")
    if record is None:
        return {}
    files = {record["file"]: {"sha256": record["sha256"], "size_bytes": record["size_bytes"]}}
    return {**files, **record.get("extra_files", {})}


def _unrecorded_files() -> list[str]:
    """Files under any bundle's ``models/`` that its ``shipped_model`` does not name."""
    unrecorded = []
    for bundle in available_bundles():
        root = bundle_path(bundle)
        recorded = set(_recorded_files(bundle))
        for path in sorted((root / "models").rglob("*")):
            name = path.relative_to(root).as_posix()
            if path.is_file() and name not in recorded:
                unrecorded.append(f"{bundle}/{name}")
    return unrecorded


SHIPPED = [b for b in available_bundles() if "shipped_model" in _metadata(b)]


@pytest.fixture(scope="module")
def series(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("series")
    generate_dataset(out, 1, size=64, seed=99, progress=False)
    return next((out / "dicom").iterdir())


def test_every_shipped_binary_is_recorded():
    for bundle in available_bundles():
        if (bundle_path(bundle) / "models" / "model.pt").exists():
            assert "shipped_model" in _metadata(bundle), f"{bundle}: models/model.pt unrecorded"
    assert _unrecorded_files() == []


# No bundle may ship a model yet: then the one case checks that none has an unrecorded file.
@pytest.mark.parametrize("bundle", SHIPPED or [pytest.param(None, id="none-shipped")])
def test_shipped_model_matches_its_record_and_predicts(bundle, series):
    if bundle is None:
        assert _unrecorded_files() == []
        return
    root = bundle_path(bundle)
    record = _metadata(bundle)["shipped_model"]
    missing = RECORD_KEYS - set(record)
    assert not missing, f"{bundle}: shipped_model lacks {sorted(missing)}"
    total = 0
    for name, expected in _recorded_files(bundle).items():
        path = root / name
        assert path.is_file(), f"{bundle}: {name} is recorded but missing"
        assert path.stat().st_size == expected["size_bytes"], f"{bundle}: {name} size"
        assert file_sha256(path) == expected["sha256"], f"{bundle}: {name} SHA-256"
        total += expected["size_bytes"]
    assert total <= MAX_BYTES
    _, settings = read_checkpoint(root / record["file"])
    if "format" not in record["settings"]:
        settings.pop("format")
    assert settings == record["settings"]
    assert settings["bundle"] == bundle

    report = Predictor(bundle, root / record["file"], device="cpu").predict(series)
    probabilities = np.array(
        [[s["probabilities"][c] for c in ICH_CLASSES] for s in report["slices"]]
    )
    assert probabilities.shape == (report["series"]["n_slices"], 6)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    assert report["model"]["checkpoint_sha256"] == record["sha256"]
