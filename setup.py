"""What pyproject.toml cannot say: the repository's bundles ship inside the package.

``bundles/`` (and ``configs/``, the fragments bundles are layered on, once it exists) stay at the
repository root in MONAI's model-zoo layout. Wheels and non-editable installs carry them as
package data under ``ichbundles/_share/``, side by side as in the repository so that paths
between them still hold; ``ichbundles.bundle.paths`` finds them with ``importlib.resources``. An
optional folder and a package list that follows new sub-packages need code, hence this file; all
other metadata is in pyproject.toml.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent

#: Folders at the repository root -> data packages in the wheel, with the files each ships.
SHARED = {
    "bundles": [
        "*/LICENSE",
        "*/configs/*.yaml",
        "*/configs/*.json",
        "*/configs/*.conf",
        "*/docs/**/*",
        "*/models/*",
        "schema/*.json",
    ],
    "configs": ["**/*.yaml", "**/*.json", "**/*.conf"],
}

data_packages = {f"ichbundles._share.{name}": name for name in SHARED if (HERE / name).is_dir()}

setup(
    packages=[*find_packages(include=["ichbundles", "ichbundles.*"]), *data_packages],
    package_dir=data_packages,
    package_data={package: SHARED[folder] for package, folder in data_packages.items()},
    # The globs above say what ships; without this, building from an sdist also matches its file
    # list and warns about every bundle folder as a would-be package.
    include_package_data=False,
)
