"""Shared data of the bundle tests: small synthetic data folders, written once per module."""

from __future__ import annotations

from pathlib import Path

import pytest

from ichbundles.data.synthetic import generate_dataset


@pytest.fixture(scope="module")
def synthetic_folder(tmp_path_factory):
    """Factory of ``ichbundles synth``-style folders: ``make(name, scans, seed)`` at 64 px."""

    def make(name: str, scans: int, seed: int) -> Path:
        out = tmp_path_factory.mktemp(name)
        generate_dataset(out, scans, size=64, seed=seed, progress=False)
        return out

    return make
