"""Shared fixtures: real DICOM test files shipped by pydicom and pydicom-data."""

from __future__ import annotations

import logging
from pathlib import Path

import pydicom.data
import pytest

PYDICOM_FILES = Path(pydicom.data.__file__).parent / "test_files"


def _pydicom_data_dir() -> Path:
    import data_store  # the import name of the pydicom-data package

    return Path(data_store.__file__).parent / "data"


@pytest.fixture(scope="session")
def pydicom_file():
    """Path of a file from pydicom's own test files or the pydicom-data package."""

    def find(name: str) -> Path:
        for folder in (PYDICOM_FILES, _pydicom_data_dir()):
            if (folder / name).exists():
                return folder / name
        raise FileNotFoundError(name)

    return find


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
