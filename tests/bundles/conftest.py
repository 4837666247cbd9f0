"""Shared data of the bundle tests: small synthetic data folders, written once per module."""

from __future__ import annotations

import logging
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


@pytest.fixture
def root_logging():
    """Restore the root logger after a test that runs a stage under ``capsys``.

    ``monai.bundle run`` applies the bundle's ``logging.conf``, whose handler writes to the
    ``sys.stdout`` of that moment: ``capsys``'s stream, closed when the test ends. Left in
    place, it turns every later log record of the worker into a "Logging error".
    """
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
